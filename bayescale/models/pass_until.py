"""PassUntil's task scaling law (Hu et al. 2023, "Predicting Emergent Abilities with Infinite
Resolution Evaluation"): the pass rate PU of a task grows with model size as
PU(N) = exp(-c·N^-alpha), i.e. log(-log PU) is linear in log N.

Data are ``correct`` passes out of ``trials`` samples per problem (or task); sampling many times
makes tiny pass rates measurable. Passes are Beta-Binomial (see :class:`RateLaw`): problems or
runs scatter around the task's curve with concentration phi.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .base import Param
from .loss_to_error import RateLaw, clip_rate
from .registry import register


class _StretchedRate(RateLaw):
    """p = exp(-exp(log_c0 - alpha·log(x/x0))): -log p is a power law in x."""

    x = "params"
    symbol = "N"

    def __init__(self, option=None):
        self.option = option
        self.inputs = (self.x,)
        self.params = {
            "log_c0": Param(dist.Normal(0.5, 2.0), pool=self.pool, group_scale=1.0,
                            doc=f"log(-log p) at {self.symbol}0"),
            "alpha": Param(dist.LogNormal(np.log(0.5), 0.75), pool=self.alpha_pool, doc="exponent"),
        }

    pool = "task"
    alpha_pool = None

    def mean(self, x, p, xp=jnp):
        return clip_rate(xp.exp(-xp.exp(p["log_c0"] - p["alpha"] * x[self.x])), xp)

    def derived(self, p, logref):
        return {"c": np.exp(p["log_c0"] + p["alpha"] * logref[self.x])}


@register
class PassUntil(_StretchedRate):
    name = "pass-until"
    formula = "PU = exp(-c·N^-alpha)"
