"""Calibration: held-out scoring against baselines, and simulation-based calibration (SBC).

Held-out calibration (:func:`calibrate`): fit on the runs a holdout protocol leaves, predict the
held-out large runs, and score coverage, PIT, CRPS, interval score, ARE and log predictive density
beside the classical baselines on the same split.


SBC (Talts, Betancourt, Simpson, Vehtari & Gelman 2018, arXiv:1804.06788): draw parameters
theta* from the prior, data y from the model given theta*, fit the same model to y and record the
rank of theta* among L (thinned) posterior draws. If the sampler and the model are correct, every
rank is uniform on {0, ..., L}. A fit that is too narrow gives U-shaped ranks, one that is too wide
a hump, a biased one a slope.

The uniformity test used here is a chi-square goodness-of-fit test over ``bins`` bins of the rank
range. The expected count of a bin is ``n_ok * (number of rank values in the bin) / (L + 1)``, so
bins need not be of exactly equal width; the p-value is ``chi2.sf(stat, bins - 1)``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from . import holdout as holdout_protocols
from .errors import BayescaleError
from .models import get_law
from .scores import LEVELS, aggregate, score_points

__all__ = ["CalibrationResult", "SBCResult", "calibrate", "default_design", "rank_uniformity", "sbc"]


def default_design(law) -> pd.DataFrame:
    """A small grid over the law's inputs (one family, one dataset).

    One input: 10 log-spaced sizes over three decades (N 1e7-1e10, D 1e9-1e12, C 1e17-1e21).
    N and D: a 5 x 4 grid (N 1e7-1e9, D 1e9-1e11), 20 runs; C and M: the same grid as 6ND and D/N.
    """
    law = get_law(law)
    if hasattr(law, "sbc_design"):  # laws with inputs other than sizes bring their own small grid
        return law.sbc_design()
    ranges = {"params": (1e7, 1e10), "tokens": (1e9, 1e12), "compute": (1e17, 1e21)}
    inputs = tuple(law.inputs)
    if len(inputs) == 1:
        lo, hi = ranges[inputs[0]]
        return pd.DataFrame({inputs[0]: np.geomspace(lo, hi, 10)})
    if set(inputs) == {"params", "tokens"}:
        n, d = np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 4), indexing="ij")
        return pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})
    if set(inputs) == {"compute", "multiplier"}:  # the same (N, D) grid, as C = 6ND and M = D/N
        n, d = np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 4), indexing="ij")
        return pd.DataFrame({"compute": 6.0 * (n * d).ravel(), "multiplier": (d / n).ravel()})
    raise BayescaleError(f"no default SBC design for law {law.spec!r} with inputs {list(inputs)}; "
                         "pass design=")


def rank_uniformity(ranks: np.ndarray, n_draws: int, bins: int) -> tuple[float, float]:
    """Chi-square test that ``ranks`` (integers in 0..n_draws) are uniform; returns (stat, p)."""
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.size == 0:
        return float("nan"), float("nan")
    bins = int(min(bins, n_draws + 1))
    # rank value r falls in bin floor(r * bins / (L + 1)); bins differ by at most one rank value
    which = np.minimum((ranks * bins) // (n_draws + 1), bins - 1)
    observed = np.bincount(which, minlength=bins)
    values = np.arange(n_draws + 1)
    per_bin = np.bincount(np.minimum((values * bins) // (n_draws + 1), bins - 1), minlength=bins)
    expected = ranks.size * per_bin / (n_draws + 1)
    stat = float(np.sum((observed - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, bins - 1))


@dataclass
class SBCResult:
    """Ranks and uniformity p-values of one SBC run.

    ``ranks[name]`` holds one rank in 0..``n_draws`` per successful simulation (``sim_index``
    gives their simulation numbers, ``divergences`` their fits' divergent-transition counts and
    ``fit_seconds`` their fit times, all aligned); ``pvalues[name]`` is the chi-square uniformity
    p-value over ``bins`` bins. ``failures`` lists (simulation index,
    reason) for every simulation whose data or fit failed; those contribute no rank (so a high
    failure count means the ranks describe only the prior region where things worked).
    """

    law: str
    n_sims: int
    n_draws: int
    bins: int
    ranks: dict[str, np.ndarray]
    pvalues: dict[str, float]
    chi2: dict[str, float]
    truths: dict[str, np.ndarray]
    n_divergent_fits: int
    divergences: np.ndarray
    failures: list[tuple[int, str]] = field(default_factory=list)
    fit_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sim_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    settings: dict = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    @property
    def n_ok(self) -> int:
        return self.n_sims - self.n_failed

    @property
    def min_pvalue(self) -> float:
        return float(min(self.pvalues.values()))

    def passes(self, level: float = 0.01) -> bool:
        """Uniformity not rejected for any parameter at family-wise ``level`` (Bonferroni)."""
        return self.min_pvalue > level / len(self.pvalues)

    def summary(self) -> pd.DataFrame:
        rows = {}
        for name, r in self.ranks.items():
            rows[name] = {"n": len(r), "mean_rank": float(np.mean(r)) / self.n_draws,
                          "chi2": self.chi2[name], "p_value": self.pvalues[name]}
        return pd.DataFrame.from_dict(rows, orient="index")

    def histogram(self, name: str) -> np.ndarray:
        r = self.ranks[name]
        return np.bincount(np.minimum((r * self.bins) // (self.n_draws + 1), self.bins - 1),
                           minlength=self.bins)

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.3g}" for k, v in self.pvalues.items())
        return (f"<SBCResult law={self.law} sims={self.n_sims} failed={self.n_failed} "
                f"divergent_fits={self.n_divergent_fits} L={self.n_draws} bins={self.bins} p: {ps}>")


def _is_fixed(prior) -> bool:
    return type(prior).__name__ == "Delta"


def _scalar_items(name: str, value, spec) -> list[tuple[str, float, tuple]]:
    """(label, value, index) for each scalar element of a parameter."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return [(name, float(arr), ())]
    g = name.split("_by_")[-1] if "_by_" in name else None
    labels = spec.coords.get(g, list(range(arr.shape[0]))) if g else list(range(arr.shape[0]))
    return [(f"{name}[{labels[i]}]", float(arr[i]), (i,)) for i in range(arr.shape[0])]


