"""Rates (accuracies, pass rates, coverage) and Gadre et al. (2024)'s loss-to-error law.

:class:`RateLaw` is the base of the downstream laws: a curve for a rate in [0, 1] observed as
``correct`` of ``trials`` through the Beta-Binomial observation model
(:class:`bayescale.models.observations.BetaBinomialRate`).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from ..errors import BayescaleError
from .base import Law, Param
from .observations import RATE_MAX, RATE_MIN, BetaBinomialRate, RateObservation, clip_rate  # noqa: F401
from .registry import register

ERR_FLOOR = 3e-3  # scale of loss-to-error's smooth floor on the error
EXP_MAX = 60.0    # exponents are capped here (float32 overflows near 88)


class RateLaw(Law):
    """A law for a rate in [0, 1] (column ``p_correct``) observed as ``correct`` of ``trials``."""

    response = "p_correct"
    observation = BetaBinomialRate()

    def sbc_design(self):
        """12 runs over the law's input with 1000 questions each (chance 0.25 where needed)."""
        import pandas as pd

        (k,) = self.inputs
        grid = {"loss": np.linspace(2.5, 4.0, 12), "compute": np.geomspace(1e18, 1e23, 12),
                "params": np.geomspace(1e7, 1e10, 12), "attempts": np.geomspace(1.0, 1e4, 12)}[k]
        design = pd.DataFrame({k: grid, "trials": 1000.0})
        if "chance" in self.extras:
            design["chance"] = 0.25
        return design


@register
class LossToError(RateLaw):
    """Gadre et al. (2024): top-1 error Err = eps - k·exp(-gamma·L) of the (predicted) loss L.

    Sampled as err0, the error at the reference loss L0 (the runs' mean loss), and rise, the share
    of the way from err0 to 1 that the error climbs at high loss:

        Err = err0 + rise·(1 - err0)·(1 - exp(-gamma·(L - L0))),
        eps = err0 + rise·(1 - err0),   k = rise·(1 - err0)·exp(gamma·L0)   (derived, raw).

    In the published coordinates (eps, log k, log gamma) the posterior ridge bends sharply where the
    data pin only the level and slope at L0 (eps runs into 1 as gamma falls), and a hard clip at
    accuracy 1 made a cliff: NUTS diverged in 59 of 100 SBC fits, against 16 of 100 in these
    coordinates. Here eps is in (0, 1) and k > 0 by construction. Where the curve would pass accuracy 1 (low
    loss) the error is floored smoothly, Err_s = d·log(1 + exp(Err/d)) with d = ERR_FLOOR, instead
    of clipping; Err_s equals Err to 0.1 % wherever Err >= 0.02.
    """

    name = "loss-to-error"
    formula = "Err = eps - k·exp(-gamma·L)   (p_correct = 1 - Err)"
    derived_doc = {'eps': 'eps, the error as the loss grows', 'log_k0': 'log(eps - err0): log k at the reference loss', 'k': 'k of the raw form'}
    inputs = ("loss",)
    linear_inputs = ("loss",)
    params = {
        "err0": Param(dist.Beta(2.0, 2.0), pool="task", group_scale=0.5,
                      doc="top-1 error at the reference loss L0 (the runs' mean loss)"),
        "rise": Param(dist.Beta(1.0, 2.0), pool="task", group_scale=0.5,
                      doc="(eps - err0)/(1 - err0): how far the error climbs from err0 towards 1 at high loss"),
        "gamma": Param(dist.LogNormal(np.log(1.5), 0.75), doc="rate of the exponential in loss"),
    }

    def mean(self, x, p, xp=jnp):
        z = -p["gamma"] * x["loss"]
        growth = 1 - xp.exp(xp.where(z < EXP_MAX, z, EXP_MAX))   # exp(z) stays finite in float32
        err = p["err0"] + p["rise"] * (1 - p["err0"]) * growth
        return clip_rate(1 - ERR_FLOOR * xp.logaddexp(0.0, err / ERR_FLOOR), xp)

    def derived(self, p, logref):
        """eps, log_k0 = log(eps - err0) (log k at the reference loss) and the raw k."""
        log_k0 = np.log(p["rise"]) + np.log1p(-p["err0"])
        return {"eps": p["err0"] + p["rise"] * (1 - p["err0"]), "log_k0": log_k0,
                "k": np.exp(log_k0 + p["gamma"] * logref["loss"])}

    @staticmethod
    def from_published(eps, log_k0):
        """(err0, rise) from eps and log_k0 = log(eps - err0), e.g. to simulate from published values."""
        k0 = np.exp(log_k0)
        if not (0 < k0 < eps < 1):
            raise BayescaleError(f"loss-to-error needs 0 < exp(log_k0) < eps < 1 (error between 0 and 1 "
                                 f"at the reference loss), got eps={eps:g}, log_k0={log_k0:g}")
        return {"err0": eps - k0, "rise": k0 / (1 - eps + k0)}
