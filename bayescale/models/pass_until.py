"""PassUntil's task scaling law (Hu et al. 2023, "Predicting Emergent Abilities with Infinite
Resolution Evaluation"): the pass rate PU of a task grows with model size as
PU(N) = exp(-c·N^-alpha), i.e. log(-log PU) is linear in log N.

Two forms of data, both with problems (or runs) scattering around the task's curve: a problem's
own pass rate is r ~ Beta(PU·phi, (1-PU)·phi).

* ``pass-until``: ``correct`` passes out of ``trials`` samples per problem (or task), Beta-Binomial
  (see :class:`RateLaw`); response ``p_correct``.
* ``pass-until:attempts``: samples drawn until the ``passes``-th pass (1: the first pass), at most
  ``budget`` samples per problem; response ``attempts``. Given r the passes-th pass comes after a
  negative-binomial number of failures, so attempts is Beta-negative-binomial; a row with
  attempts = budget means sampling stopped at the budget (at most ``passes`` - 1 passes among
  the first budget - 1 samples: right-censored). Sampling until a pass is what makes tiny pass
  rates measurable: a problem with PU = 1e-4 needs ~1e4 samples, which a fixed small budget per
  problem would record as zero passes. Its likelihood caps phi softly at PU·phi <= 1e4 (see
  :func:`rate_ab`); ``passes`` is at most 32.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .base import Param
from .loss_to_error import RateLaw
from .observations import CensoredAttempts, clip_rate
from .observations.attempts import AttemptsObservation, rate_ab  # noqa: F401  (re-exported)
from .registry import register


class _StretchedRate(RateLaw):
    """p = exp(-exp(log_c0 - alpha·log(x/x0))): -log p is a power law in x."""

    x = "params"

    @property
    def derived_doc(self) -> dict[str, str]:
        return {"c": f"c of the raw form, with {getattr(self, 'symbol', self.x)} unnormalised"}
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
    """``pass-until``: passes of samples per problem; ``pass-until:attempts``: samples until a pass."""

    name = "pass-until"
    formula = "PU = exp(-c·N^-alpha)"
    options = ("attempts",)

    def __init__(self, option=None):
        super().__init__(option)
        if option == "attempts":  # the same curve observed as samples drawn until a pass
            self.observation = CensoredAttempts()
            self.response = "attempts"

    def sbc_design(self):
        """Rate form: the RateLaw grid. Attempts form: 6 model sizes x 12 problems, until the first
        pass, budgets of 200 and 2000 samples."""
        if self.option != "attempts":
            return super().sbc_design()
        import pandas as pd

        n, problem = np.meshgrid(np.geomspace(1e8, 1e10, 6), np.arange(12), indexing="ij")
        problem = problem.ravel()
        return pd.DataFrame({"params": n.ravel(), "problem": problem, "passes": 1.0,
                             "budget": np.where(problem % 2, 2000.0, 200.0)})
