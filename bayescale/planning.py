"""Decisions derived from a fit: optimal hyperparameters (and, with the Fit's own methods,
compute-optimal allocation and tokens for a target loss)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .design import centre
from .errors import BayescaleError
from .models.hyperparams import Hyperparams
from .predict import check_levels, interval_columns, label_draws


def optimal_hyperparams(fit, params, tokens, levels=(0.5, 0.9), **labels) -> pd.DataFrame:
    """eta*(N, D), B*(D) and the loss floor L*(N, D) with credible intervals, from a hyperparams fit.

    ``params`` and ``tokens`` are scalars or equal-length arrays; B* is in the batch_size column's unit.
    """
    if fit.law.name != Hyperparams.name:
        raise BayescaleError(f"optimal_hyperparams needs a '{Hyperparams.name}' fit, got law {fit.law.spec!r}")
    levels = check_levels(levels)
    n, d = np.broadcast_arrays(np.atleast_1d(np.asarray(params, dtype=np.float64)),
                               np.atleast_1d(np.asarray(tokens, dtype=np.float64)))
    if n.ndim != 1 or not (np.all(n > 0) and np.all(d > 0) and np.all(np.isfinite(n * d))):
        raise BayescaleError(f"params and tokens must be positive finite numbers, got {params!r}, {tokens!r}")
    ref = fit.logref
    # lr and batch size at their references: only the N, D terms of the optimum move
    x = centre(fit.law, {"params": n[None, :], "tokens": d[None, :], "lr": np.exp(ref["lr"]),
                         "batch_size": np.exp(ref["batch_size"])}, ref)
    p, _ = label_draws(fit, labels)
    eta = np.exp(ref["lr"] + p["log_eta0"] + p["eta_N"] * x["params"] + p["eta_D"] * x["tokens"])
    bs = np.exp(ref["batch_size"] + p["log_B0"] + p["B_D"] * x["tokens"])
    floor = np.exp(p["log_L0"] - p["a_N"] * x["params"] - p["a_D"] * x["tokens"])
    out = pd.DataFrame({"params": n, "tokens": d})
    for name, draws in (("lr", eta), ("batch_size", bs), ("loss", floor)):
        for col, v in interval_columns(draws, levels, prefix=f"{name}_").items():
            out[col] = v
    return out