def sbc(law, design: pd.DataFrame | None = None, *, n_sims: int = 100, seed: int = 0, chains: int = 1,
        warmup: int = 200, draws: int = 400, thin: int = 4, pool=None, priors=None, fit_priors=None,
        params=None, bins: int | None = None, target_accept: float | None = None,
        dense_mass=None, sampler: str = "nuts", scheduler: str | None = None,
        batch_options: dict | None = None, progress: bool = False) -> SBCResult:
    """Simulation-based calibration of ``law`` (see the module docstring).

    Each simulation draws every parameter and the data from the prior of the NumPyro model
    (``Law.simulate(design, None, seed=...)`` with ``pool`` and ``priors``), fits it with NUTS
    (``chains`` x ``warmup`` + ``draws``; with ``fit_priors`` instead of ``priors`` when given, which
    is how a deliberately misspecified control is built), keeps every ``thin``-th draw of each chain
    (L = chains * ceil(draws / thin) draws) and records, for each parameter in ``params`` (default:
    every law and noise parameter that is sampled, not fixed, in both models), the number of kept
    draws below the true value. Vector-valued parameters (e.g. ``"log_A0_by_family"``) are ranked
    element by element.

    The sampler is compiled once: every simulation has the same law, shapes and settings, so
    :func:`bayescale.inference.sample_posterior` reuses its cached MCMC object. Simulations whose
    data are unusable (non-finite or non-positive responses) or whose fit fails or returns
    non-finite draws are counted in ``failures`` with the reason; they contribute no rank.
    ``bins`` defaults to ``min(20, n_ok // 5)`` (>= 5 expected per bin), at least 2.

    ``sampler="hmc"`` fits all simulations in one compiled batch with
    :func:`bayescale.batch.fit_many` (fixed-length HMC; ``scheduler``, a Dask address, spreads the
    batch over a cluster) instead of one NUTS fit after another; ``batch_options`` are passed on to
    it (e.g. ``{"trajectory": 1.0}``).

    ``progress=True`` shows a bar of finished simulations on stderr: one step per NUTS fit, or
    per compiled batch (``sampler="hmc"``) or Dask chunk as each finishes.
    """
    from .inference import build

    law = get_law(law)
    if not isinstance(n_sims, (int, np.integer)) or n_sims < 1:
        raise BayescaleError(f"n_sims must be a positive integer, got {n_sims!r}")
    if not isinstance(thin, (int, np.integer)) or thin < 1:
        raise BayescaleError(f"thin must be a positive integer, got {thin!r}")
    design = default_design(law) if design is None else design.reset_index(drop=True)
    fit_priors = priors if fit_priors is None else fit_priors

    # which parameters to rank: sampled (not fixed) in both the simulating and the fitting model
    sim_spec, _ = build(design.assign(**{law.response: 1.0}), law, pool=pool, priors=priors,
                        duplicates="keep")
    fit_spec0, _ = build(design.assign(**{law.response: 1.0}), law, pool=pool, priors=fit_priors,
                         duplicates="keep")
    if params is None:
        params = [k for k in law.all_params()
                  if not _is_fixed(sim_spec.priors[k]) and not _is_fixed(fit_spec0.priors[k])]
    elif isinstance(params, str):
        params = [params]
    params = list(params)
    if not params:
        raise BayescaleError("no parameter to rank: every parameter is fixed in one of the models")
    if target_accept is None:
        target_accept = 0.95 if any(k in law.params for k in fit_spec0.pooled) else 0.8

    rng = np.random.default_rng(seed)
    sim_seeds = rng.integers(0, 2**31 - 1, size=n_sims)
    fit_seeds = rng.integers(0, 2**31 - 1, size=n_sims)
    tie_rng = np.random.default_rng([seed, 1])
    n_kept = chains * len(range(0, draws, thin))
    ranks: dict[str, list[int]] = {}
    truths: dict[str, list[float]] = {}
    failures: list[tuple[int, str]] = []
    divergences, seconds, ok_index = [], [], []
    simulated = []
    for i in range(n_sims):
        try:
            df, truth = law.simulate(design, None, seed=int(sim_seeds[i]), pool=pool, priors=priors)
        except (BayescaleError, ValueError, FloatingPointError) as exc:
            failures.append((i, f"simulation failed: {exc}"))
            continue
        y = df[law.response].to_numpy(np.float64)
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            failures.append((i, f"simulated {law.response} not finite and positive "
                                f"({int(np.sum(~np.isfinite(y) | (y <= 0)))} bad row(s))"))
            continue
        missing = [p for p in params if p not in truth]
        if missing:
            raise BayescaleError(f"cannot rank {missing}: the simulating model has {sorted(truth)}")
        simulated.append((i, df, truth))
    with tqdm(total=n_sims, initial=n_sims - len(simulated), desc=f"SBC {law.spec}", unit="sim",
              disable=not progress) as bar:
        fitted = _sbc_fits(law, simulated, fit_seeds, sampler=sampler, scheduler=scheduler, pool=pool,
                           priors=fit_priors, chains=chains, warmup=warmup, draws=draws,
                           target_accept=target_accept, dense_mass=dense_mass, failures=failures,
                           options=batch_options or {}, on_done=bar.update)
    for i, _, truth in simulated:
        if i not in fitted:
            continue
        idata, spec, secs = fitted[i]
        seconds.append(secs)
        post = idata.posterior
        items, bad = [], []
        for name in params:
            if name not in post:
                raise BayescaleError(f"cannot rank {name!r}: the fitted model has {sorted(post.data_vars)}")
            kept = np.asarray(post[name].values, dtype=np.float64)[:, ::thin]
            kept = kept.reshape((-1,) + kept.shape[2:])
            if not np.all(np.isfinite(kept)):
                bad.append(name)
            for label, value, index in _scalar_items(name, truth[name], spec):
                column = kept[(slice(None),) + index]
                # rank = draws below the truth, ties (a stuck chain, float32 rounding) broken at random
                ties = int(np.sum(column == value))
                rank = int(np.sum(column < value)) + (int(tie_rng.integers(0, ties + 1)) if ties else 0)
                items.append((label, rank, value))
        if bad:
            failures.append((i, f"non-finite posterior draws of {bad}"))
            continue
        divergences.append(int(np.asarray(idata.sample_stats["diverging"]).sum()))
        ok_index.append(i)
        for label, r, value in items:
            ranks.setdefault(label, []).append(r)
            truths.setdefault(label, []).append(value)

    n_ok = n_sims - len(failures)
    if bins is None:
        bins = int(max(2, min(20, n_ok // 5)))
    out_ranks = {k: np.asarray(v, dtype=np.int64) for k, v in ranks.items()}
    chi2, pvalues = {}, {}
    for k, r in out_ranks.items():
        chi2[k], pvalues[k] = rank_uniformity(r, n_kept, bins)
    divergences = np.asarray(divergences, dtype=np.int64)
    return SBCResult(
        law=law.spec, n_sims=n_sims, n_draws=n_kept, bins=int(min(bins, n_kept + 1)),
        ranks=out_ranks, pvalues=pvalues, chi2=chi2,
        truths={k: np.asarray(v) for k, v in truths.items()},
        n_divergent_fits=int(np.sum(divergences > 0)), divergences=divergences,
        failures=failures, fit_seconds=np.asarray(seconds), sim_index=np.asarray(ok_index, dtype=np.int64),
        settings={"seed": seed, "sampler": sampler, "chains": chains, "warmup": warmup, "draws": draws,
                  "thin": thin,
                  "pool": pool, "priors": priors, "fit_priors": fit_priors, "params": params,
                  "target_accept": target_accept, "design_rows": len(design),
                  "batch_options": batch_options},
    )


def _sbc_fits(law, simulated, fit_seeds, *, sampler, scheduler, pool, priors, chains, warmup, draws,
              target_accept, dense_mass, failures, options, on_done) -> dict:
    """Fit every simulation: {index: (InferenceData, ModelSpec, seconds)}; failures are appended.
    ``on_done(n)`` is called as fits finish (n of them), failed ones included."""
    from .inference import build, sample_posterior

    fitted = {}
    if sampler == "nuts" and scheduler is None:
        for i, df, _ in simulated:
            t0 = time.perf_counter()
            try:
                spec, data = build(df, law, pool=pool, priors=priors, duplicates="keep")
                idata, _ = sample_posterior(spec, data, seed=int(fit_seeds[i]), chains=chains,
                                            warmup=warmup, draws=draws, progress=False,
                                            target_accept=target_accept, dense_mass=dense_mass)
            except (BayescaleError, ValueError, FloatingPointError, RuntimeError) as exc:
                failures.append((i, f"fit failed: {type(exc).__name__}: {exc}"))
            else:
                fitted[i] = (idata, spec, time.perf_counter() - t0)
            on_done(1)
        return fitted
    from .batch import fit_many

    if not simulated:
        return fitted
    try:
        fits = fit_many([df for _, df, _ in simulated], law, pool=pool, priors=priors,
                        seed=[int(fit_seeds[i]) for i, _, _ in simulated], sampler=sampler,
                        chains=chains, warmup=warmup, draws=draws, target_accept=target_accept,
                        dense_mass=dense_mass, duplicates="keep", scheduler=scheduler,
                        on_done=on_done, **options)
    except (BayescaleError, ValueError, FloatingPointError, RuntimeError) as exc:
        failures.extend((i, f"batched fit failed: {type(exc).__name__}: {exc}") for i, _, _ in simulated)
        return fitted
    for (i, _, _), f in zip(simulated, fits):
        fitted[i] = (f.idata, f.spec, f.config["stats"]["sampling_seconds"])
    return fitted


# ---- held-out calibration -------------------------------------------------------------------

METHOD = "bayescale"


@dataclass
class CalibrationResult:
    """Scores of bayescale and its baselines on one held-out split."""

    law: str
    holdout: str
    n_train: int
    n_heldout: int
    summary: dict                      # the JSON summary (DESIGN.md keys)
    points: pd.DataFrame               # held-out rows with per-method predictions and scores
    pit: dict[str, np.ndarray]
    fit: object
    heldout: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        rows = {}
        for name, s in [(f"{METHOD} (new observation)", self.summary),
                        (f"{METHOD} (mean curve)", self.summary["mean_curve"]),
                        *[(k, v) for k, v in self.summary["baselines"].items() if "coverage" in v]]:
            row = {f"cov_{k}": v for k, v in s["coverage"].items()}
            row.update({k: s[k] for k in ("median_are", "crps", "interval_score_90", "elpd")})
            rows[name] = row
        return pd.DataFrame.from_dict(rows, orient="index")

    def write_json(self, path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.summary, indent=2))
        return path

    def write_report(self, out_dir) -> Path:
        from .report import plot_fit, plot_pit, plot_reliability, write_html

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        plot_fit(self.fit, out_dir / "fit.png", heldout=self.heldout)
        curves = {f"{METHOD} (new observation)": self.summary,
                  f"{METHOD} (mean curve)": self.summary["mean_curve"]}
        curves.update({k: v for k, v in self.summary["baselines"].items() if "coverage" in v})
        plot_reliability(curves, out_dir / "reliability.png")
        plot_pit(self.pit, out_dir / "pit.png")
        return write_html(out_dir, f"bayescale calibration: {self.law}, holdout {self.holdout}",
                          ["fit.png", "reliability.png", "pit.png"],
                          {"scores on held-out runs": self.table(), "held-out points": self.points},
                          summary=self.summary, notes=self.notes)


def _scored(draws, truth, levels):
    points = score_points(draws, truth, levels)
    return points, aggregate(points, levels)


def calibrate(df: pd.DataFrame, law="chinchilla", holdout="top-compute:0.1", *, by: str | None = None,
              pool=None, priors=None, seed: int = 0, chains: int = 4, warmup: int = 1000,
              draws: int = 1000, n_boot: int = 1000, baselines=("bootstrap", "no-pool"),
              natural=None, levels=LEVELS, progress: bool = False, columns=None,
              duplicates: str = "error") -> CalibrationResult:
    """Fit on the runs a holdout protocol leaves, predict the held-out ones, score both.

    ``holdout`` is 'top-compute:F', 'largest-n:K', 'natural' (with ``natural`` the dataset's mask)
    or a boolean mask. The headline scores are for a new observation (noise included), the
    quantity a held-out run measures; ``summary["mean_curve"]`` scores the law's mean curve.
    Baselines on the same split: 'bootstrap' (Huber + L-BFGS grid + bootstrap, Epoch's method)
    and 'no-pool' (separate bayescale fits per group of the pooled grouping).
    ``progress=True`` shows each fit's sampling bar on stderr and, with baselines, a bar of fits.
    """
    from .baselines import huber_bootstrap
    from .data import apply_column_map
    from .inference import fit as fit_law
    from .models import get_law

    t_start = time.perf_counter()
    law = get_law(law)
    table = apply_column_map(df, columns).reset_index(drop=True)
    if isinstance(holdout, str):
        mask, label = holdout_protocols.parse(holdout, table, by=by, natural=natural), holdout
    else:
        mask, label = np.asarray(holdout, dtype=bool), "explicit mask"
        if mask.shape != (len(table),) or mask.all() or not mask.any():
            raise BayescaleError("an explicit holdout mask must be one boolean per row, with rows on both sides")
    train, test = table.loc[~mask].reset_index(drop=True), table.loc[mask].reset_index(drop=True)
    response = law.response
    if response not in test:
        raise BayescaleError(f"held-out rows need the response column '{response}'")
    truth = pd.to_numeric(test[response]).to_numpy(np.float64)
    notes: list[str] = []

    # one step per fit: the main fit, the bootstrap baseline, each no-pool group fit
    with tqdm(total=1 + len(baselines), desc=f"calibrate {law.spec}", unit="fit",
              disable=not progress or not baselines) as bar:
        main = fit_law(train, law, pool=pool, priors=priors, seed=seed, chains=chains, warmup=warmup,
                       draws=draws, progress=progress, duplicates=duplicates)
        bar.update(1)
        t_fit = time.perf_counter() - t_start
        _, obs_draws = main.predict(test, kind="observation", seed=seed, return_draws=True)
        _, mean_draws = main.predict(test, kind="mean", return_draws=True)
        obs_points, obs_summary = _scored(obs_draws.values, truth, levels)
        _, mean_summary = _scored(mean_draws.values, truth, levels)
        points = test.copy()
        points[f"{METHOD}_median"] = np.median(obs_draws.values, axis=0)
        for k in ("pit", "crps", "are"):
            points[f"{METHOD}_{k}"] = obs_points[k]
        pit_values = {f"{METHOD} (new observation)": obs_points["pit"]}

        summary = {"law": law.spec, "holdout": label, "n_train": int(len(train)), "n_heldout": int(len(test)),
                   "kind": "observation (new run's loss, noise included)", **obs_summary,
                   "mean_curve": {"kind": "mean (the law's expected value, no run noise)", **mean_summary},
                   "baselines": {}, "seed": int(seed), "pooled": main.spec.pooled,
                   "diagnostics": main.diagnostics}

        for name in baselines:
            t0 = time.perf_counter()
            bar.set_postfix_str(name)
            if name == "bootstrap":
                boot = huber_bootstrap(train, law, n_boot=n_boot, seed=seed, duplicates=duplicates)
                bar.update(1)
                _, bdraws = boot.predict(test, kind="mean", return_draws=True)
                bpoints, bsummary = _scored(bdraws, truth, levels)
                bsummary["kind"] = f"Huber (delta 1e-3) + L-BFGS grid + {n_boot} bootstrap refits, parameter intervals"
                pit_values[name] = bpoints["pit"]
                points[f"{name}_median"] = np.median(bdraws, axis=0)
            elif name == "no-pool":
                groups = sorted({g for k, g in main.spec.pooled.items() if k in law.params})
                if not groups:
                    summary["baselines"][name] = {"skipped": "no law parameter is pooled on these data, "
                                                  "so the no-pool fit is the bayescale fit itself"}
                    bar.update(1)
                    continue
                g = groups[0]
                pdraws = np.full((obs_draws.shape[0], len(test)), np.nan)
                # each group on its own: no between-group spreads, so their priors do not apply
                unpooled_priors = {k: v for k, v in (priors or {}).items() if not k.endswith("_tau")}
                labels_g = sorted(test[g].astype(str).unique())
                bar.total += len(labels_g) - 1  # one fit per group instead of one step
                for label_g in labels_g:
                    tr = train[train[g].astype(str) == label_g]
                    rows = np.flatnonzero(test[g].astype(str).to_numpy() == label_g)
                    if len(tr) < law.n_free + 1:
                        notes.append(f"no-pool: {g} {label_g!r} has {len(tr)} training runs, too few for its "
                                     f"own fit; its {len(rows)} held-out runs are not scored for no-pool")
                        bar.update(1)
                        continue
                    sep = fit_law(tr, law, pool="none", priors=unpooled_priors, seed=seed, chains=chains,
                                  warmup=warmup, draws=draws, progress=progress, duplicates=duplicates)
                    _, d = sep.predict(test.iloc[rows], kind="observation", seed=seed, return_draws=True)
                    pdraws[:, rows] = d.values[: pdraws.shape[0]]
                    bar.update(1)
                ok = ~np.isnan(pdraws).any(axis=0)
                if not ok.any():
                    summary["baselines"][name] = {"skipped": "no group had enough training runs"}
                    continue
                bpoints, bsummary = _scored(pdraws[:, ok], truth[ok], levels)
                bsummary["kind"] = f"separate bayescale fit per {g}, new observation"
                bsummary["n_scored"] = int(ok.sum())
                pit_values[name] = bpoints["pit"]
            else:
                raise BayescaleError(f"unknown baseline {name!r}; choose from ['bootstrap', 'no-pool']")
            bsummary["runtime_seconds"] = time.perf_counter() - t0
            summary["baselines"][name] = bsummary
    summary["runtime_seconds"] = time.perf_counter() - t_start
    summary["fit_seconds"] = t_fit
    summary["notes"] = notes + main.notes
    return CalibrationResult(law=law.spec, holdout=label, n_train=len(train), n_heldout=len(test),
                             summary=summary, points=points, pit=pit_values, fit=main, heldout=test,
                             notes=notes)
