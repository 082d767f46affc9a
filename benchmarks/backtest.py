"""Rolling-origin backtest over the shared studies: do predictive intervals hold at every
extrapolation distance?

For each study the runs are ordered along its extrapolation axis (training compute C = 6ND where
the runs have N and D, else the study's natural axis: tokens or examples seen for learning curves,
samples k for pass@k). Three origins fit on the smallest 50 %, 70 % and 85 % of the runs along the
axis (cut at a distinct axis value, so runs at one axis value stay together) and predict every run
beyond. Each held-out run's distance is log10(its axis value / the largest training axis value),
in decades.

Methods, all predicting a new run's measured value on the same held-out runs:

* ``law``: ``bayescale.fit(..., discrepancy="none")``, ``kind="observation"``.
* ``discrepancy``: the same law with the model-discrepancy walk, its scale s ~ WIDE
  (``LogNormal(-4.6, 1.5)``). Its posterior draws of s and the predictive draws (paired draw by
  draw) are cached, so that any other prior for s can be applied later by importance weights
  w_i ∝ p_new(s_i) / p_wide(s_i) (:func:`reweighted_scores`, ``--rescore --prior``).
* ``bootstrap``: ``bayescale.baselines.huber_bootstrap`` (Huber on log loss + L-BFGS grid +
  bootstrap refits), ``kind="observation"`` (refits x resampled log residuals); loss laws only.
* ``conformal``: split conformal on link-scale residuals (log for losses, logit for rates): a point
  fit on the training runs below the largest 30 % of training axis values, absolute residuals of
  those largest 30 % (the calibration set), the point law refitted on all training runs, intervals
  point ± the ceil((n+1)·level)-th smallest residual on the link scale (infinite when that rank
  exceeds n); its predictive distribution for CRPS is point + each signed calibration residual.

Where a study's law is pooled over groups (Gadre: corpus; BIG-bench, Pythia and the leaderboard:
task; the NMT and image-classification learning curves: curve; Monkeys: (model, benchmark)), the
two classical baselines fit each group on its own (the classical fits have no groups); the
calibration residuals of the conformal method are pooled over groups.

Run:
    python benchmarks/backtest.py [--studies a,b] [--quick] [--out DIR]
                                  [--prior "LogNormal(mu, tau)" | --prior-file FILE] [--rescore]

``--quick``: 2 chains x 300 + 300 draws and 50 bootstraps (a pipeline check, not a result).
``--cache DIR``: where the draws go (default ``benchmarks/backtest_cache/``, git-ignored; give quick
runs their own folder). ``--methods``: a subset of the methods (checks only). ``--dry-run``: print
each study's runs and origins without fitting.
``--rescore``: rebuild every table from the cache, no fitting.
``--prior``: also score the discrepancy method reweighted to that prior for s (``--prior-file``: a
text file with one prior, or a JSON object {"default": prior, "<study>": prior, ...}).
Writes ``backtest.json``, ``backtest.md`` and ``backtest_coverage.png`` to ``--out``
(default ``benchmarks/out/backtest``). Needs the datasets folder (BAYESCALE_DATA or
../shared/datasets); studies whose folder is absent are skipped with the reason printed.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
_DEFAULT_DATA = HERE.parent.parent / "shared" / "datasets"
if "BAYESCALE_DATA" not in os.environ and _DEFAULT_DATA.is_dir():
    os.environ["BAYESCALE_DATA"] = str(_DEFAULT_DATA)
sys.path.insert(0, str(HERE))

import bayescale  # noqa: E402
from bayescale import datasets  # noqa: E402
from bayescale import scores as bscores  # noqa: E402
from bayescale.errors import BayescaleError, BayescaleWarning  # noqa: E402
from bayescale.models import get_law  # noqa: E402

WIDE = "LogNormal(-4.6, 1.5)"
ORIGINS = (0.5, 0.7, 0.85)
CAL_SHARE = 0.3                       # conformal: the largest 30 % of training axis values calibrate
LEVELS = (0.5, 0.8, 0.9, 0.95)
BINS = ((0.0, 0.5, "<0.5"), (0.5, 1.0, "0.5-1"), (1.0, 2.0, "1-2"), (2.0, math.inf, ">2"))
METHODS = ("law", "discrepancy", "bootstrap", "conformal")
NEW = "discrepancy@prior"      # the discrepancy fit's draws reweighted to the leave-one-study-out prior
RIVALS = ("bootstrap", "conformal")   # the classical baselines the new model's CRPS is compared with
CACHE = HERE / "backtest_cache"
OUT = HERE / "out" / "backtest"
SEED = 0
RATE_EPS = 1e-3                       # rates are clipped to [eps, 1 - eps] before a logit


# ---- studies ---------------------------------------------------------------------------------

@dataclass
class Study:
    name: str
    dataset: str
    law: str
    axis: str                          # column ordering the runs; distances in decades of it
    load: object                       # () -> DataFrame with the fit columns and the axis
    fit_cols: tuple[str, ...]
    pool: object = None
    priors: dict | None = None
    group: str | None = None           # grouping the law is pooled over (classical baselines per group)
    offset: object = None              # group offset terms (bayescale.group_offset), if any
    note: str = ""
    subsample: str = "none"


def _epoch():
    return datasets.load("chinchilla_epoch")


def _gadre():
    return datasets.load("gadre_overtraining")


def _gemstones():
    from calibration_suite import final_checkpoints

    return final_checkpoints(datasets.load("gemstones"))


def _step_law():
    return datasets.load("step_law", best_only=True)


def _lc(domain):
    def load():
        return datasets.load("learning_curves_nslpfn", domain=domain)
    return load


def _lc_bb():
    """The BIG-bench curves at every other one of their 43 shared example counts (the 1st, 3rd,
    ...): 22 per curve, 220 rows, so that one fit stays affordable."""
    df = datasets.load("learning_curves_nslpfn", domain="BB")
    values = np.unique(df.tokens)
    return df[df.tokens.isin(values[::2])].reset_index(drop=True)


def _lc_raw(file: str, domain: str) -> pd.DataFrame:
    """Rows of one domain of the learning-curve benchmark, read from the source CSV (exact duplicates
    dropped, as the dataset's PROVENANCE.md asks): ``bayescale.datasets`` does not load the NMT and
    image-classification curves, since the source gives no parameter counts and its schema needs
    them; a law in examples seen alone (``power:tokens``) does not."""
    from bayescale.datasets._common import read_csv

    raw = read_csv("learning_curves_nslpfn", f"data/{file}", None).drop_duplicates()
    raw = raw[raw["Domain"] == domain]
    return pd.DataFrame({"tokens": raw["Seen Examples"].to_numpy(np.float64), "loss": raw["Loss"].to_numpy(np.float64),
                         "task": raw["Model"].astype(str).to_numpy() if domain == "NMT"
                         else (raw["Task"] + " " + raw["Model"]).astype(str).to_numpy(),
                         "shots": raw["Task"].str.extract(r"_(\d+)$")[0].to_numpy() if domain == "IC" else ""})


def _lc_nmt():
    """The 5 machine-translation curves (one architecture each, log-perplexity vs examples seen)."""
    return _lc_raw("benchmark.lang.csv", "NMT").drop(columns="shots").reset_index(drop=True)


IC_SHOTS = "10"
IC_POINTS = 16


def _lc_ic():
    """The image-classification curves at 10 shots: 6 architectures x 4 downstream datasets, each
    thinned to the points nearest 16 values evenly spaced in log examples seen over the curve's
    range (the source's checkpoints are dense late in training, and a scaling axis is read in
    decades). The 5-, 10- and 25-shot curves of one architecture are three linear probes of one
    upstream run, not three runs, so one shot count keeps the curves independent."""
    df = _lc_raw("benchmark.vision.csv", "IC")
    df = df[df["shots"] == IC_SHOTS].drop(columns="shots").sort_values(["task", "tokens"])
    keep = []
    for _, g in df.groupby("task", sort=True):
        logx = np.log10(g["tokens"].to_numpy())
        grid = np.linspace(logx[0], logx[-1], IC_POINTS)
        keep.append(g.iloc[np.unique(np.abs(logx[None, :] - grid[:, None]).argmin(axis=1))])
    return pd.concat(keep).reset_index(drop=True)


def _pythia():
    from downstream_suite import CHANCE_PYTHIA

    df = datasets.load("pythia_evals")
    df = df[(df.family == "pythia") & (df.dataset == "pile") & (df.step == 143000) & (df.shots == 0)].copy()
    mmlu = sorted(t for t in df.task.unique() if t.startswith("hendrycksTest"))[:8]
    df = df[df.task.isin(list(CHANCE_PYTHIA) + mmlu)].copy()
    df["chance"] = [CHANCE_PYTHIA.get(t, 0.25) for t in df.task]
    return df.reset_index(drop=True)


def _leaderboard():
    from downstream_suite import CHANCE_LEADERBOARD

    df = datasets.load("obsscaling_leaderboard_v2")
    df = df[df.task.isin(list(CHANCE_LEADERBOARD))].copy()
    df["chance"] = df.task.map(CHANCE_LEADERBOARD).astype(float)
    df["trials"] = 0.0
    df["p_correct"] = df.p_correct.clip(1e-3, 1 - 1e-3)
    return df.reset_index(drop=True)


def _monkeys():
    from downstream_suite import monkeys_coverage

    cov = monkeys_coverage()
    return cov[cov.groupby("family").p_correct.transform("max") > 0].reset_index(drop=True)


BB_POOL = {"E": "task", "log_A0": "task", "alpha": "task", "sigma": "task"}
BB_PRIORS = {f"{k}_tau": "HalfNormal(1.0)" for k in ("E", "log_A0", "alpha", "sigma")}

STUDIES = [
    Study("epoch", "chinchilla_epoch", "chinchilla", "compute", _epoch, ("params", "tokens", "loss"),
          note="Epoch's 240 Chinchilla points (5 outliers dropped as Epoch do)"),
    Study("gadre", "gadre_overtraining", "chinchilla", "compute", _gadre,
          ("params", "tokens", "loss", "dataset", "family"), group="dataset",
          note="104 open_lm runs on 3 corpora (c4_val loss); law's default pooling: E, B and the noise by corpus"),
    Study("gemstones", "gemstones", "power", "compute", _gemstones, ("params", "loss"),
          note="final checkpoint of each of the 22 shapes (one token budget, so compute ∝ N), L(N)"),
    Study("step_law", "step_law", "chinchilla", "compute", _step_law, ("params", "tokens", "loss"),
          note="best (lr, batch) run of each of the 17 (N, D) cells"),
    Study("lc_lm", "learning_curves_nslpfn", "chinchilla", "tokens", _lc("LM"), ("params", "tokens", "loss"),
          note="5 decoder sizes, rescaled loss vs tokens seen (the calibration suite's law)"),
    Study("lc_bb", "learning_curves_nslpfn", "power:tokens", "tokens", _lc_bb,
          ("tokens", "loss", "task"), pool=BB_POOL, priors=BB_PRIORS, group="task",
          note="10 BIG-bench (task, shot) curves of one 262M model, error vs examples seen; E, A, alpha, "
               "noise pooled by task with HalfNormal(1) spreads (the calibration suite's setting)",
          subsample="every other example count (22 of 43 per curve): 220 of 430 rows"),
    Study("lc_nmt", "learning_curves_nslpfn", "power:tokens", "tokens", _lc_nmt, ("tokens", "loss", "task"),
          pool=BB_POOL, priors=BB_PRIORS, group="task",
          note="5 machine-translation curves (one architecture each), log-perplexity vs examples seen; E, A, "
               "alpha, noise pooled by curve with HalfNormal(1) spreads (as BIG-bench)"),
    Study("lc_ic", "learning_curves_nslpfn", "power:tokens", "tokens", _lc_ic, ("tokens", "loss", "task"),
          pool=BB_POOL, priors=BB_PRIORS, group="task",
          note="image classification: 10-shot error of 6 architectures on 4 downstream datasets (24 curves) vs "
               "upstream examples seen; E, A, alpha, noise pooled by curve with HalfNormal(1) spreads",
          subsample=f"10-shot curves only (5/10/25 shots probe one upstream run); per curve the points nearest "
                    f"{IC_POINTS} values evenly spaced in log examples seen"),
    Study("pythia", "pythia_evals", "accuracy-sigmoid", "compute", _pythia,
          ("compute", "p_correct", "trials", "chance", "task"), group="task",
          note="Pythia (standard Pile) final checkpoints, 0-shot, 8 tasks + 8 MMLU subjects "
               "(downstream suite); a, b pooled by task; compute ∝ N (one token count)"),
    Study("leaderboard", "obsscaling_leaderboard_v2", "accuracy-sigmoid", "compute", _leaderboard,
          ("compute", "p_correct", "trials", "chance", "task", "family"), group="task",
          offset=("family", "family*task"),
          note="Open LLM Leaderboard v2: GPQA, MMLU-Pro, IFEval, MATH-hard (downstream suite; rates only, "
               "scores clipped to [1e-3, 1 - 1e-3]); a, b pooled by task; offsets per model family and per "
               "(family, task) (observational data from many labs: families differ at equal compute, and "
               "by how much depends on the task)"),
    Study("monkeys", "monkeys_pass_at_k", "pass-at-k", "attempts", _monkeys,
          ("attempts", "p_correct", "trials", "family"), group="family",
          note="pass@k coverage over 128 problems per (Pythia model, benchmark) at k = 1, 2, 4, ... "
               "(downstream suite); log c, alpha pooled by (model, benchmark)"),
]
BY_NAME = {s.name: s for s in STUDIES}


# ---- origins ---------------------------------------------------------------------------------

def origin_splits(axis: np.ndarray) -> dict[str, np.ndarray]:
    """Training masks of the three origins: for a share f of the runs, the runs up to the distinct
    axis value whose cumulative share of runs is nearest f (runs at one axis value stay together;
    at least 2 distinct values trained on and 1 held out)."""
    values, counts = np.unique(axis, return_counts=True)
    share = np.cumsum(counts) / len(axis)
    out = {}
    for f in ORIGINS:
        k = int(np.clip(np.argmin(np.abs(share - f)) + 1, 2, len(values) - 1))
        out[f"{round(f * 100)}"] = axis <= values[k - 1]
    return out


def calibration_split(axis: np.ndarray) -> np.ndarray:
    """Conformal calibration rows: the largest 30 % of the training runs' distinct axis values
    (at least one value)."""
    values = np.unique(axis)
    n_cal = max(1, int(np.floor(CAL_SHARE * len(values) + 0.5)))
    return axis > values[len(values) - n_cal - 1] if n_cal < len(values) else np.ones(len(axis), bool)


# ---- point fits for the conformal method -------------------------------------------------------

@dataclass
class PointFit:
    """A point estimate of a law's parameters (one value each, no groups) on its centred scale."""

    law: object
    logref: dict
    estimate: dict

    def point(self, df: pd.DataFrame) -> np.ndarray:
        """The expected response at the rows of ``df`` (the curve; for laws with a chance floor the
        accuracy, from column ``chance``)."""
        from bayescale.design import centre

        law = self.law
        x = centre(law, {k: df[k].to_numpy(np.float64) for k in law.inputs}, self.logref)
        p = {k: np.float64(v) for k, v in self.estimate.items()}
        mu = np.asarray(law.mean(x, p, xp=np), dtype=np.float64)
        aux = {c: df[c].to_numpy(np.float64) for c in law.mean_extras}
        return np.broadcast_to(np.asarray(law.observation.expected(mu, aux, np), dtype=np.float64), (len(df),)).copy()


def logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), RATE_EPS, 1 - RATE_EPS)
    return np.log(p) - np.log1p(-p)


