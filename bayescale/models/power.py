"""One-variable power laws: saturating (with E) and Kaplan's pure power laws in N, D or C."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .base import Law, Param
from .coordinates import FloorPlusPowers
from .registry import register

SYMBOL = {"params": "N", "tokens": "D", "compute": "C"}


@register
class Power(Law):
    """L = E + A·(x/x0)^-alpha for x in params, tokens or compute ("power:tokens")."""

    name = "power"
    options = ("params", "tokens", "compute")
    derived_doc = {"A": "A of the raw form, with the input unnormalised"}
    coordinates = FloorPlusPowers("E", (("log_A0", "alpha"),))

    def __init__(self, option: str | None = None):
        self.option = option or "params"
        s = SYMBOL[self.option]
        self.inputs = (self.option,)
        self.formula = f"L = E + A·({s}/{s}0)^-alpha"
        self.params = {
            "E": Param(dist.LogNormal(0.5, 0.5), pool="dataset", doc="irreducible loss"),
            "log_A0": Param(dist.Normal(-1.0, 1.5), pool="family", doc=f"log reducible loss at {s}0"),
            "alpha": Param(dist.LogNormal(np.log(0.3), 0.5), doc="exponent"),
        }

    def mean(self, x, p, xp=jnp):
        return p["E"] + xp.exp(p["log_A0"] - p["alpha"] * x[self.option])

    def derived(self, p, logref):
        return {"A": np.exp(p["log_A0"] + p["alpha"] * logref[self.option])}

    @property
    def spec(self):
        return self.name if self.option == "params" else f"{self.name}:{self.option}"


class _Kaplan(Law):
    """L = (x/x_c)^-alpha, written A·(x/x0)^-alpha around the reference x0."""

    x = "params"

    @property
    def derived_doc(self) -> dict[str, str]:
        s = SYMBOL[self.x]
        return {f"{s}_c": f"Kaplan et al.'s critical scale {s}_c of L = ({s}/{s}_c)^-alpha"}

    def __init__(self, option: str | None = None):
        s = SYMBOL[self.x]
        self.inputs = (self.x,)
        self.formula = f"L = ({s}/{s}_c)^-alpha  [= A·({s}/{s}0)^-alpha]"
        self.params = {
            "log_A0": Param(dist.Normal(1.0, 1.0), pool="family", doc=f"log loss at {s}0"),
            "alpha": Param(dist.LogNormal(np.log(0.1), 0.75), doc="exponent"),
        }

    def mean(self, x, p, xp=jnp):
        return xp.exp(p["log_A0"] - p["alpha"] * x[self.x])

    def derived(self, p, logref):
        s = SYMBOL[self.x]
        return {f"{s}_c": np.exp(logref[self.x] + p["log_A0"] / p["alpha"])}


@register
class KaplanN(_Kaplan):
    name, x = "kaplan-n", "params"


@register
class KaplanD(_Kaplan):
    name, x = "kaplan-d", "tokens"


@register
class KaplanC(_Kaplan):
    name, x = "kaplan-c", "compute"
