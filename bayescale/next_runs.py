"""Which runs to train next: the candidate runs whose results would shrink a target run's predictive
interval the most per FLOP.

Preposterior analysis of the fit's own draws. At the target and at every candidate the predictive
path (:func:`bayescale.predict.response_draws`) gives, draw by draw, the expected response with
the model discrepancy (``m``, on the link scale: log loss, logit rate) and a new run's measured
value (``y``). Observing a candidate ``c`` reveals ``y_c = m_c + e_c``; what it teaches about the
target is what its draws share with the target's draws. Two estimates of the target's predictive
variance once a batch ``B`` is observed:

* ``"gaussian"``: ``m`` over the target and the candidates as jointly Gaussian (the
  draws' covariance), the noise ``e`` as independent with each row's posterior mean variance:
  ``Var(y_T | y_B) = S_TT - S_TB (S_BB + diag(t2_B))^-1 S_BT + t2_T``. Exact for a linear-Gaussian
  model, cheap, and a batch is scored jointly, so later picks only get credit for what earlier
  picks did not already teach.
* ``"importance"`` (default): no Gaussian assumption on the posterior: simulated outcomes ``y_B``
  from the predictive, and the draws reweighted by their likelihood (Gaussian noise on the link
  scale); the expected weighted 90 % width of the target (squared, so that it reads like a
  variance; the width, because under Student-t noise a few far draws rule a weighted variance).
  It sees what a run teaches about the discrepancy's scale and the noise, which are not linear in
  the observations. Its weights degenerate when one run is far more precise than the posterior
  (then it underestimates what remains); the table reports their effective sample size. Each
  estimate's "now" is its own value with no run observed (for this one, the width of the draws it
  reweights).

The variance (squared width) is of the target's *new-run* value, on the link scale; widths on the
response scale are the current 90 % width scaled by the ratio of standard deviations (widths).
Selection is greedy within the budget: by variance removed per FLOP and by variance removed,
whichever ends lower; it stops when no affordable run would narrow the width by MIN_WIDTH_GAIN.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .data import GROUP_COLUMNS, apply_column_map, row_name
from .errors import BayescaleError, BayescaleWarning, UnreliableSampling
from .predict import columns_for, decades_beyond, prepare, response_draws, unnamed_group_notes
from .checks import check_seed, law_seed

METHODS = ("gaussian", "importance")
RATIOS = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0)   # default grid: tokens per parameter
GRID_SIZES = 8                                  # default grid: sizes per ratio
IMPORTANCE_SIMS = 100
IMPORTANCE_DRAWS = 1000   # draws reweighted (a subsample: the cost is sims x draws x batch)
RATE_CLIP = 1e-6
MIN_WIDTH_GAIN = 0.002   # a pick must narrow the target's width by 0.2 %: not a budget of runs that teach nothing


@dataclass
class Plan:
    """The ranked candidates, the chosen batch in pick order, and the target's width now."""
    target: pd.DataFrame
    candidates: pd.DataFrame
    chosen: pd.DataFrame
    width_now: float
    budget: float | None
    method: str
    response: str
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"method": self.method, "budget": self.budget, "response": self.response,
                "target": json.loads(self.target.to_json(orient="records"))[0],
                "width_90_now": self.width_now,
                "chosen": json.loads(self.chosen.to_json(orient="records")),
                "candidates": json.loads(self.candidates.to_json(orient="records")), "notes": self.notes}

    def plot(self, path) -> Path:
        """The target's expected 90 % width against the cumulative cost of the chosen runs."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7.0, 4.2))
        ax = fig.subplots()
        cost = np.concatenate([[0.0], self.chosen["cumulative_cost"].to_numpy()])
        width = np.concatenate([[self.width_now], self.chosen["width_90_after"].to_numpy()])
        ax.step(cost, width, where="post", color="#0072B2", lw=1.8)
        ax.plot(cost, width, "o", color="#0072B2")
        positive = cost[cost > 0]
        spread = len(positive) > 1 and positive.max() / positive.min() > 30
        # cheap picks after an expensive one would sit at 0 on a linear axis: a log axis (linear
        # below the cheapest pick, so that "now", at cost 0, stays on it) keeps them apart
        if spread:
            ax.set_xscale("symlog", linthresh=float(positive.min()), linscale=0.5)
        where = np.log10(np.where(cost > 0, cost, positive.min() / 10)) if spread else cost
        for label, i in _pick_labels(where, width):
            ax.annotate(label, (cost[i], width[i]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        if self.budget is not None:
            ax.axvline(self.budget, color="#D55E00", ls="--", lw=1, label=f"budget {self.budget:.3g} FLOP")
            ax.legend(fontsize=8, frameon=False)
        ax.set_xlabel("cumulative cost of the chosen runs (FLOP)")
        ax.set_ylabel(f"expected 90% width of the target's {self.response}")
        ax.set_title(f"what the next runs would teach about the target ({self.method} estimate)", fontsize=10)
        pad = 0.15 * max(width.max() - width.min(), 0.01 * width.max())
        ax.set_ylim(width.min() - pad, width.max() + pad)   # the change is the point, not the zero
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=200)
        return path


def _pick_labels(cost: np.ndarray, width: np.ndarray, gap: float = 0.04) -> list[tuple[str, int]]:
    """Labels for the picks on the width-against-cost plot (``cost`` and ``width`` start with the
    target's width now, at cost 0, which is not labelled): a pick's number, or "i-j" at the last of
    a run of picks within ``gap`` of the plotted spans of the first of them (cheap runs after an
    expensive one sit on top of each other, and their numbers were unreadable)."""
    span_x = max(float(np.ptp(cost)), 1e-300)
    span_y = max(float(np.ptp(width)), 1e-12)
    out, first, n = [], 1, len(cost)
    for i in range(2, n + 1):
        if i < n and abs(cost[i] - cost[first]) <= gap * span_x and abs(width[i] - width[first]) <= gap * span_y:
            continue
        label = str(first) if i - 1 == first else f"{first}-{i - 1}"
        out.append((label, i - 1))
        first = i
    return out


def default_candidates(fit, target: pd.DataFrame) -> pd.DataFrame:
    """Sizes from the smallest fitted run to the target's (geometric), at several tokens per
    parameter for laws in N and D; the target's group labels; only runs cheaper than the target."""
    law = _law(fit)
    train = _training_inputs(fit)
    labels = {g: target[g].iloc[0] for g in GROUP_COLUMNS if g in target}
    if {"params", "tokens"} <= set(law.inputs):
        n = np.geomspace(train["params"].min(), float(target["params"].iloc[0]), GRID_SIZES + 1)[:-1]
        grid = pd.DataFrame([{"params": a, "tokens": a * r} for r in RATIOS for a in n])
        grid = grid[6 * grid["params"] * grid["tokens"] < 6 * float(target["params"].iloc[0] * target["tokens"].iloc[0])]
    else:
        (x,) = [c for c in law.inputs]
        grid = pd.DataFrame({x: np.geomspace(train[x].min(), float(target[x].iloc[0]), GRID_SIZES + 1)[:-1]})
    for k, v in labels.items():
        grid[k] = v
    for c in (*law.extras, *law.mean_extras):
        if c in target and c not in grid:
            grid[c] = target[c].iloc[0]
    return grid.reset_index(drop=True)


def run_costs(candidates: pd.DataFrame, cost) -> np.ndarray:
    """FLOP of each candidate: "6ND" (6 x params x tokens), a column name, or a function of the table;
    None: the candidates' own ``cost`` column when they have one, else 6ND."""
    if cost is None:
        cost = "cost" if "cost" in candidates else "6ND"
    if callable(cost):
        values = np.asarray(cost(candidates), dtype=np.float64)
    elif cost == "6ND":
        missing = [c for c in ("params", "tokens") if c not in candidates]
        if missing:
            raise BayescaleError(f"cost='6ND' needs columns params and tokens; the candidates lack {missing}: "
                                 "give a cost column (cost='my_column'; CLI: a 'cost' column in the candidates file) or a "
                                 "function of the table")
        values = 6.0 * candidates["params"].to_numpy(np.float64) * candidates["tokens"].to_numpy(np.float64)
    elif isinstance(cost, str) and cost in candidates:
        values = pd.to_numeric(candidates[cost], errors="coerce").to_numpy(np.float64)
    else:
        raise BayescaleError(f"cost must be '6ND', a column of the candidates or a function, got {cost!r}")
    if values.shape != (len(candidates),):
        raise BayescaleError(f"the cost function gave shape {values.shape}; it must give one number per candidate "
                             f"({len(candidates)})")
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = f"column '{cost}'" if isinstance(cost, str) and cost != "6ND" else f"cost {cost!r}"
        raw = candidates[cost].iloc[i] if isinstance(cost, str) and cost in candidates else values[i]
        raise BayescaleError(f"every candidate's cost must be a positive finite number of FLOP; {what} gives "
                             f"{raw!r} for {row_name(candidates, i)} ({int(bad.sum())} such row(s))")
    return values


def plan(fit, target, candidates: pd.DataFrame | None = None, budget: float | None = None, cost=None,
         batch: int | None = None, *, method: str = "importance", seed: int = 0) -> Plan:
    """Rank candidate runs by how much observing each would narrow ``target``'s predictive
    interval per FLOP, and choose a batch greedily within ``budget`` (FLOP) and/or ``batch`` runs
    (default: fill the budget; without a budget, one run). ``target`` is one row (a dict or a
    one-row DataFrame: params, tokens and group labels as for ``predict``)."""
    if method not in METHODS:
        raise BayescaleError(f"method must be one of {METHODS}, got {method!r}")
    seed = check_seed(seed)
    target = pd.DataFrame([target]) if isinstance(target, dict) else pd.DataFrame(target).reset_index(drop=True)
    if len(target) != 1:
        raise BayescaleError(f"plan takes one target run, got {len(target)} rows")
    if budget is not None:
        try:
            ok = not isinstance(budget, bool) and np.isfinite(float(budget)) and float(budget) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise BayescaleError(f"budget must be a positive number of FLOP such as 1e21, got {budget!r}")
        budget = float(budget)
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1):
        raise BayescaleError(f"batch must be a positive integer, got {batch!r}")
    one = next(iter(fit.fits.values())) if hasattr(fit, "fits") else fit
    # rows under the user's own column names (fit(..., columns=...)) read with the fit's map
    target = apply_column_map(target, columns_for(one, target, None))
    if isinstance(candidates, (list, tuple)) and candidates and all(isinstance(c, dict) for c in candidates):
        candidates = pd.DataFrame(list(candidates))   # runs as dicts, as a target may be one
    if isinstance(candidates, pd.DataFrame):
        candidates = apply_column_map(candidates, columns_for(one, candidates, None))
    notes: list[str] = []
    checked = prepare(one, target, "observation").frame
    for c in one.law.inputs:   # the numbers as validated ("7e10" read as 7e10), for the candidates too
        if c in checked and c in target:
            target[c] = checked[c].to_numpy(np.float64)
    beyond = decades_beyond(one, checked)
    if beyond is not None and beyond[0] <= 0:
        raise BayescaleError("the target lies inside the fitted runs' range: plan chooses runs that teach about "
                             "a target beyond the data (a larger run); predict it directly with predict")
    if candidates is None:
        candidates = default_candidates(fit, target)
    else:
        candidates = _given_candidates(one, candidates, target, notes)
    if not len(candidates):
        raise BayescaleError("no candidate runs: give candidates=... (a table of runs; CLI --candidates FILE) or a "
                             "target beyond the data")
    costs = run_costs(candidates, cost)
    if cost is None and "cost" in candidates:
        notes.append("each candidate's cost is its 'cost' column (FLOP), not 6ND")
    if budget is not None and costs.min() > budget:
        raise BayescaleError(f"the budget ({budget:.3g} FLOP) is smaller than the cheapest candidate "
                             f"({costs.min():.3g} FLOP): raise it or give cheaper candidates")
    if batch is None:
        batch = len(candidates) if budget is not None else 1
    notes += _sampling_notes(fit)   # after the input checks: a call that fails on them only raises

    drawn: list[str] = []
    m, y = _joint_draws(fit, pd.concat([target, candidates], ignore_index=True), seed, drawn)
    # rows that name no group of a pooled fit are a new group: said once, not as a label "all"
    notes += [n for n in unnamed_group_notes(one, target.columns, drawn) if n not in notes]
    noise = np.mean((y - m) ** 2, axis=0)            # each row's posterior mean noise variance (link scale)
    # the width predict reports for the target (same seed), whatever the candidates: the joint
    # draws above depend on how many rows they hold
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)   # plan says its own notes
        now = fit.predict(target, levels=(0.9,), kind="observation", seed=seed)
    width_now = float(now["upper_90"].iloc[0] - now["lower_90"].iloc[0])
    score = _gaussian(m, noise) if method == "gaussian" else _importance(m, y, noise, seed)
    # each estimate's own value with no run observed: a ratio against anything else (the variance
    # of every draw where the importance estimate uses a subsample) credits every candidate with
    # the difference, which favours the cheapest runs per FLOP
    var_now = score([])[0]

    solo = np.array([score([c + 1]) for c in range(len(candidates))])   # (variance left, weights' ESS)
    alone = solo[:, 0]
    table = candidates.copy()
    table["cost"] = costs
    table["width_90_after"] = width_now * np.sqrt(alone / var_now)
    table["variance_removed_share"] = 1.0 - alone / var_now
    table["share_removed_per_exaflop"] = table["variance_removed_share"] / (costs / 1e18)
    if method == "importance":
        table["weights_ess"] = solo[:, 1]

    # cost-benefit greedy (variance removed per FLOP) can fill the budget with cheap runs that teach
    # little; greedy by variance removed can spend it on one big run. Take whichever ends lower.
    by_ratio = _greedy(score, costs, var_now, budget, batch, per_flop=True)
    by_gain = _greedy(score, costs, var_now, budget, batch, per_flop=False)
    chosen = min(by_ratio, by_gain, key=lambda b: score([i + 1 for i in b])[0] if b else var_now)
    picks = candidates.iloc[chosen].copy()
    picks["cost"] = costs[chosen]
    picks["cumulative_cost"] = np.cumsum(costs[chosen])
    var_path = [score([i + 1 for i in chosen[:k]])[0] for k in range(1, len(chosen) + 1)]
    picks["width_90_after"] = width_now * np.sqrt(np.asarray(var_path) / var_now)
    table = table.sort_values("share_removed_per_exaflop", ascending=False).reset_index(drop=True)
    return Plan(target=target, candidates=table, chosen=picks.reset_index(drop=True), width_now=width_now,
                budget=budget, method=method, response=_law(fit).response, notes=notes)