def expit(z):
    return 1.0 / (1.0 + np.exp(-z))


def rate_point_fit(df: pd.DataFrame, law, delta: float = 1e-3, n_starts: int = 16) -> PointFit:
    """Huber (``delta``) on logit residuals of the expected rate + L-BFGS from a grid of starts (each
    parameter at the 0.2, 0.5, 0.8 quantiles of its prior), as huber_bootstrap does on log loss."""
    import jax
    import jax.numpy as jnp
    from numpyro.distributions.transforms import biject_to
    from scipy.optimize import minimize

    from bayescale.design import centre, reference_scales

    names = list(law.params)
    transforms = [biject_to(law.params[k].prior.support) for k in names]
    inputs = {k: df[k].to_numpy(np.float64) for k in law.inputs}
    logref = reference_scales(law, inputs)
    x = {k: jnp.asarray(v) for k, v in centre(law, inputs, logref).items()}
    aux = {c: jnp.asarray(df[c].to_numpy(np.float64)) for c in law.mean_extras}
    target = jnp.asarray(logit(df[law.response].to_numpy(np.float64)))

    def objective(u):
        p = {k: t(u[i]) for i, (k, t) in enumerate(zip(names, transforms))}
        e = jnp.clip(law.observation.expected(law.mean(x, p), aux, jnp), RATE_EPS, 1 - RATE_EPS)
        r = jnp.log(e) - jnp.log1p(-e) - target
        a = jnp.abs(r)
        v = jnp.sum(jnp.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))) / delta
        return jnp.where(jnp.isfinite(v), v, 1e30)

    vg = jax.jit(jax.value_and_grad(objective))
    batch = jax.jit(jax.vmap(objective))
    starts = []
    for k in names:
        prior = law.params[k].prior
        draws = np.asarray(prior.sample(jax.random.PRNGKey(0), (2001,)))
        starts.append(np.asarray(biject_to(prior.support).inv(jnp.asarray(np.quantile(draws, (0.2, 0.5, 0.8))))))
    grid = np.array(list(itertools.product(*starts)), dtype=np.float64)
    best = grid[np.argsort(np.asarray(batch(jnp.asarray(grid))))[:n_starts]]

    def f(u):
        v, g = vg(jnp.asarray(u))
        return float(v), np.asarray(g, dtype=np.float64)

    sols = [minimize(f, u0, jac=True, method="L-BFGS-B", options={"maxiter": 500}) for u0 in best]
    u = min(sols, key=lambda s: s.fun).x
    est = {k: float(t(jnp.asarray(u[i]))) for i, (k, t) in enumerate(zip(names, transforms))}
    return PointFit(law=law, logref=logref, estimate=est)


