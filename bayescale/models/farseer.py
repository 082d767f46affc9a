"""Farseer (Li et al. 2025, arXiv:2506.10972): L(N, D) = U(N) + B(N)·D^-beta(N).

The paper's surface is exp(a3·N^g + b3) + exp(a2·N^b + b2)·D^-exp(a1·N^a + b1): the data term's
coefficient and exponent themselves vary with N. Written around the references N0, D0 with the
data-side N-dependences to first order in log N (log B and log beta linear in log N, the small-
exponent limit of exp(a·N^e + b)), it keeps 7 parameters that ~100-250 runs can identify.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .base import Law, Param
from .coordinates import FloorTimesExpPower
from .registry import register


@register
class Farseer(Law):
    """L = E·exp(u·(N/N0)^-gamma) + B0·(N/N0)^-phi·(D/D0)^-(beta·(N/N0)^kappa), u = exp(log_u).

    phi = kappa = 0 and small u give back Chinchilla (E + E·u·(N/N0)^-gamma + B0·(D/D0)^-beta);
    kappa > 0 means larger models use data more efficiently (a steeper data exponent)."""

    name = "farseer"
    formula = "L = E·exp(u·(N/N0)^-gamma) + B0·(N/N0)^-phi·(D/D0)^-(beta·(N/N0)^kappa)"
    derived_doc = {'a3': "the paper's a3 in U(N) = exp(a3·N^-gamma + b3), b3 = log E", 'beta_at_1e9': 'the data exponent beta(N) at N = 1e9 parameters'}
    inputs = ("params", "tokens")
    coordinates = FloorTimesExpPower("E", "log_u", "gamma")   # the N-term's floor/curvature ridge
    params = {
        "E": Param(dist.LogNormal(0.5, 0.5), pool="dataset", doc="irreducible loss (N, D -> inf)"),
        "log_u": Param(dist.Normal(-1.5, 0.7), pool="family", doc="log of log(U(N0)/E): the N-term at N0"),
        "gamma": Param(dist.LogNormal(np.log(0.3), 0.4), doc="parameter exponent of the N-term"),
        "log_B0": Param(dist.Normal(-1.0, 1.5), pool="dataset", doc="log data term at (N0, D0)"),
        "phi": Param(dist.Normal(0.0, 0.3), doc="data coefficient B(N) ∝ N^-phi"),
        "beta": Param(dist.LogNormal(np.log(0.3), 0.5), doc="data exponent at N0"),
        "kappa": Param(dist.Normal(0.0, 0.2), doc="data exponent beta(N) ∝ N^kappa"),
    }

    def mean(self, x, p, xp=jnp):
        n, d = x["params"], x["tokens"]
        # NUTS starts from wide unconstrained values where these nested exponentials overflow
        # float32 (and the fit fails): log(U/E) = u·(N/N0)^-gamma is capped at e^4 and the log data
        # term at 30, far above any loss
        t = p["log_u"] - p["gamma"] * n
        u_term = p["E"] * xp.exp(xp.exp(xp.where(t > 4.0, 4.0, t)))
        v = p["log_B0"] - p["phi"] * n - p["beta"] * xp.exp(p["kappa"] * n) * d
        return u_term + xp.exp(xp.where(v > 30.0, 30.0, v))

    def derived(self, p, logref):
        # the paper's a3 (U(N) = exp(a3·N^-gamma + b3), b3 = log E) and the data exponent at 1e9 params
        return {
            "a3": np.exp(p["log_u"] + p["gamma"] * logref["params"]),
            "beta_at_1e9": p["beta"] * np.exp(p["kappa"] * (np.log(1e9) - logref["params"])),
        }
