"""Kaplan et al. (2020), eq. 1.5: L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .base import Law, Param
from .registry import register


@register
class KaplanND(Law):
    """Written as L0·[w·(N/N0)^-(aN/aD) + (1-w)·(D/D0)^-1]^aD: L0 is the loss at (N0, D0) and w
    the N-term's share there. N_c and D_c are reported as derived quantities."""

    name = "kaplan-nd"
    formula = "L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
    derived_doc = {'N_c': "Kaplan et al.'s N_c (parameters)", 'D_c': "Kaplan et al.'s D_c (tokens)"}
    inputs = ("params", "tokens")
    params = {
        "L0": Param(dist.LogNormal(1.0, 0.5), pool="dataset", doc="loss at (N0, D0)"),
        "w": Param(dist.Beta(2.0, 2.0), pool="family", doc="N-term share at (N0, D0)"),
        "alpha_N": Param(dist.LogNormal(np.log(0.08), 0.75), doc="parameter exponent"),
        "alpha_D": Param(dist.LogNormal(np.log(0.08), 0.75), doc="data exponent"),
    }

    def mean(self, x, p, xp=jnp):
        ratio = p["alpha_N"] / p["alpha_D"]
        # log of the bracket by logaddexp: exp(-ratio * x) overflows float32 when alpha_D << alpha_N
        # (plausible under the priors), which made the model's loc infinite and the fit fail
        log_inner = xp.logaddexp(xp.log(p["w"]) - ratio * x["params"],
                                  xp.log1p(-p["w"]) - x["tokens"])
        return p["L0"] * xp.exp(p["alpha_D"] * log_inner)

    def derived(self, p, logref):
        # (N_c/N0)^(aN/aD) = w * L0^(1/aD)  and  D_c/D0 = (1-w) * L0^(1/aD)
        log_scale = np.log(p["L0"]) / p["alpha_D"]
        ratio = p["alpha_N"] / p["alpha_D"]
        return {
            "N_c": np.exp(logref["params"] + (np.log(p["w"]) + log_scale) / ratio),
            "D_c": np.exp(logref["tokens"] + np.log1p(-p["w"]) + log_scale),
        }
