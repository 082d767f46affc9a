"""Broken neural scaling law (Caballero et al. 2022, arXiv:2210.14891, eq. 1) in one input:

    y = a + b·x^-c0 · prod_i (1 + (x/d_i)^(1/f_i))^(-c_i·f_i)

Spec: "bnsl[:INPUT][:BREAKS]", INPUT in params (default) | tokens | compute, BREAKS 1 (default) or
2; e.g. "bnsl", "bnsl:2", "bnsl:tokens", "bnsl:compute:2".
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .base import Law, Param
from .registry import register

SYMBOL = {"params": "N", "tokens": "D", "compute": "C"}
INPUTS = ("params", "tokens", "compute")


@register
class BNSL(Law):
    """log(L - E) = log_A0 - alpha·x - sum_i delta_i·width·softplus((x - loc_i)/width), x = log(v/v0).

    alpha is the slope before the first break, delta_i the change of slope at break i, loc_i its
    position (log scale, relative to v0; the second break sits gap_2 > 0 after the first, so the
    breaks cannot swap) and width their smoothness (f_i of the paper, shared by the breaks so that
    two breaks need 8 parameters, not 9)."""
    derived_doc = {"A": "A of the raw form, with x unnormalised", "d_i": "the location of break i, in the input's units"}

    name = "bnsl"
    options = ("params", "tokens", "compute", "2", "params:2", "tokens:2", "compute:2")

    def __init__(self, option: str | None = None):
        parts = (option or "").split(":") if option else []
        self.input = next((q for q in parts if q in INPUTS), "params")
        self.breaks = 2 if "2" in parts else 1
        self.option = option
        self.inputs = (self.input,)
        s = SYMBOL[self.input]
        term = "(1 + (x/d1)^(1/f))^(-c1·f)" + (" · (1 + (x/d2)^(1/f))^(-c2·f)" if self.breaks == 2 else "")
        self.formula = f"L = E + A·x^-alpha · {term},  x = {s}"
        self.params = {
            "E": Param(dist.LogNormal(0.5, 0.5), pool="dataset", doc="irreducible loss"),
            "log_A0": Param(dist.Normal(-1.0, 1.5), pool="family", doc=f"log reducible loss at {s}0 before breaks"),
            "alpha": Param(dist.LogNormal(np.log(0.3), 0.5), doc="slope before the first break"),
            "delta_1": Param(dist.Normal(0.0, 0.3), doc="change of slope at break 1 (c1)"),
            "loc_1": Param(dist.Normal(0.0, 1.5), doc=f"log({s} at break 1 / {s}0)"),
            "width": Param(dist.LogNormal(np.log(0.5), 0.5), doc="smoothness of the breaks (f, log scale)"),
        }
        if self.breaks == 2:
            self.params.update({
                "delta_2": Param(dist.Normal(0.0, 0.3), doc="change of slope at break 2 (c2)"),
                "gap_2": Param(dist.LogNormal(np.log(2.0), 0.5), doc="log distance from break 1 to break 2"),
            })

    def _locs(self, p):
        locs = [p["loc_1"]]
        if self.breaks == 2:
            locs.append(p["loc_1"] + p["gap_2"])
        return locs

    def mean(self, x, p, xp=jnp):
        v = x[self.input]
        log_red = p["log_A0"] - p["alpha"] * v
        for i, loc in enumerate(self._locs(p), start=1):
            w = p["width"]
            # softplus(z) = log(1 + e^z), by logaddexp for large z
            log_red = log_red - p[f"delta_{i}"] * w * xp.logaddexp(0.0, (v - loc) / w)
        return p["E"] + xp.exp(log_red)

    def derived(self, p, logref):
        ref = logref[self.input]
        out = {"A": np.exp(p["log_A0"] + p["alpha"] * ref)}
        for i, loc in enumerate(self._locs(p), start=1):
            out[f"d_{i}"] = np.exp(ref + loc)
        return out

    @property
    def spec(self):
        parts = ([self.input] if self.input != "params" else []) + (["2"] if self.breaks == 2 else [])
        return ":".join([self.name, *parts])