def point_fit(df: pd.DataFrame, law) -> PointFit:
    if law.observation.link_name == "log":
        from bayescale.baselines import huber_bootstrap

        b = huber_bootstrap(df[[*law.inputs, law.response]], law.spec, n_boot=0, seed=SEED, duplicates="keep")
        return PointFit(law=law, logref=b.logref, estimate=b.estimate)
    return rate_point_fit(df, law)


def link_fn(name):
    return (np.log, np.exp) if name == "log" else (logit, expit)


def groups_of(study: Study, df: pd.DataFrame):
    if study.group is None:
        return [(None, np.ones(len(df), bool))]
    return [(g, (df[study.group] == g).to_numpy()) for g in sorted(df[study.group].unique())]


def conformal(study: Study, train: pd.DataFrame, test: pd.DataFrame, law,
              full_fits: dict | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """Point prediction at the held-out rows (NaN where the group could not be fitted) and the
    signed link-scale calibration residuals (pooled over groups). ``full_fits`` (group -> PointFit)
    are point fits on all training runs already made (the bootstrap's estimates: the same Huber
    fit of the same rows), reused instead of refitting."""
    link, _ = link_fn(law.observation.link_name)
    cal = calibration_split(train[study.axis].to_numpy(np.float64))
    point = np.full(len(test), np.nan)
    resid, notes = [], []
    for g, rows in groups_of(study, train):
        trows = (test[study.group] == g).to_numpy() if g is not None else np.ones(len(test), bool)
        if not trows.any() and not (rows & cal).any():
            continue
        tr, ca = train[rows & ~cal], train[rows & cal]
        if len(tr) < law.n_free:
            notes.append(f"{g}: {len(tr)} proper-training runs, too few for a point fit")
            continue
        try:
            if len(ca):
                p_cal = point_fit(tr, law).point(ca)
                resid.append(link(ca[law.response].to_numpy(np.float64)) - link(p_cal))
            if trows.any():
                full = (full_fits or {}).get(g) or point_fit(train[rows], law)
                point[trows] = full.point(test[trows])
        except (BayescaleError, ValueError, RuntimeError) as exc:
            notes.append(f"{g}: point fit failed ({exc})")
    return point, (np.concatenate(resid) if resid else np.array([])), notes


def bootstrap(study: Study, train: pd.DataFrame, test: pd.DataFrame, law, n_boot: int) -> tuple[np.ndarray, list, dict]:
    """Bootstrap draws at the held-out rows (NaN where a group could not be fitted), notes, and the
    full-data point estimates per group."""
    from bayescale.baselines import huber_bootstrap

    draws = np.full((n_boot, len(test)), np.nan)
    notes, estimates = [], {}
    for g, rows in groups_of(study, train):
        trows = (test[study.group] == g).to_numpy() if g is not None else np.ones(len(test), bool)
        if not trows.any():
            continue
        if rows.sum() < law.n_free:
            notes.append(f"{g}: {rows.sum()} training runs, too few")
            continue
        b = huber_bootstrap(train.loc[rows, [*law.inputs, law.response]], law.spec, n_boot=n_boot, seed=SEED,
                            duplicates="keep")
        estimates[g] = PointFit(law=law, logref=b.logref, estimate=b.estimate)
        notes.append(f"timing {g}: point fit {b.stats['point_seconds']:.1f} s, {n_boot} refits "
                     f"{b.stats['bootstrap_seconds']:.1f} s")
        _, d = b.predict(test[trows], kind="observation", seed=SEED, return_draws=True)
        draws[:, trows] = d.values
    return draws, notes, estimates


# ---- scores ----------------------------------------------------------------------------------

def _weighted_quantiles(draws: np.ndarray, weights: np.ndarray, qs) -> np.ndarray:
    """Quantiles (len(qs) x columns) of weighted draws; with equal weights exactly np.quantile's
    default (linear) rule: the k-th sorted draw sits at (W_k - w_k) / (1 - w_last), W the
    cumulative weight."""
    order = np.argsort(draws, axis=0)
    xs = np.take_along_axis(draws, order, axis=0)
    ws = weights[order]
    cum = np.cumsum(ws, axis=0)
    pos = (cum - ws) / np.maximum(1.0 - ws[-1:], 1e-300)
    return np.stack([np.array([np.interp(q, pos[:, j], xs[:, j]) for j in range(draws.shape[1])]) for q in qs])


def _weighted_crps(draws: np.ndarray, weights: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """CRPS = E_w|X - y| - E_w|X - X'|/2; the second term from sorted draws:
    sum_i w_i x_i (W_below(i) - W_above(i))."""
    term1 = (weights[:, None] * np.abs(draws - truth)).sum(axis=0)
    order = np.argsort(draws, axis=0)
    xs = np.take_along_axis(draws, order, axis=0)
    ws = weights[order]
    cum = np.cumsum(ws, axis=0)
    term2 = (ws * xs * ((cum - ws) - (1.0 - cum))).sum(axis=0)
    return term1 - term2


def _interval_scores(lo: dict, hi: dict, median: np.ndarray, truth: np.ndarray) -> dict:
    out = {f"covered_{lv:g}": (lo[lv] <= truth) & (truth <= hi[lv]) for lv in LEVELS}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rel_width_90"] = (hi[0.9] - lo[0.9]) / np.abs(median)
        a = 0.1
        out["interval_score_90"] = ((hi[0.9] - lo[0.9]) + np.where(truth < lo[0.9], (2 / a) * (lo[0.9] - truth), 0.0)
                                    + np.where(truth > hi[0.9], (2 / a) * (truth - hi[0.9]), 0.0))
    return out


def score_weighted(draws: np.ndarray, weights, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per-point scores of predictive draws (samples x points), each draw weighted (``weights``
    None: equal weights, through bayescale.scores): coverage of the central 50/80/90/95 %
    intervals (weighted quantiles), relative 90 % width (width / median), CRPS, relative CRPS
    (CRPS / |truth|) and the 90 % interval score."""
    draws = np.asarray(draws, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    qs = [0.5] + [q for lv in LEVELS for q in ((1 - lv) / 2, (1 + lv) / 2)]
    if weights is None:
        quant = np.quantile(draws, qs, axis=0)
        crps = bscores.crps(draws, truth)
    else:
        w = np.asarray(weights, dtype=np.float64)
        w = w / w.sum()
        quant = _weighted_quantiles(draws, w, qs)
        crps = _weighted_crps(draws, w, truth)
    lo = {lv: quant[1 + 2 * i] for i, lv in enumerate(LEVELS)}
    hi = {lv: quant[2 + 2 * i] for i, lv in enumerate(LEVELS)}
    out = _interval_scores(lo, hi, quant[0], truth)
    if weights is None:   # the library's own definitions (identical to the above for equal weights)
        for lv in LEVELS:
            out[f"covered_{lv:g}"] = bscores.covered(draws, truth, lv)
        out["interval_score_90"] = bscores.interval_score(draws, truth, 0.9)
    out["crps"] = crps
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rel_crps"] = crps / np.abs(truth)
    return out


def score_conformal(point, resid, link_name, truth) -> dict[str, np.ndarray]:
    """Split-conformal intervals point ± q_level on the link scale, q_level the
    ceil((n+1)·level)-th smallest |residual| (infinite when that exceeds n); CRPS of the empirical
    distribution point + signed residuals."""
    link, inv = link_fn(link_name)
    truth = np.asarray(truth, dtype=np.float64)
    n = len(resid)
    a = np.sort(np.abs(resid))
    eta = link(point)
    lo, hi = {}, {}
    for lv in LEVELS:
        k = math.ceil((n + 1) * lv)
        q = a[k - 1] if 0 < k <= n else math.inf
        lo[lv] = inv(eta - q) if math.isfinite(q) else np.full(len(point), 0.0)
        hi[lv] = inv(eta + q) if math.isfinite(q) else np.full(len(point), math.inf if link_name == "log" else 1.0)
    out = _interval_scores(lo, hi, np.asarray(point, float), truth)
    draws = inv(eta[None, :] + np.asarray(resid)[:, None]) if n else np.full((1, len(point)), np.nan)
    crps = bscores.crps(draws, truth)
    out["crps"] = crps
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rel_crps"] = crps / np.abs(truth)
    return out


def prior_logpdf(prior: str, s: np.ndarray) -> np.ndarray:
    from bayescale.priors import parse

    return np.asarray(parse(prior).log_prob(np.asarray(s)), dtype=np.float64)


def importance_weights(s: np.ndarray, prior: str, wide: str = WIDE) -> tuple[np.ndarray, float]:
    """Self-normalised weights p_new(s_i) / p_wide(s_i) and their Kish effective sample size."""
    logw = prior_logpdf(prior, s) - prior_logpdf(wide, s)
    w = np.exp(logw - np.max(logw))
    w /= w.sum()
    return w, float(1.0 / np.sum(w**2))


def load_cache(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        c = {k: z[k] for k in z.files}
    c["meta"] = json.loads(str(c["meta"]))
    return c


def reweighted_scores(cache, prior: str) -> tuple[dict[str, np.ndarray], float]:
    """Per-point scores of a cached study-origin's discrepancy predictions under the prior
    ``prior`` for the walk's scale s (text, e.g. "LogNormal(-5, 1)"), by importance weights on the
    WIDE fit's paired draws, and the weights' effective sample size. ``cache`` is a path or a
    loaded cache."""
    c = load_cache(cache) if isinstance(cache, (str, Path)) else cache
    w, ess = importance_weights(c["disc_scale"], prior, c["meta"]["wide"])
    return score_weighted(c["disc_draws"], w, c["truth"]), ess


def method_points(c: dict, prior: str | None = None) -> tuple[dict, dict]:
    """Per-point scores of every method in one cache, and per-method extras (ESS). ``link_crps``
    is the CRPS on the link scale (log loss; logit for rates): a loss law's new-run predictive is
    log-Student-t, which has no mean, so its CRPS on the response scale is a sample statistic
    without a population value, while on the link scale it is defined."""
    out, extra = {}, {}
    truth = c["truth"]
    link, _ = link_fn(c["meta"]["link"])
    t_link = link(truth)
    if "law_draws" in c:
        out["law"] = score_weighted(c["law_draws"], None, truth)
        out["law"]["link_crps"] = bscores.crps(link(c["law_draws"]), t_link)
    if "disc_draws" in c:
        out["discrepancy"] = score_weighted(c["disc_draws"], None, truth)
        out["discrepancy"]["link_crps"] = bscores.crps(link(c["disc_draws"]), t_link)
        if prior is not None:
            w, extra["ess"] = importance_weights(c["disc_scale"], prior, c["meta"]["wide"])
            out[NEW] = score_weighted(c["disc_draws"], w, truth)   # as reweighted_scores, with w kept
            out[NEW]["link_crps"] = _weighted_crps(link(c["disc_draws"]), w, t_link)
            extra["n_draws"] = int(len(c["disc_scale"]))
    if "boot_draws" in c:
        ok = ~np.isnan(c["boot_draws"]).any(axis=0)
        pts = score_weighted(c["boot_draws"][:, ok], None, truth[ok])
        pts["link_crps"] = bscores.crps(link(c["boot_draws"][:, ok]), t_link[ok])
        out["bootstrap"] = {k: _expand(v, ok) for k, v in pts.items()}
    if "conf_point" in c:
        ok = np.isfinite(c["conf_point"])
        pts = score_conformal(c["conf_point"][ok], c["conf_resid"], c["meta"]["link"], truth[ok])
        resid = np.asarray(c["conf_resid"], dtype=np.float64)
        pts["link_crps"] = (bscores.crps(link(c["conf_point"][ok])[None, :] + resid[:, None], t_link[ok])
                            if len(resid) else np.full(int(ok.sum()), np.nan))
        out["conformal"] = {k: _expand(v, ok) for k, v in pts.items()}
    return out, extra


def _expand(v, ok):
    full = np.full(len(ok), np.nan)
    full[ok] = v
    return full


# ---- aggregation -----------------------------------------------------------------------------

SCORE_KEYS = [f"covered_{lv:g}" for lv in LEVELS] + ["rel_width_90", "crps", "rel_crps", "interval_score_90"]


def summarise(pts: dict[str, np.ndarray]) -> dict:
    """Coverage, CRPS, relative CRPS and interval score averaged; relative width: median."""
    ok = ~np.isnan(pts["crps"])
    out = {"n": int(ok.sum())}
    if not ok.any():
        return out
    for k in SCORE_KEYS:
        v = np.asarray(pts[k], dtype=np.float64)[ok]
        if k == "rel_width_90":
            out[k] = float(np.median(v))
        elif k.startswith("covered"):
            out["cov_" + k.split("_")[1]] = float(np.mean(v))
        else:
            out[k] = float(np.mean(v))
    return out


def bin_of(distance: np.ndarray) -> np.ndarray:
    labels = np.empty(len(distance), dtype=object)
    for lo, hi, name in BINS:
        labels[(distance >= lo) & (distance < hi)] = name
    return labels


def build_tables(caches: dict[str, dict[str, dict]], priors: dict | None) -> dict:
    """All summaries: per study, per study x origin, per study x bin, per bin pooled over studies
    (each prediction equal weight, and studies weighted equally), overall."""
    rows = []   # one record per (study, origin, method, point)
    extras = {}
    for study, origins in caches.items():
        prior = None if priors is None else priors.get(study, priors.get("default"))
        for origin, c in origins.items():
            pts, extra = method_points(c, prior)
            if extra:
                extras[f"{study}/{origin}"] = {**extra, "prior": prior}
            bins = bin_of(c["distance"])
            for method, p in pts.items():
                rows.append((study, origin, method, bins, c["distance"], p))
    methods = [m for m in METHODS + (NEW,) if any(r[2] == m for r in rows)]

    def collect(pred):
        acc = {}
        for study, origin, method, bins, _dist, p in rows:
            mask = pred(study, origin, bins)
            if mask is None or not np.any(mask):
                continue
            d = acc.setdefault(method, {k: [] for k in SCORE_KEYS})
            for k in SCORE_KEYS:
                d[k].append(np.asarray(p[k], dtype=np.float64)[mask])
        return {m: summarise({k: np.concatenate(v) for k, v in d.items()}) for m, d in acc.items()}

    studies = list(caches)
    every = lambda s, o, b: np.ones(len(b), bool)  # noqa: E731
    out = {"methods": methods, "per_study": {}, "per_study_origin": {}, "per_study_bin": {},
           "per_bin": {}, "per_bin_equal_studies": {}, "overall": collect(every), "ess": extras}
    for s in studies:
        out["per_study"][s] = collect(lambda st, o, b, s=s: np.ones(len(b), bool) if st == s else None)
        for o in caches[s]:
            out["per_study_origin"][f"{s}/{o}"] = collect(
                lambda st, oo, b, s=s, o=o: np.ones(len(b), bool) if (st == s and oo == o) else None)
        for _, _, name in BINS:
            r = collect(lambda st, o, b, s=s, name=name: (b == name) if st == s else None)
            if r:
                out["per_study_bin"][f"{s}/{name}"] = r
    for _, _, name in BINS:
        r = collect(lambda st, o, b, name=name: b == name)
        if r:
            out["per_bin"][name] = r
            out["per_bin_equal_studies"][name] = equal_weight(
                {s: out["per_study_bin"].get(f"{s}/{name}", {}) for s in studies}, methods)
    out["overall_equal_studies"] = equal_weight(out["per_study"], methods)
    out["paired_crps"] = paired_crps(rows)
    out["paired_link_crps"] = paired_crps(rows, key="link_crps")
    return out



def paired_crps(rows, new: str = NEW, key: str = "crps") -> dict:
    """Per study and rival: the mean CRPS of the new model and of the rival over the held-out runs
    both predicted. Conformal skips groups with fewer proper-training runs than the law has
    parameters (on Pythia, since accuracy-sigmoid gained its floor, 64 of 112 runs), so the two
    methods' means over their own runs would compare different runs."""
    by = {(st, o, m): p for st, o, m, _b, _d, p in rows}
    out = {}
    for st, o, m in by:
        if m not in RIVALS or (st, o, new) not in by:
            continue
        a = np.asarray(by[(st, o, new)][key], dtype=np.float64)
        b = np.asarray(by[(st, o, m)][key], dtype=np.float64)
        ok = ~np.isnan(a) & ~np.isnan(b)
        d = out.setdefault(st, {}).setdefault(m, {"new": [], "rival": []})
        d["new"].append(a[ok])
        d["rival"].append(b[ok])
    def mean(parts):
        v = np.concatenate(parts)
        return float(np.mean(v)) if len(v) else float("nan")

    return {st: {m: {"n": int(sum(len(x) for x in d["new"])), "new": mean(d["new"]), "rival": mean(d["rival"])}
                 for m, d in ms.items()}
            for st, ms in out.items()}


def equal_weight(per_study: dict, methods) -> dict:
    """Each study's summary averaged with equal weight (studies without predictions left out)."""
    res = {}
    for m in methods:
        parts = [v[m] for v in per_study.values() if m in v and v[m].get("n", 0) > 0]
        if not parts:
            continue
        res[m] = {"n": int(sum(p["n"] for p in parts)), "n_studies": len(parts)}
        for k in parts[0]:
            if k != "n":
                res[m][k] = float(np.mean([p[k] for p in parts]))
    return res


# ---- running ---------------------------------------------------------------------------------

def budgets(quick: bool) -> tuple[dict, int]:
    if quick:
        return dict(chains=2, warmup=300, draws=300), 50
    return dict(chains=4, warmup=1000, draws=1000), 200


def nuts(study: Study, train: pd.DataFrame, budget: dict, disc: str):
    # with the walk, target_accept 0.95 rather than bayescale's default 0.99 (half the leapfrog
    # steps, so the 27 fits run in under an hour); the convergence table reports divergences
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)
        return bayescale.fit(train[list(study.fit_cols)], study.law, pool=study.pool, priors=study.priors,
                             offset=None if study.offset is None else list(study.offset), seed=SEED, progress=False, duplicates="keep", discrepancy=disc,
                             target_accept=None if disc == "none" else 0.95, **budget)


def observation_draws(fit, test) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayescaleWarning)
        _, d = fit.predict(test, kind="observation", seed=SEED, return_draws=True)
    return np.asarray(d.values, dtype=np.float64)


def run_origin(study: Study, df: pd.DataFrame, origin: str, train_mask: np.ndarray, quick: bool,
               methods=METHODS, cache: Path | None = None) -> Path:
    law = get_law(study.law)
    budget, n_boot = budgets(quick)
    train, test = df[train_mask].reset_index(drop=True), df[~train_mask].reset_index(drop=True)
    axis_max = float(train[study.axis].max())
    distance = np.log10(test[study.axis].to_numpy(np.float64) / axis_max)
    truth = test[law.response].to_numpy(np.float64)
    arrays = {"truth": truth, "distance": distance, "axis_test": test[study.axis].to_numpy(np.float64)}
    meta = {"study": study.name, "origin": origin, "law": study.law, "axis": study.axis, "link": law.observation.link_name,
            "wide": WIDE, "quick": quick, "budget": budget, "n_boot": n_boot, "n_train": int(len(train)),
            "n_heldout": int(len(test)), "axis_max_train": axis_max, "seconds": {}, "diagnostics": {}, "notes": []}
    tag = f"[{study.name} {origin}%] train {len(train)}, held out {len(test)}"
    boot_estimates = None
    for method in methods:
        t0 = time.perf_counter()
        status = ""
        try:
            if method == "law":
                f = nuts(study, train, budget, "none")
                arrays["law_draws"] = observation_draws(f, test)
                meta["diagnostics"]["law"] = _diag(f)
                status = _diag_text(f)
            elif method == "discrepancy":
                f = nuts(study, train, budget, WIDE)
                arrays["disc_draws"] = observation_draws(f, test)
                arrays["disc_scale"] = f.draws("disc_scale")
                assert len(arrays["disc_scale"]) == arrays["disc_draws"].shape[0]
                meta["diagnostics"]["discrepancy"] = _diag(f)
                status = _diag_text(f) + f", s median {np.median(arrays['disc_scale']):.3g}"
            elif method == "bootstrap":
                if law.observation.link_name != "log":
                    status = "n/a (rate law)"
                else:
                    arrays["boot_draws"], notes, boot_estimates = bootstrap(study, train, test, law, n_boot)
                    timing = [n for n in notes if n.startswith("timing")]
                    skipped = [n for n in notes if not n.startswith("timing")]
                    meta["notes"] += [f"bootstrap: {n}" for n in skipped]
                    meta["bootstrap_timing"] = timing
                    point_s = sum(float(n.split("point fit ")[1].split(" s")[0]) for n in timing)
                    status = (f"{n_boot} refits (point fits {point_s:.1f} s)"
                              + (f"; {len(skipped)} group(s) skipped" if skipped else ""))
            elif method == "conformal":
                point, resid, notes = conformal(study, train, test, law, boot_estimates)
                arrays["conf_point"], arrays["conf_resid"] = point, resid
                meta["notes"] += [f"conformal: {n}" for n in notes]
                status = f"{len(resid)} calibration residuals" + (f"; {len(notes)} group(s) skipped" if notes else "")
        except Exception as exc:   # one method failing must not stop the backtest: recorded and printed
            status = f"FAILED: {type(exc).__name__}: {str(exc)[:200]}"
            meta["notes"].append(f"{method}: {status}")
        dt = time.perf_counter() - t0
        meta["seconds"][method] = dt
        print(f"{tag}  {method:<12s} {dt:7.1f} s  {status}", flush=True)
    cache = CACHE if cache is None else Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{study.name}_{origin}.npz"
    if set(methods) != set(METHODS) and path.exists():   # a subset re-run keeps the other methods' draws
        old = load_cache(path)
        old_meta = old.pop("meta")
        for key in ("seconds", "diagnostics"):
            meta[key] = {**old_meta.get(key, {}), **meta[key]}
        meta["notes"] = [n for n in old_meta.get("notes", []) if not n.startswith(tuple(methods))] + meta["notes"]
        arrays = {**old, **arrays}
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    return path


def _diag(f) -> dict:
    """Convergence diagnostics, and the sampling time apart from compiling and predicting."""
    out = {k: float(v) for k, v in f.diagnostics.items()}
    try:
        stats = json.loads(f.posterior.attrs["bayescale"])["stats"]
        out["sampling_seconds"] = float(stats["sampling_seconds"])
        out["total_seconds"] = float(stats["total_seconds"])
    except (KeyError, ValueError, TypeError):
        pass
    return out


def _diag_text(f) -> str:
    d = f.diagnostics
    text = f"r_hat {d['max_rhat']:.3f}, ESS {d['min_ess_bulk']:.0f}, div {int(d['divergences'])}"
    s = _diag(f)
    if "sampling_seconds" in s:
        text += f", sampling {s['sampling_seconds']:.1f} s of fit {s['total_seconds']:.1f} s"
    return text


def load_study(study: Study) -> pd.DataFrame | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return study.load()
    except BayescaleError as exc:
        if "not found" in str(exc):
            print(f"[{study.name}] skipped: dataset folder absent ({str(exc).split(';')[0]})", flush=True)
            return None
        raise


def describe_study(study: Study, df: pd.DataFrame) -> dict:
    splits = origin_splits(df[study.axis].to_numpy(np.float64))
    return {"dataset": study.dataset, "law": study.law, "axis": study.axis, "pool": study.pool or "law default",
            "group_for_baselines": study.group, "n_runs": int(len(df)),
            "n_axis_values": int(df[study.axis].nunique()), "subsample": study.subsample, "note": study.note,
            "origins": {o: {"n_train": int(m.sum()), "n_heldout": int((~m).sum())} for o, m in splits.items()}}


# ---- outputs ---------------------------------------------------------------------------------

def fmt(v, digits=3):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.{digits}g}"


