"""Optimal learning rate and batch size as power laws (Step Law, Li et al. 2025, arXiv:2503.04715).

The final loss over a grid of (learning rate, batch size) runs at each (N, D) is a smooth bowl in
(log lr, log batch size) whose minimum moves as power laws:
    eta*(N, D) = c_eta·N^eta_N·D^eta_D,      B*(D) = c_B·D^B_D.
The law's mean is that bowl: a quadratic in u = log(lr / eta*) and v = log(B / B*) (with a
correlation, since the best learning rate grows with the batch size) above the floor
L*(N, D) = L*_0·(N/N0)^-a_N·(D/D0)^-a_D.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd

from .base import Law, Param
from .registry import register


@register
class Hyperparams(Law):
    """L = L*(N, D) + k_lr·u² + k_bs·v² + 2·rho·sqrt(k_lr·k_bs)·u·v, u = log(lr/eta*), v = log(B/B*).

    Inputs: params, tokens, lr, batch_size (all log-centred). ``log_eta0`` and ``log_B0`` are
    log(eta*/lr0) and log(B*/B0) at (N0, D0); the raw coefficients c_eta, c_B are derived.
    B* is in the unit of the batch_size column (use tokens to compare with Step Law's 0.58·D^0.571).
    """

    name = "hyperparams"
    formula = "L = L*(N,D) + quadratic bowl in log(lr/eta*(N,D)), log(B/B*(D))"
    derived_doc = {'c_eta': 'c_eta of eta*(N, D) = c_eta·N^eta_N·D^eta_D (the optimal learning rate)', 'c_B': 'c_B of B*(D) = c_B·D^B_D (the optimal batch size)'}
    inputs = ("params", "tokens", "lr", "batch_size")
    params = {
        "log_L0": Param(dist.Normal(1.0, 1.0), doc="log of the bowl's floor at (N0, D0)"),
        "a_N": Param(dist.Normal(0.0, 0.3), doc="floor exponent in N"),
        "a_D": Param(dist.Normal(0.0, 0.3), doc="floor exponent in D"),
        "log_eta0": Param(dist.Normal(0.0, 1.5), doc="log(eta*/lr0) at (N0, D0)"),
        "eta_N": Param(dist.Normal(0.0, 1.0), doc="exponent of eta* in N"),
        "eta_D": Param(dist.Normal(0.0, 1.0), doc="exponent of eta* in D"),
        "log_B0": Param(dist.Normal(0.0, 1.5), doc="log(B*/B0) at D0"),
        "B_D": Param(dist.Normal(0.0, 1.0), doc="exponent of B* in D"),
        "k_lr": Param(dist.LogNormal(np.log(0.01), 1.0), doc="curvature in log lr (nats)"),
        "k_bs": Param(dist.LogNormal(np.log(0.01), 1.0), doc="curvature in log batch size (nats)"),
        "rho": Param(dist.Uniform(-1.0, 1.0), doc="lr-batch correlation of the bowl"),
    }

    def mean(self, x, p, xp=jnp):
        u = x["lr"] - (p["log_eta0"] + p["eta_N"] * x["params"] + p["eta_D"] * x["tokens"])
        v = x["batch_size"] - (p["log_B0"] + p["B_D"] * x["tokens"])
        bowl = (p["k_lr"] * u * u + p["k_bs"] * v * v
                + 2.0 * p["rho"] * xp.sqrt(p["k_lr"] * p["k_bs"]) * u * v)
        return xp.exp(p["log_L0"] - p["a_N"] * x["params"] - p["a_D"] * x["tokens"]) + bowl

    def sbc_design(self) -> pd.DataFrame:
        """2 N x 2 D cells, each a 5 x 4 (lr, batch tokens) grid around Step Law's optimum: 80 runs."""
        return hyperparams_design(np.geomspace(2e8, 8e8, 2), np.geomspace(5e9, 5e10, 2))

    def derived(self, p, logref):
        n0, d0 = logref["params"], logref["tokens"]
        return {
            "c_eta": np.exp(p["log_eta0"] + logref["lr"] - p["eta_N"] * n0 - p["eta_D"] * d0),
            "c_B": np.exp(p["log_B0"] + logref["batch_size"] - p["B_D"] * d0),
        }


def hyperparams_design(params, tokens, n_lr: int = 5, n_bs: int = 4, spread: float = 8.0) -> pd.DataFrame:
    """A (lr, batch tokens) grid per (N, D) cell, log-spaced over a factor ``spread`` each side of
    Step Law's published optimum (eta* = 1.79·N^-0.713·D^0.307, B* = 0.58·D^0.571 tokens)."""
    rows = []
    for n in np.atleast_1d(params):
        for d in np.atleast_1d(tokens):
            eta, bs = 1.79 * n ** -0.713 * d ** 0.307, 0.58 * d ** 0.571
            for lr in eta * np.geomspace(1 / spread, spread, n_lr):
                for b in bs * np.geomspace(1 / spread, spread, n_bs):
                    rows.append({"params": n, "tokens": d, "lr": lr, "batch_size": b})
    return pd.DataFrame(rows)
