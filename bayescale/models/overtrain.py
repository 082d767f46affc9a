"""Gadre et al. (2024), eq. 4: L(C, M) = E + (a·M^eta + b·M^-eta)·C^-eta, with M = D/N tokens per parameter.

It is Chinchilla with equal exponents (eta = alpha/2) rewritten in compute C = 6ND and the
over-training multiplier M; tables with params and tokens but no multiplier get M = D/N derived.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .base import Law, Param
from .registry import register


@register
class Overtrain(Law):
    """L = E + a0·(M/M0)^eta·(C/C0)^-eta + b0·(M/M0)^-eta·(C/C0)^-eta; a and b are reported raw."""

    name = "overtrain"
    formula = "L = E + (a·M^eta + b·M^-eta)·C^-eta,  M = D/N"
    derived_doc = {"a": "a of the raw form, with M and C unnormalised", "b": "b of the raw form"}
    inputs = ("compute", "multiplier")
    params = {
        "E": Param(dist.LogNormal(0.5, 0.5), pool="dataset", doc="irreducible loss"),
        "log_a0": Param(dist.Normal(-1.5, 1.5), pool="family", doc="log N-side term at (C0, M0)"),
        "log_b0": Param(dist.Normal(-1.5, 1.5), pool="dataset", doc="log D-side term at (C0, M0)"),
        "eta": Param(dist.LogNormal(np.log(0.15), 0.5), doc="compute exponent (alpha/2 of Chinchilla)"),
    }

    def mean(self, x, p, xp=jnp):
        c, m = x["compute"], x["multiplier"]
        return (p["E"] + xp.exp(p["log_a0"] + p["eta"] * (m - c))
                + xp.exp(p["log_b0"] - p["eta"] * (m + c)))

    def derived(self, p, logref):
        lc = logref["compute"]
        # geometric-mean M0 = D0/N0 when only the size references are known
        lm = logref["multiplier"] if "multiplier" in logref else logref["tokens"] - logref["params"]
        return {"a": np.exp(p["log_a0"] - p["eta"] * (lm - lc)),
                "b": np.exp(p["log_b0"] + p["eta"] * (lm + lc))}