def score_table(title_col: str, blocks: list[tuple[str, dict]], methods) -> str:
    head = (f"| {title_col} | method | n | cov 50 | cov 80 | cov 90 | cov 95 | median rel. width 90 | CRPS "
            f"| rel. CRPS | interval score 90 |")
    lines = [head, "|" + "---|" * 11]
    for name, res in blocks:
        for m in methods:
            s = res.get(m)
            if s is None:
                if m == "bootstrap":
                    lines.append(f"| {name} | {m} | n/a (rate law) |" + " |" * 8)
                continue
            if s.get("n", 0) == 0:
                continue
            lines.append(f"| {name} | {m} | {s['n']} | {fmt(s['cov_0.5'], 2)} | {fmt(s['cov_0.8'], 2)} "
                         f"| {fmt(s['cov_0.9'], 2)} | {fmt(s['cov_0.95'], 2)} | {fmt(s['rel_width_90'])} "
                         f"| {fmt(s['crps'])} | {fmt(s['rel_crps'])} | {fmt(s['interval_score_90'])} |")
    return "\n".join(lines)


def side_by_side(title_col: str, blocks: list[tuple[str, dict]], methods, key="cov_0.9") -> str:
    lines = [f"| {title_col} | n | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 2)]
    for name, res in blocks:
        n = max([res[m]["n"] for m in methods if m in res] or [0])
        if not n:
            continue
        cells = [fmt(res[m].get(key), 2 if key.startswith("cov") else 3) if m in res and res[m].get("n") else "n/a"
                 for m in methods]
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(t: dict, old: str = "law") -> str:
    """The backtest's targets for the new model (the discrepancy with each study's leave-one-study-out
    prior), each with its figures and whether it holds."""
    new = NEW
    if new not in t["methods"]:
        return "(no reweighted discrepancy method in this run: give --prior or --prior-file)"
    lines = ["| target | figures | holds |", "|---|---|---|"]
    bins = [(b, v[new]) for b, v in t["per_bin"].items() if new in v]
    ok = all(0.85 <= v["cov_0.9"] <= 0.95 for _, v in bins)
    lines.append("| 90 % coverage in [0.85, 0.95] in every distance bin (pooled) | "
                 + ", ".join(f"{b}: {v['cov_0.9']:.2f} (n = {v['n']})" for b, v in bins) + f" | {'yes' if ok else 'no'} |")
    big = [(s, v[new]) for s, v in t["per_study"].items() if new in v and v[new].get("n", 0) >= 20]
    ok = all(v["cov_0.9"] >= 0.80 for _, v in big)
    lines.append("| 90 % coverage >= 0.80 in every study with >= 20 predictions | "
                 + ", ".join(f"{s} {v['cov_0.9']:.2f}" for s, v in big) + f" | {'yes' if ok else 'no'} |")
    wins, total, detail = paired_wins(t["paired_crps"])
    lines.append(f"| CRPS lower than bootstrap and conformal (on the runs each predicts) on >= 80 % of studies | "
                 f"{wins} of {total}: " + ", ".join(detail) + f" | {'yes' if total and wins >= 0.8 * total else 'no'} |")
    sharp = [(s, v[new]["rel_width_90"] / v[old]["rel_width_90"]) for s, v in t["per_study"].items()
             if old in v and new in v and 0.85 <= v[old]["cov_0.9"] <= 0.95]
    ok = all(r <= 1.3 for _, r in sharp)
    lines.append("| where the law alone covered within [0.85, 0.95]: median width at most 1.3x the law alone's | "
                 + (", ".join(f"{s} {r:.2f}x" for s, r in sharp) or "no such study") + f" | {'yes' if ok else 'no'} |")
    lines += ["", "How often an exactly calibrated model would meet the bin target: with n independent predictions, "
              "the share inside a calibrated 90 % interval lies in [0.85, 0.95] with probability "
              + ", ".join(f"{b}: {calibrated_chance(v['n']):.2f} (n = {v['n']})" for b, v in bins)
              + ". Predictions of one study share its fit, so they are not independent, and the real chances are lower."]
    return "\n".join(lines)


def calibrated_chance(n: int, lo: float = 0.85, hi: float = 0.95, level: float = 0.9) -> float:
    """P(lo <= K / n <= hi) for K ~ Binomial(n, level): the chance that n independent predictions of
    an exactly calibrated interval meet a coverage band."""
    from scipy import stats

    k_lo, k_hi = math.ceil(lo * n - 1e-9), math.floor(hi * n + 1e-9)
    return float(stats.binom.cdf(k_hi, n, level) - stats.binom.cdf(k_lo - 1, n, level)) if k_hi >= k_lo else 0.0


def paired_wins(paired: dict) -> tuple[int, int, list[str]]:
    """Studies where the new model's CRPS is below every rival's on the runs both predict: (wins,
    studies with a rival, one "study yes/no" per study)."""
    wins, total, detail = 0, 0, []
    for s, pairs in paired.items():
        rivals = [m for m, d in pairs.items() if d["n"] > 0]
        if not rivals:
            continue
        total += 1
        beat = all(pairs[m]["new"] < pairs[m]["rival"] for m in rivals)
        wins += beat
        detail.append(f"{s} {'yes' if beat else 'no'}")
    return wins, total, detail


def link_wins_line(t: dict) -> str:
    if "paired_link_crps" not in t:
        return ""
    wins, total, detail = paired_wins(t["paired_link_crps"])
    return f"On the link scale the new model's CRPS is lower than both baselines' on {wins} of {total} studies: " + ", ".join(detail) + "."


def paired_table(paired: dict) -> str:
    lines = [f"| study | rival | runs both predict | {NEW} | rival | lower |", "|---|---|---|---|---|---|"]
    for st, ms in paired.items():
        for m, d in ms.items():
            lower = "n/a" if d["n"] == 0 else ("yes" if d["new"] < d["rival"] else "no")
            lines.append(f"| {st} | {m} | {d['n']} | {fmt(d['new'])} | {fmt(d['rival'])} | {lower} |")
    return "\n".join(lines)


def render(summary: dict) -> str:
    t = summary["tables"]
    methods = t["methods"]
    settings = summary["settings"]
    studies = summary["studies"]
    srows = ["| study | dataset | law | pooling | axis | runs | distinct axis values | train / held out at 50 %, 70 %, "
             "85 % | subsampling |", "|" + "---|" * 9]
    for name, d in studies.items():
        o = d["origins"]
        pool = d["pool"] if isinstance(d["pool"], str) else ", ".join(f"{k} by {v}" for k, v in d["pool"].items())
        srows.append(f"| {name} | {d['dataset']} | {d['law']} | {pool} | {d['axis']} | {d['n_runs']} "
                     f"| {d['n_axis_values']} | " + ", ".join(f"{v['n_train']} / {v['n_heldout']}" for v in o.values())
                     + f" | {d['subsample']} |")
    skipped = "".join(f"\n- {k}: {v}" for k, v in summary["skipped"].items()) or "\n- none"
    bins = [name for _, _, name in BINS if name in t["per_bin"]]
    prior_text = ""
    if settings.get("priors"):
        ess = t["ess"]
        vals = [v["ess"] for v in ess.values()]
        named = settings["priors"]
        shown = (named["default"] if list(named) == ["default"] else
                 "; ".join(f"{k}: {v}" for k, v in named.items()))
        prior_text = (f" `discrepancy@prior` is the discrepancy fit's draws reweighted to the prior "
                      f"{shown} for s by importance weights p_new(s)/p_wide(s); the weights' "
                      f"effective sample sizes range {min(vals):.0f}–{max(vals):.0f} of "
                      f"{next(iter(ess.values()))['n_draws']} draws (median {np.median(vals):.0f}).")
    budget = settings["budget"]
    para = (
        f"Script: `benchmarks/backtest.py{' --quick' if settings['quick'] else ''}` (seed {SEED}; NUTS "
        f"{budget['chains']} chains x {budget['warmup']} warmup + {budget['draws']} draws; {settings['n_boot']} "
        f"bootstrap refits; {settings['elapsed_text']}). Each study's runs are ordered along its axis; three "
        f"origins fit the smallest 50 %, 70 % and 85 % of the runs along the axis (cut at the distinct axis value "
        f"nearest that share, so runs at one axis value stay together) and predict every run beyond, as a new run's measured value. Distance = decades of the axis beyond the largest training "
        f"value. `law`: the law alone; `discrepancy`: the law plus the discrepancy walk with s ~ {WIDE}; "
        f"`bootstrap`: Huber + L-BFGS + bootstrap refits with resampled log residuals (loss laws only); "
        f"`conformal`: split conformal on log (rates: logit) residuals, calibrated on the largest "
        f"{round(CAL_SHARE * 100)} % of the training axis values, infinite where ceil((n+1)·level) > n. "
        f"Where the law is pooled over groups, both classical baselines fit each group alone. Coverage = "
        f"share of held-out runs inside the central interval; relative width = 90 % width / predictive "
        f"median (median over runs); CRPS in the response's units; relative CRPS = CRPS / |truth|. Pooled rows "
        f"weight every prediction equally; 'studies equal' rows average the per-study figures.{prior_text}")
    per_study = [(s, t["per_study"][s]) for s in studies if s in t["per_study"]]
    per_bin = [(b, t["per_bin"][b]) for b in bins]
    per_bin_eq = [(b, t["per_bin_equal_studies"][b]) for b in bins]
    study_bin = [(f"{s} {b}", t["per_study_bin"][f"{s}/{b}"]) for s in studies for b in bins
                 if f"{s}/{b}" in t["per_study_bin"]]
    counts = ["| study | " + " | ".join(bins) + " | all |", "|" + "---|" * (len(bins) + 2)]
    for s in studies:
        ns = [max([v["n"] for v in t["per_study_bin"].get(f"{s}/{b}", {}).values()] or [0]) for b in bins]
        counts.append(f"| {s} | " + " | ".join(str(n) for n in ns) + f" | {sum(ns)} |")
    ns = [max([v["n"] for v in t["per_bin"][b].values()]) for b in bins]
    counts.append("| all | " + " | ".join(str(n) for n in ns) + f" | {sum(ns)} |")
    per_origin = [(k.replace("/", " ") + " %", v) for k, v in t["per_study_origin"].items()]
    diag = ["| study, origin | law: max r_hat, min ESS, divergences | discrepancy: max r_hat, min ESS, divergences "
            "| median s | seconds: law, discrepancy, bootstrap, conformal |", "|---|---|---|---|---|"]
    for key, d in summary["diagnostics"].items():
        cells = []
        for m in ("law", "discrepancy"):
            x = d.get(m)
            cells.append(f"{x['max_rhat']:.3f}, {x['min_ess_bulk']:.0f}, {int(x['divergences'])}" if x else "–")
        sec = summary["seconds"].get(key, {})
        diag.append(f"| {key.replace('/', ' ')} % | {cells[0]} | {cells[1]} | {fmt(summary['disc_scale_median'].get(key))} "
                    f"| " + ", ".join(f"{sec[m]:.0f}" if m in sec else "–" for m in METHODS) + " |")
    ess_table = ""
    if t["ess"]:
        ess_table = ("\n\nEffective sample size of the importance weights (Kish, (sum w)^2 / sum w^2):\n\n"
                     "| study, origin | prior | ESS | draws |\n|---|---|---|---|\n"
                     + "\n".join(f"| {k.replace('/', ' ')} % | {v['prior']} | {v['ess']:.0f} | {v['n_draws']} |"
                                  for k, v in t["ess"].items()))
    return f"""## Rolling-origin backtest (`benchmarks/backtest.py`)

{para}

Studies:

{chr(10).join(srows)}

Not run:{skipped}

Predictions per study and distance bin (decades beyond the largest training value):

{chr(10).join(counts)}

### Targets

The new model is `discrepancy@prior`: the law with the discrepancy walk, each study scored with the
prior for the walk's scale learned from the *other* studies only.

{targets(t)}

### 90 % coverage side by side

Per study (all origins):

{side_by_side("study", per_study, methods)}

Per distance bin, every prediction equal weight:

{side_by_side("distance", per_bin, methods)}

Per distance bin, studies equal weight:

{side_by_side("distance", per_bin_eq, methods)}

Per study and bin:

{side_by_side("study, distance", study_bin, methods)}

Per study and origin (share of runs trained on):

{side_by_side("study, origin", per_origin, methods)}

### Relative CRPS side by side

{side_by_side("study", per_study + [("all (predictions equal)", t["overall"]),
                                     ("all (studies equal)", t["overall_equal_studies"])], methods, "rel_crps")}

Per distance bin, every prediction equal weight:

{side_by_side("distance", per_bin, methods, "rel_crps")}

CRPS (response units) of the new model against each classical baseline on the held-out runs both
predict (the target above compares these; conformal skips groups with fewer proper-training runs than
the law has parameters):

{paired_table(t["paired_crps"])}

The same pairs on the link scale (log of the loss; logit of a rate), where the CRPS of a
log-Student-t predictive is defined (on the response scale it has no mean, so its sample CRPS has
no population value); a check of the comparison above, not a target:

{paired_table(t["paired_link_crps"]) if "paired_link_crps" in t else "(not computed)"}

{link_wins_line(t)}

### All scores

Per study:

{score_table("study", per_study, methods)}

Per distance bin (pooled over studies, predictions equal):

{score_table("distance", per_bin + [("all", t["overall"])], methods)}

Per distance bin (studies equal):

{score_table("distance", per_bin_eq + [("all", t["overall_equal_studies"])], methods)}

### Fits

Convergence of the NUTS fits (`discrepancy` with s ~ {WIDE}; median s = posterior median of the walk's
scale) and wall time per method (fit + prediction):

{chr(10).join(diag)}{ess_table}

![90 % coverage against distance]({settings['plot']})
"""


LABELS = {"law": "law alone", "discrepancy": f"law + discrepancy, s ~ {WIDE}",
          "discrepancy@prior": "law + discrepancy, learned prior\n(leave one study out)",
          "bootstrap": "Huber + bootstrap", "conformal": "split conformal"}


def plot(summary: dict, path: Path) -> Path:
    from matplotlib.figure import Figure

    t = summary["tables"]
    bins = [name for _, _, name in BINS if name in t["per_bin"]]
    methods = t["methods"]
    fig = Figure(figsize=(13, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    colours = {"law": "#d62728", "discrepancy": "#1f77b4", "discrepancy@prior": "#17becf",
               "bootstrap": "#ff7f0e", "conformal": "#2ca02c"}
    x = np.arange(len(bins))
    for ax, key, title in ((axes[0], "per_bin", "every prediction equal weight"),
                           (axes[1], "per_bin_equal_studies", "studies equal weight")):
        ax.axhline(0.9, color="black", ls="--", lw=1, label="target 0.9")
        for j, m in enumerate(methods):
            y = np.array([t[key][b].get(m, {}).get("cov_0.9", np.nan) for b in bins], float)
            n = np.array([t[key][b].get(m, {}).get("n", 0) for b in bins], float)
            off = (j - (len(methods) - 1) / 2) * 0.06
            if key == "per_bin":    # Wilson 95 % interval for a share of n predictions
                z = 1.96
                centre = (y + z**2 / (2 * n)) / (1 + z**2 / n)
                half = z * np.sqrt(y * (1 - y) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
                ax.errorbar(x + off, y, yerr=[y - (centre - half), centre + half - y], fmt="o-",
                            color=colours.get(m), label=LABELS.get(m, m), capsize=3, ms=5)
            else:
                ax.plot(x + off, y, "o-", color=colours.get(m), label=LABELS.get(m, m), ms=5)
        counts = [max([v.get("n", 0) for v in t[key][b].values()] or [0]) for b in bins]
        ax.set_xticks(x, [f"{b}\n(n = {c})" for b, c in zip(bins, counts)])
        ax.set_title(f"90 % coverage, {title}", fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of held-out runs inside the central 90 % interval")
    fig.supxlabel("distance beyond the largest training run (decades of the study's axis; "
                  "left: bars are Wilson 95 % intervals)", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", title="method")
    fig.savefig(path, dpi=130)
    return path


def read_priors(args) -> dict | None:
    if args.prior:
        return {"default": args.prior}
    if args.prior_file:
        text = Path(args.prior_file).read_text().strip()
        if text.startswith("{"):
            return json.loads(text)
        return {"default": text}
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--studies", default=",".join(BY_NAME), help=f"comma-separated, of {list(BY_NAME)}")
    ap.add_argument("--quick", action="store_true", help="tiny budgets: 2 chains x 300 + 300, 50 bootstraps")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--cache", default=str(CACHE), help="folder of the per-study, per-origin draws (git-ignored)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--prior", help='another prior for the discrepancy scale s, e.g. "LogNormal(-5, 1)"')
    g.add_argument("--prior-file", help="a file with one prior, or a JSON object {study or 'default': prior}")
    ap.add_argument("--rescore", action="store_true", help="rebuild the tables from the cache, without fitting")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="comma-separated subset of the methods to fit (an existing cache keeps the others)")
    ap.add_argument("--dry-run", action="store_true",
                    help="load each study and print its runs, origins and predictions, without fitting")
    ap.add_argument("--results", action="store_true", help="also write the section into benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    names = [s.strip() for s in args.studies.split(",") if s.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        ap.error(f"unknown studies {unknown}; choose from {list(BY_NAME)}")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if any(m not in METHODS for m in methods):
        ap.error(f"unknown methods in {methods}; choose from {list(METHODS)}")
    priors = read_priors(args)
    if priors:
        for p in priors.values():
            prior_logpdf(p, np.array([0.01]))     # fail early on a prior that does not parse
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skipped: dict[str, str] = {}
    t_all = time.perf_counter()
    studies, caches = {}, {}
    quick_flags = set()
    for name in [n for n in names if n in BY_NAME]:
        study = BY_NAME[name]
        df = load_study(study)
        if df is None:
            skipped[name] = "dataset folder absent"
            continue
        studies[name] = describe_study(study, df)
        if args.dry_run:
            d = studies[name]
            print(f"[{name}] {d['dataset']}, law {d['law']}, axis {d['axis']}: {d['n_runs']} runs, "
                  f"{d['n_axis_values']} distinct axis values; train / held out per origin: "
                  + ", ".join(f"{o}%: {v['n_train']} / {v['n_heldout']}" for o, v in d["origins"].items()), flush=True)
            continue
        splits = origin_splits(df[study.axis].to_numpy(np.float64))
        caches[name] = {}
        for origin, mask in splits.items():
            path = Path(args.cache) / f"{name}_{origin}.npz"
            if not args.rescore:
                run_origin(study, df, origin, mask, args.quick, methods, args.cache)
            elif not path.exists():
                print(f"[{name} {origin}%] no cache at {path.name}: run without --rescore first", flush=True)
                continue
            caches[name][origin] = load_cache(path)
            quick_flags.add(caches[name][origin]["meta"]["quick"])
        if not caches[name]:
            del caches[name]
    if args.dry_run:
        return 0
    if not caches:
        print("nothing to score")
        return 1
    elapsed = time.perf_counter() - t_all
    quick = args.quick if not args.rescore else (True in quick_flags)
    budget, n_boot = budgets(quick)
    fit_seconds = {f"{s}/{o}": c["meta"]["seconds"] for s, oc in caches.items() for o, c in oc.items()}
    total_fit = sum(sum(v.values()) for v in fit_seconds.values())
    tables = build_tables(caches, priors)
    plot_path = out / "backtest_coverage.png"
    summary = {
        "settings": {"quick": quick, "budget": budget, "n_boot": n_boot, "seed": SEED, "wide": WIDE,
                     "origins": list(ORIGINS), "calibration_share": CAL_SHARE, "priors": priors,
                     "rescored": args.rescore, "elapsed_seconds": elapsed, "fit_seconds_total": total_fit,
                     "elapsed_text": (f"rescored from the cache; the fits took {total_fit:.0f} s" if args.rescore
                                      else f"{elapsed:.0f} s in all"),
                     "plot": "figures/backtest_coverage.png" if args.results else str(plot_path)},
        "studies": studies, "skipped": skipped, "seconds": fit_seconds,
        "diagnostics": {f"{s}/{o}": c["meta"]["diagnostics"] for s, oc in caches.items() for o, c in oc.items()},
        "disc_scale_median": {f"{s}/{o}": float(np.median(c["disc_scale"])) for s, oc in caches.items()
                              for o, c in oc.items() if "disc_scale" in c},
        "notes": {f"{s}/{o}": c["meta"]["notes"] for s, oc in caches.items() for o, c in oc.items()
                  if c["meta"]["notes"]},
        "tables": tables,
    }
    plot(summary, plot_path)
    md = render(summary)
    (out / "backtest.json").write_text(json.dumps(summary, indent=1, default=_json_default))
    (out / "backtest.md").write_text(md)
    if args.results:
        import shutil

        from results_file import write_section
        (HERE / "figures").mkdir(exist_ok=True)
        shutil.copyfile(plot_path, HERE / "figures" / plot_path.name)
        write_section("backtest", md)
    print(f"wrote {out / 'backtest.json'}, {out / 'backtest.md'}, {plot_path} ({elapsed:.0f} s)", flush=True)
    return 0


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


if __name__ == "__main__":
    raise SystemExit(main())
