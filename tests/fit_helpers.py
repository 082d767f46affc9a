"""Fitting helpers shared by tests/unit, tests/laws and tests/statistical.

The recovery rule (tests/statistical/test_recovery.py): with 2 chains x 300 warmup + 300 draws,
z = |posterior mean - truth| / posterior sd < Z_MAX for every law parameter and at most
MAX_DIVERGENCES divergent transitions. Imported by name, like sbc_helpers (tests/ is on sys.path).
"""
from __future__ import annotations

import json
import warnings

import arviz as az
import numpy as np
import pandas as pd

import bayescale
from bayescale import Fit
from bayescale.spec import build

Z_MAX = 3.5
MAX_DIVERGENCES = 6   # of 600 post-warmup draws (1 %)
# the law alone: these helpers test laws (recovery, interop, pooling); tests of the model
# discrepancy, bayescale.fit's default, ask for it by name
BUDGET = {"chains": 2, "warmup": 300, "draws": 300, "discrepancy": "none"}

# farseer with a strongly N-dependent data exponent (kappa = 0.15: beta goes from 0.18 to 0.50 over
# three decades of N): the truth of farseer's recovery checks and of the LOO comparison
FARSEER_TRUTH = {"E": 1.7, "log_u": -1.2, "gamma": 0.3, "log_B0": -0.8, "phi": 0.1, "beta": 0.3,
                 "kappa": 0.15}


def grid(n_lo=1e7, n_hi=1e9, d_lo=1e9, d_hi=1e11, k=6, m=5) -> pd.DataFrame:
    """A k x m (params, tokens) grid, log-spaced; the default 6 x 5 grid is the recovery tests' (N, D)
    design, so fits on it across the session share one compiled sampler."""
    n, d = np.meshgrid(np.geomspace(n_lo, n_hi, k), np.geomspace(d_lo, d_hi, m), indexing="ij")
    return pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})


def fit_quietly(df, law, *, seed=0, **kwargs) -> Fit:
    """``bayescale.fit`` with BUDGET (``chains=`` etc. override it), no progress bar, and
    BayescaleWarnings silenced (low ESS on a small budget is expected)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        return bayescale.fit(df, law, seed=seed, progress=False, **{**BUDGET, **kwargs})


def z_scores(fit: Fit, truth: dict, *, law_only: bool = False) -> dict[str, float]:
    """|posterior mean - truth| / posterior sd for each name in ``truth`` (only the law's own
    parameters with ``law_only``)."""
    s = fit.summary()
    return {k: abs(s.loc[k, "mean"] - v) / s.loc[k, "sd"] for k, v in truth.items()
            if not law_only or k in fit.law.params}


def constructed_fit(law: str, draws: dict, design: pd.DataFrame) -> Fit:
    """A Fit (1 chain, no pooling) whose posterior is exactly ``draws``."""
    spec, data = build(design.assign(loss=2.0), law, pool="none")
    n = len(next(iter(draws.values())))
    post = {k: np.asarray(v, dtype=np.float64)[None] for k, v in draws.items()}
    post.setdefault("sigma", np.full((1, n), 0.01))
    post.setdefault("nu", np.full((1, n), 30.0))
    idata = az.from_dict(posterior=post)
    idata.posterior.attrs["bayescale"] = json.dumps({**spec.to_json(), "n_obs": data.n, "notes": [],
                                                     "data_hash": data.data_hash()})
    return Fit(idata)


def pooled_masses(seed: int = 0, tasks: int = 3, runs: int = 8, questions: int = 25) -> pd.DataFrame:
    """choice-mass rows of ``tasks`` tasks with different levels and one slope (log_b's group
    spread is 0), every task with many rows: the law's default pooling samples them centred."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(tasks):
        for c in np.geomspace(1e18, 1e22, runs):
            m = 1 / (1 + np.exp(-(-2.5 + 0.5 * t + 0.3 * np.log(c / 1e20))))
            frames.append(pd.DataFrame({"compute": c, "p_choice_correct": rng.beta(10 * m, 10 * (1 - m), questions),
                                        "task": f"t{t}", "question": np.arange(questions)}))
    return pd.concat(frames, ignore_index=True)

