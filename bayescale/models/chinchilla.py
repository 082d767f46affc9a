"""Hoffmann et al. (2022): L(N, D) = E + A/N^alpha + B/D^beta."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .base import Law, Param
from .coordinates import FloorPlusPowers
from .registry import register


@register
class Chinchilla(Law):
    """L = E + A·(N/N0)^-alpha + B·(D/D0)^-beta; A and B are also reported raw (A/N^alpha)."""

    name = "chinchilla"
    formula = "L = E + A·(N/N0)^-alpha + B·(D/D0)^-beta"
    derived_doc = {'A': "A of the papers' raw form L = E + A·N^-alpha + B·D^-beta", 'B': 'B of that raw form'}
    inputs = ("params", "tokens")
    coordinates = FloorPlusPowers("E", (("log_A0", "alpha"), ("log_B0", "beta")))
    params = {
        "E": Param(dist.LogNormal(0.5, 0.5), pool="dataset", doc="irreducible loss"),
        "log_A0": Param(dist.Normal(-1.0, 1.5), pool="family", doc="log N-term at N0"),
        "alpha": Param(dist.LogNormal(np.log(0.3), 0.5), doc="parameter exponent"),
        "log_B0": Param(dist.Normal(-1.0, 1.5), pool="dataset", doc="log D-term at D0"),
        "beta": Param(dist.LogNormal(np.log(0.3), 0.5), doc="data exponent"),
    }

    def mean(self, x, p, xp=jnp):
        return (p["E"] + xp.exp(p["log_A0"] - p["alpha"] * x["params"])
                + xp.exp(p["log_B0"] - p["beta"] * x["tokens"]))

    def derived(self, p, logref):
        return {
            "A": np.exp(p["log_A0"] + p["alpha"] * logref["params"]),
            "B": np.exp(p["log_B0"] + p["beta"] * logref["tokens"]),
        }
