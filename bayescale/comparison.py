"""Model comparison: which functional form the data support, and where two fitted curves cross.

* :func:`compare` ranks fits of different laws on the same observations by PSIS-LOO expected log
  predictive density (ArviZ ``az.compare`` on each fit's pointwise log-likelihood), with standard
  errors and Pareto-k warnings, beside held-out calibration scores when given.
* :func:`prob_better` gives, at chosen points, the posterior probability that fit A's loss curve
  lies below fit B's (e.g. two datasets or two architectures).
* :func:`crossover` follows both curves along compute, params or tokens and reports where they
  cross, with an interval on the crossover scale.

``bayescale.compare(fit_a, fit_b)`` is :func:`compare`; the other functions live here.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pandas as pd

from .errors import BayescaleError, BayescaleWarning
from .progress import bar as progress_bar, resolve as resolve_progress
from .checks import check_seed, law_seed

PARETO_K_BAD = 0.7
AXES = ("compute", "params", "tokens")

__all__ = ["Comparison", "Crossover", "compare", "crossover", "holdout_scores", "prob_better",
           "stacked_predict"]


def _as_fit(obj):
    from .results import Fit
    from .saved import load

    if isinstance(obj, (str, bytes)) or hasattr(obj, "__fspath__"):
        obj = load(obj)
    if isinstance(obj, Fit):
        return obj
    if hasattr(obj, "fits"):   # a stacked fit
        raise BayescaleError(f"a stacked fit (laws {list(obj.fits)}) is not one law to rank or score beside others: "
                             "compare its laws on their own (bayescale.compare(stack); CLI: bayescale compare "
                             "STACK.nc), or refit the law you want with one --law and pass that fit")
    raise BayescaleError(f"expected a bayescale.Fit or the path of a saved fit, got {type(obj).__name__}")


def _names(fits, names) -> list[str]:
    if names is None:
        names = [f.law.spec for f in fits]
        seen: dict[str, int] = {}
        out = []
        for n in names:
            seen[n] = seen.get(n, 0) + 1
            out.append(n if names.count(n) == 1 else f"{n}#{seen[n]}")
        return out
    names = [str(n) for n in names]
    if len(names) != len(fits) or len(set(names)) != len(names):
        raise BayescaleError(f"give one distinct name per fit: {len(fits)} fits, names {names}")
    return names


def check_same_data(fits, names) -> list[str]:
    """LOO compares laws only on the same observations: same rows, same observed values.

    Equal data hashes settle it. Hashes also differ when laws derive different columns from one
    table (compute, multiplier), so then the observed responses are compared row by row."""
    notes = []
    ref = fits[0]
    for fit, name in zip(fits[1:], names[1:]):
        if fit.config.get("data_hash") == ref.config.get("data_hash"):
            continue
        y0 = np.asarray(ref.idata.observed_data["y"].values, dtype=np.float64)
        y1 = np.asarray(fit.idata.observed_data["y"].values, dtype=np.float64)
        if y0.shape != y1.shape or not np.allclose(y0, y1, rtol=1e-6, atol=1e-9):
            raise BayescaleError(
                f"fits {names[0]!r} and {name!r} are on different data (data hashes "
                f"{ref.config.get('data_hash', '?')[:12]} vs {fit.config.get('data_hash', '?')[:12]}; "
                f"{y0.size} vs {y1.size} observations{'' if y0.shape != y1.shape else ', values differ'}). "
                "LOO can only rank laws fitted to the same rows: refit them on one table")
        notes.append(f"{names[0]!r} and {name!r} have different data hashes (the laws derive different "
                     "columns), but the same observed responses row by row")
    return notes


@dataclass
class Comparison:
    """The ranking: ``table`` has one row per fit (best first) and ``loo`` the ArviZ ELPD objects."""

    table: pd.DataFrame
    loo: dict
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        rows = json.loads(self.table.reset_index().to_json(orient="records"))
        return {"ranking": rows, "notes": self.notes,
                "criterion": "PSIS-LOO elpd on the fits' observed site (log loss for Student-t laws)"}

    def write_json(self, path):
        from pathlib import Path

        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def __repr__(self) -> str:
        return f"<bayescale.Comparison\n{self.table.to_string()}>"


def compare(*fits, names=None, calibration=None) -> Comparison:
    """Rank fits of different laws to the same data by PSIS-LOO ELPD (higher is better).

    ``fits`` are :class:`bayescale.Fit` objects or saved-fit paths. ``calibration`` optionally maps
    a fit's name (or position) to a :class:`bayescale.heldout.CalibrationResult` of that law
    (see :func:`holdout_scores`); its held-out CRPS, 90% coverage, median ARE and log predictive
    density are added as ``heldout_*`` columns. Pareto k above 0.7 marks observations whose LOO
    estimate is unreliable: ``n_bad_k`` counts them and a warning is raised.
    """
    if len(fits) == 1 and isinstance(fits[0], (list, tuple)):
        fits = tuple(fits[0])
    if len(fits) == 1 and hasattr(fits[0], "fits"):   # a stacked fit: compare its laws
        names = list(fits[0].fits) if names is None else names
        fits = tuple(fits[0].fits.values())
    if len(fits) < 2:
        raise BayescaleError(f"compare needs at least two fits, got {len(fits)}")
    fits = [_as_fit(f) for f in fits]
    names = _names(fits, names)
    notes = check_same_data(fits, names)
    from .results import SAMPLING_REMEDY
    for fit, name in zip(fits, names):
        if "log_likelihood" not in fit.idata.groups():
            raise BayescaleError(f"fit {name!r} has no log_likelihood group; refit it with bayescale.fit")
        problems = fit.sampling_problems()
        if problems:   # its ELPD rests on draws that may not represent the posterior
            msg = (f"{name}: its sampling checks fail ({'; '.join(problems)}), so its ELPD may be off. "
                   f"{SAMPLING_REMEDY}, before trusting its rank")
            notes.append(msg)
            warnings.warn(msg, BayescaleWarning, stacklevel=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's own k warning; reported below per fit instead
        loo = {n: az.loo(f.idata, pointwise=True) for n, f in zip(names, fits)}
        table = az.compare({n: f.idata for n, f in zip(names, fits)}, ic="loo")
    table = table.rename(columns={"se": "elpd_se", "dse": "elpd_diff_se", "warning": "loo_warning"})
    table.insert(0, "law", [fits[names.index(n)].law.spec for n in table.index])
    table["max_pareto_k"] = [float(np.max(loo[n].pareto_k.values)) for n in table.index]
    table["n_bad_k"] = [int(np.sum(loo[n].pareto_k.values > PARETO_K_BAD)) for n in table.index]
    table["n_obs"] = [fits[names.index(n)].config["n_obs"] for n in table.index]
    table = table.drop(columns=[c for c in ("scale",) if c in table])
    for n in table.index:
        bad = int(table.loc[n, "n_bad_k"])
        if bad:
            msg = (f"{n}: {bad} observation(s) with Pareto k > {PARETO_K_BAD}; their LOO terms are "
                   "unreliable (influential points): check them or compare by held-out scores")
            notes.append(msg)
            warnings.warn(msg, BayescaleWarning, stacklevel=2)
    if calibration:
        items = calibration.items() if isinstance(calibration, dict) else enumerate(calibration)
        for key, result in items:
            name = names[key] if isinstance(key, int) else str(key)
            if name not in table.index:
                raise BayescaleError(f"calibration given for {name!r}, which is not among the fits {names}")
            s = result.summary
            table.loc[name, "heldout_n"] = s["n_heldout"]
            table.loc[name, "heldout_crps"] = s["crps"]
            table.loc[name, "heldout_cov_90"] = s["coverage"]["0.9"]
            table.loc[name, "heldout_median_are"] = s["median_are"]
            table.loc[name, "heldout_elpd"] = s["elpd"]
    table.index.name = "name"
    return Comparison(table=table, loo=loo, notes=notes)


def stacked_predict(fits, df: pd.DataFrame, *, weights=None, names=None, kind: str = "observation",
                    levels=(0.5, 0.9), seed: int = 0, return_draws: bool = False):
    """Predictions from a mixture of several laws' posteriors (Bayesian model averaging by stacking).

    ``weights`` default to the PSIS-LOO stacking weights of :func:`compare` (Yao et al. 2018), so the
    laws are weighed on the data they were fitted to. Each predictive draw comes from one law, picked
    with its weight. Returns the interval table (``attrs["weights"]``), and the draws if asked.
    """
    from .predict import check_levels, interval_columns

    fits = [_as_fit(f) for f in (fits[0] if len(fits) == 1 and isinstance(fits[0], (list, tuple)) else fits)]
    names = _names(fits, names)
    if weights is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BayescaleWarning)
            table = compare(*fits, names=names).table
        weights = {n: float(table.loc[n, "weight"]) for n in names}
    if isinstance(weights, dict):
        missing = [n for n in names if n not in weights]
        if missing:
            raise BayescaleError(f"stacking weights missing for {missing}; give one per fit: {names}")
        weights = [weights[n] for n in names]
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(fits),) or np.any(w < 0) or not w.sum() > 0:
        raise BayescaleError(f"weights must be {len(fits)} non-negative numbers with a positive sum, got {weights}")
    w = w / w.sum()
    rng = np.random.default_rng(check_seed(seed))
    per_fit = [f.predict(df, kind=kind, seed=law_seed(seed, i), return_draws=True)[1].values
                for i, f in enumerate(fits)]
    n = min(len(d) for d in per_fit)
    counts = rng.multinomial(n, w)
    draws = np.concatenate([d[rng.choice(len(d), size=c, replace=False)] for d, c in zip(per_fit, counts)])
    draws = draws[rng.permutation(n)]
    out = df.reset_index(drop=True).copy()
    for col, v in interval_columns(draws, check_levels(levels)).items():
        out[col] = v
    out.attrs["weights"] = dict(zip(names, w.tolist()))
    out.attrs["kind"] = kind
    return (out, draws) if return_draws else out


def refit_options(fit) -> dict:
    """The options of :func:`bayescale.fit` that rebuild ``fit``'s model on other rows, as saved:
    pooling, priors, the discrepancy walk (its scale's prior and grouping), the group offsets, the
    column mapping and NUTS's target acceptance."""
    from .priors import describe

    spec, disc = fit.spec, fit.spec.discrepancy
    return dict(
        pool={k: v for k, v in spec.pooled.items() if k in fit.law.params} or "none",
        priors={k: v for k, v in spec.priors.items()   # the law's, and the spreads of its pooled ones
                if k in fit.law.all_params() or (k.endswith("_tau") and k[:-4] in spec.pooled)},
        discrepancy="none" if disc is None else describe(disc.prior, digits=15),
        discrepancy_by="none" if disc is None or disc.group is None else disc.group,
        offset=[t.to_json() for t in spec.offsets] or None,
        columns=fit.config.get("columns") or None,
        target_accept=fit.config.get("target_accept"),
    )


def holdout_scores(fits, df: pd.DataFrame, holdout="top-compute:0.1", *, names=None, natural=None,
                   seed=0, chains=4, warmup=1000, draws=1000, duplicates=None, progress=None) -> dict:
    """Held-out calibration of each fit's model (:func:`refit_options`: the same pooling, priors,
    discrepancy, offsets and column names) on one split of ``df``, which must be the table the
    fits were made on (its data hash is checked).

    Returns {name: CalibrationResult}, ready for ``compare(..., calibration=...)``. ``progress``
    (None: only when stderr is a terminal) shows a bar of refits on the training split (one per law)
    on stderr, above each fit's own bar."""
    from .heldout import calibrate
    from .spec import build

    fits = list(fits)
    if len(fits) == 1 and hasattr(fits[0], "fits"):   # a stacked fit: its laws, as compare(stack) ranks them
        names = list(fits[0].fits) if names is None else names
        fits = list(fits[0].fits.values())
    fits = [_as_fit(f) for f in fits]
    names = _names(fits, names)
    options = {name: refit_options(fit) for fit, name in zip(fits, names)}
    # repeated rows read as each fit read them (its data hash is of the rows it kept); fits saved
    # before that was recorded: kept
    dups = {name: duplicates or fit.config.get("duplicates") or "keep" for fit, name in zip(fits, names)}
    for fit, name in zip(fits, names):   # before any refit: scores of another table would sit beside LOO on this one
        o = options[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BayescaleWarning)   # the refit says its notes (dropped rows) itself
            _, data = build(df, fit.law.spec, pool=o["pool"], priors=o["priors"], columns=o["columns"],
                            duplicates=dups[name], discrepancy=None, offset=o["offset"])
        if data.data_hash() != fit.config.get("data_hash"):
            raise BayescaleError(
                f"fit {name!r} was not fitted to this table (data hash {str(fit.config.get('data_hash'))[:12]}, "
                f"the table's {data.data_hash()[:12]}): held-out scores of refits on it would sit beside LOO on "
                "other runs; give the table the fits were made on (CLI: --data)")
    out = {}
    progress = resolve_progress(progress)
    with progress_bar(total=len(fits), desc="held-out refits", unit="fit", disable=not progress) as bar:
        for fit, name in zip(fits, names):
            bar.set_postfix_str(name)
            out[name] = calibrate(df, fit.law.spec, holdout, natural=natural, seed=seed, chains=chains,
                                  warmup=warmup, draws=draws, baselines=(), duplicates=dups[name], law_alone=False,
                                  progress=progress, **options[name])
            bar.update(1)
    return out


# ---- one curve against another -------------------------------------------------------------------

def _paired_draws(fit_a, fit_b, points: pd.DataFrame, labels_a, labels_b) -> tuple[np.ndarray, np.ndarray]:
    """Mean-curve draws (samples x points) of both fits, truncated to a common number of draws."""
    out = []
    for fit, labels in ((fit_a, labels_a), (fit_b, labels_b)):
        frame = points.assign(**(labels or {}))
        # predict's warnings pass: a label not in the fit (a typo, another case) is predicted for a
        # new group, which the user must hear about
        _, draws = fit.predict(frame, kind="mean", return_draws=True)
        out.append(np.asarray(draws.values, dtype=np.float64))
    n = min(len(out[0]), len(out[1]))
    return out[0][:n], out[1][:n]


def prob_better(fit_a, fit_b, points: pd.DataFrame, *, labels_a=None, labels_b=None,
                levels=(0.9,)) -> pd.DataFrame:
    """P(loss of A < loss of B) at each row of ``points`` (mean curves, independent posteriors),
    with the median and intervals of the difference A - B."""
    from .predict import check_levels, interval_columns

    fit_a, fit_b = _as_fit(fit_a), _as_fit(fit_b)
    a, b = _paired_draws(fit_a, fit_b, points, labels_a, labels_b)
    out = points.copy()   # the caller's index kept
    out["p_a_better"] = np.mean(a < b, axis=0)
    for col, v in interval_columns(a - b, check_levels(levels), prefix="diff_").items():
        out[col] = v
    return out


def _path(along: str, scale: np.ndarray, tokens_per_param, params, tokens) -> pd.DataFrame:
    if along == "compute":
        n = np.sqrt(scale / (6.0 * tokens_per_param))
        d = tokens_per_param * n
    elif along == "params":
        n = scale
        d = np.full_like(scale, tokens) if tokens is not None else tokens_per_param * scale
    else:
        if params is None:
            raise BayescaleError("crossover along tokens needs the model size: params=N")
        n, d = np.full_like(scale, float(params)), scale
    return pd.DataFrame({"params": n, "tokens": d, "compute": 6.0 * n * d})


def _data_range(fits, along) -> tuple[float, float]:
    lo, hi = np.inf, 0.0
    for fit in fits:
        cd = fit.group("constant_data")
        if along in cd:
            v = np.asarray(cd[along].values, dtype=np.float64)
        elif along == "compute" and "params" in cd and "tokens" in cd:
            v = 6.0 * np.asarray(cd["params"].values) * np.asarray(cd["tokens"].values)
        else:
            raise BayescaleError(f"fit of {fit.law.spec!r} has no '{along}' data to take a range from; "
                                 "pass range=(low, high)")
        lo, hi = min(lo, v.min()), max(hi, v.max())
    return lo, hi * 100.0


@dataclass
class Crossover:
    """Where fit A's loss curve crosses fit B's along one axis.

    ``table``: per grid point, P(A below B) and the difference A - B; ``summary``: the share of
    draws whose curves cross inside the range (``p_cross``), the first crossing's median and
    interval over those draws, and P(A below B) at both ends of the range."""

    along: str
    table: pd.DataFrame
    summary: dict
    notes: list[str] = field(default_factory=list)


def crossover(fit_a, fit_b, along: str = "compute", *, range=None, grid: int = 200,
              tokens_per_param: float = 20.0, params=None, tokens=None, level: float = 0.9,
              labels_a=None, labels_b=None) -> Crossover:
    """Follow both fits' mean curves along ``along`` (compute, params or tokens) over ``range``
    (default: both fits' data range up to 100x beyond) and find where they cross.

    Along compute, runs use ``tokens_per_param`` (D = r·N, C = 6ND); along params, ``tokens``
    fixed or D = r·N; along tokens, a fixed model size ``params``. Each pair of posterior draws
    gives a crossing (the first sign change of A - B, interpolated on the log scale) or none.
    """
    from .predict import check_levels, interval_columns

    if along not in AXES:
        raise BayescaleError(f"along must be one of {list(AXES)}, got {along!r}")
    (level,) = check_levels(level)
    fit_a, fit_b = _as_fit(fit_a), _as_fit(fit_b)
    lo, hi = _data_range([fit_a, fit_b], along) if range is None else map(float, range)
    if not (0 < lo < hi and np.isfinite(hi)):
        raise BayescaleError(f"range must be two increasing positive numbers, got {(lo, hi)}")
    scale = np.geomspace(lo, hi, int(grid))
    points = _path(along, scale, tokens_per_param, params, tokens)
    a, b = _paired_draws(fit_a, fit_b, points, labels_a, labels_b)
    diff = a - b
    table = points.copy()
    table["p_a_better"] = np.mean(diff < 0, axis=0)
    for col, v in interval_columns(diff, (level,), prefix="diff_").items():
        table[col] = v
    # first sign change per draw, interpolated linearly in log(scale)
    sign = np.sign(diff)
    change = sign[:, :-1] * sign[:, 1:] < 0
    crosses = change.any(axis=1)
    first = np.argmax(change, axis=1)
    rows = np.arange(len(diff))
    d0, d1 = diff[rows, first], diff[rows, first + 1]
    logs = np.log(scale)
    frac = np.where(d1 != d0, d0 / np.where(d1 != d0, d0 - d1, 1.0), 0.5)
    at = np.exp(logs[first] + frac * (logs[first + 1] - logs[first]))[crosses]
    summary = {"along": along, "range": [float(lo), float(hi)], "n_draws": int(len(diff)),
               "p_cross": float(crosses.mean()),
               "p_a_better_start": float(table["p_a_better"].iloc[0]),
               "p_a_better_end": float(table["p_a_better"].iloc[-1]), "level": level}
    notes = []
    if at.size:
        q = np.quantile(at, [(1 - level) / 2, 0.5, (1 + level) / 2])
        summary.update(crossover_median=float(q[1]), crossover_lower=float(q[0]), crossover_upper=float(q[2]))
    else:
        notes.append(f"no posterior draw has the curves crossing between {lo:.3g} and {hi:.3g} {along}")
    if 0 < crosses.mean() < 0.5:
        notes.append(f"only {crosses.mean():.0%} of draws cross in the range: the crossover interval is "
                     "conditional on a crossing")
    return Crossover(along=along, table=table, summary=summary, notes=notes)