# ---- the pieces ------------------------------------------------------------------------------------

def _given_candidates(one, candidates, target: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """The user's candidate runs, checked as predict checks rows (a bad size is named by its row,
    before any cost is computed); a group label the target names and the candidates do not is
    the target's: the runs are of the target's family unless they say otherwise."""
    if not isinstance(candidates, pd.DataFrame):
        candidates = pd.DataFrame(candidates)
    attrs = dict(candidates.attrs)   # the source file, for errors that name its lines
    candidates = candidates.reset_index(drop=True)
    candidates.attrs.update(attrs)
    filled = {g: target[g].iloc[0] for g in GROUP_COLUMNS if g in target and g not in candidates}
    for g, label in filled.items():
        candidates[g] = label
    if filled:
        notes.append(f"the candidates name no {', '.join(filled)}: they are runs of the target's "
                     f"({', '.join(f'{g} {label!s}' for g, label in filled.items())}); add the column to plan "
                     "runs of other groups")
    prepare(one, candidates, "observation")
    return candidates


def _sampling_notes(fit) -> list[str]:
    """A note (and a warning) per fit whose sampler diagnostics fail: the expected widths are
    computed from its draws, and draws from chains that disagree (e.g. 5 runs for a 5-parameter
    law, r_hat 3.9) are no posterior to plan from."""
    fits = fit.fits.items() if hasattr(fit, "fits") else [(None, fit)]
    notes = []
    for name, one in fits:
        problems = one.sampling_problems()
        if problems:
            which = f"the {name} fit" if name else "the fit"
            note = (f"{which}'s sampler diagnostics fail ({'; '.join(problems)}): the expected widths come "
                    "from its draws and are unreliable; refit (more warmup or draws, a higher target_accept, "
                    "or more runs) before spending compute on this plan")
            notes.append(note)
            warnings.warn(UnreliableSampling(note, fit=one), stacklevel=3)
    return notes


def _greedy(score, costs: np.ndarray, var_now: float, budget, batch: int, *, per_flop: bool) -> list[int]:
    """Pick candidates one at a time, each the best given the earlier picks, within the budget."""
    chosen, spent, current = [], 0.0, var_now
    while len(chosen) < batch:
        best, best_gain, best_var = None, 0.0, current
        for c in range(len(costs)):
            if c in chosen or (budget is not None and spent + costs[c] > budget):
                continue
            var_after = score([i + 1 for i in chosen] + [c + 1])[0]
            gain = (current - var_after) / (costs[c] if per_flop else 1.0)
            if best is None or gain > best_gain:
                best, best_gain, best_var = c, gain, var_after
        if best is None or np.sqrt(best_var / current) > 1.0 - MIN_WIDTH_GAIN:
            break
        chosen.append(best)
        spent += costs[best]
        current = best_var
    return chosen


def _law(fit):
    return next(iter(fit.fits.values())).law if hasattr(fit, "fits") else fit.law


def _training_inputs(fit) -> pd.DataFrame:
    one = next(iter(fit.fits.values())) if hasattr(fit, "fits") else fit
    const = one.group("constant_data")
    return pd.DataFrame({k: np.asarray(const[k].values) for k in one.law.inputs})


def _link_draws(fit, rows: pd.DataFrame, seed: int, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Draw-aligned (m, y) at ``rows`` for one fit, on the link scale: each row's expected value
    (the curve with the discrepancy) and a new run's value."""
    data = prepare(fit, rows, "observation")
    notes += [n for n in data.notes if n not in notes]
    stages: dict = {}
    y = response_draws(fit, data.frame, "observation", np.random.default_rng(seed), notes, stages=stages)
    obs = fit.law.observation
    expected = stages["discrepancy"]
    if obs.link_name == "logit":
        expected, y = np.clip(expected, RATE_CLIP, 1 - RATE_CLIP), np.clip(y, RATE_CLIP, 1 - RATE_CLIP)
    return obs.link(expected, np), obs.link(y, np)


def _joint_draws(fit, rows: pd.DataFrame, seed: int, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    if not hasattr(fit, "fits"):
        return _link_draws(fit, rows, seed, notes)
    per_law = {}
    for i, (name, f) in enumerate(fit.fits.items()):
        per_law[name] = np.concatenate(_link_draws(f, rows, law_seed(seed, i), notes), axis=1)
    mixed, _ = fit._mixture(per_law, seed)   # each draw from one law, by its stacking weight
    r = len(rows)
    return mixed[:, :r], mixed[:, r:]


def _gaussian(m: np.ndarray, noise: np.ndarray):
    cov = np.cov(m, rowvar=False)
    var_target = cov[0, 0] + noise[0]

    def score(batch: list[int]) -> tuple[float, float]:
        if not batch:
            return float(var_target), float("nan")
        idx = np.asarray(batch)
        s_bb = cov[np.ix_(idx, idx)] + np.diag(noise[idx])
        s_tb = cov[0, idx]
        return float(var_target - s_tb @ np.linalg.solve(s_bb, s_tb)), float("nan")
    return score


def _importance(m: np.ndarray, y: np.ndarray, noise: np.ndarray, seed: int):
    """Squared expected 90 % width of the target's new-run value (link scale) once ``batch`` is
    observed, over simulated outcomes, and the weights' median ESS. The width, not the variance:
    under Student-t noise a few far draws rule a weighted variance, while the interval the user
    reads is a pair of quantiles. For Gaussian draws the squared width is the variance times a
    constant, so ratios of it read as ratios of variance (as the Gaussian estimate's do)."""
    rng = np.random.default_rng([seed, 7])
    keep = rng.choice(len(m), size=min(len(m), IMPORTANCE_DRAWS), replace=False)
    m, y = m[keep], y[keep]
    sims = rng.integers(len(m), size=IMPORTANCE_SIMS)
    order = np.argsort(y[:, 0], kind="stable")
    target = y[order, 0]

    def width(w: np.ndarray) -> np.ndarray:
        """Weighted 90 % width per row of ``w`` (weights over the draws, each row summing to 1)."""
        cum = np.cumsum(w[:, order], axis=1)
        lo = target[np.minimum((cum < 0.05).sum(axis=1), len(target) - 1)]
        hi = target[np.minimum((cum < 0.95).sum(axis=1), len(target) - 1)]
        return hi - lo

    def score(batch: list[int]) -> tuple[float, float]:
        if not batch:
            return float(width(np.full((1, len(m)), 1.0 / len(m)))[0] ** 2), float(len(m))
        idx = np.asarray(batch)
        outcome = y[sims][:, idx]                                     # (sims, batch)
        logw = -0.5 * (((outcome[:, None, :] - m[None, :, idx]) ** 2) / noise[idx]).sum(axis=2)   # (sims, draws)
        w = np.exp(logw - logw.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        ess = 1.0 / (w ** 2).sum(axis=1)
        return float(np.mean(width(w)) ** 2), float(np.median(ess))
    return score
