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

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import betaln
from numpyro.distributions import constraints

from ..errors import BayescaleError
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
    """``pass-until``: passes of samples per problem; ``pass-until:attempts``: samples until a pass."""

    name = "pass-until"
    formula = "PU = exp(-c·N^-alpha)"
    options = ("attempts",)

    def __new__(cls, option=None):
        # the option changes the observation model: it is a subclass with its own likelihood
        return super().__new__(PassUntilAttempts if cls is PassUntil and option == "attempts" else cls)


PASSES_MAX = 32        # the censored likelihood sums one term per possible number of passes
ATTEMPTS_MAX = 2**24   # integers stay exact in float32 up to here


def log_choose(n, k):
    """log C(n, k) via betaln (accurate in float32 for large n)."""
    return -jnp.log1p(n) - betaln(k + 1.0, n - k + 1.0)


A_CAP = 1e4            # soft cap on a = rate·phi (see rate_ab)


def rate_ab(rate, phi, xp=jnp):
    """Beta(a, b) of a problem's pass rate, a = rate·phi, b = (1-rate)·phi, with phi softly capped
    so that a <= A_CAP: beyond it (a problem's rate within ~1 % of the curve) float32 log-Beta
    differences are noise, and an uncapped chain that strays to huge phi gets stuck there."""
    rate = clip_rate(rate, xp)
    phi = phi / (1 + rate * phi / A_CAP)
    return rate * phi, (1 - rate) * phi


class AttemptsObservation(dist.Distribution):
    """min(T, budget), T the sample that brings the passes-th pass, with a pass rate r ~ Beta(a, b)
    per problem: T - passes is Beta-negative-binomial; T >= budget (value = budget) is censored."""

    arg_constraints = {}
    support = constraints.positive

    def __init__(self, rate, phi, passes, budget, validate_args=None):
        self.rate, self.phi, self.passes, self.budget = jnp.broadcast_arrays(rate, phi, passes, budget)
        super().__init__(batch_shape=jnp.shape(self.rate), validate_args=validate_args)

    def log_prob(self, value):
        a, b = rate_ab(self.rate, self.phi)
        k, budget = self.passes, self.budget
        censored = value >= budget
        n = jnp.where(censored, k, value)  # a safe stand-in where censored (no NaN in gradients)
        # P(T = n) = C(n-1, k-1) B(a+k, b+n-k) / B(a, b)
        exact = log_choose(n - 1, k - 1) + betaln(a + k, b + n - k) - betaln(a, b)
        # P(T >= budget) = P(at most k-1 passes in m = budget-1 samples): Beta-Binomial terms j < k
        m = (budget - 1)[..., None]
        j = jnp.arange(PASSES_MAX, dtype=a.dtype)
        use = j < k[..., None]
        j = jnp.where(use, j, 0.0)
        terms = log_choose(m, j) + betaln(a[..., None] + j, b[..., None] + m - j) - betaln(a, b)[..., None]
        tail = jax.nn.logsumexp(jnp.where(use, terms, -jnp.inf), axis=-1)
        return jnp.where(censored, tail, exact)

    def sample(self, key, sample_shape=()):
        a, b = rate_ab(self.rate, self.phi)
        k1, k2 = jax.random.split(key)
        shape = sample_shape + self.batch_shape
        r = clip_rate(dist.Beta(a, b).sample(k1, sample_shape))
        # T = a sum of `passes` geometric waits, floor(E / -log(1 - r)) + 1 with E ~ Exp(1)
        e = jax.random.exponential(k2, shape + (PASSES_MAX,))
        waits = jnp.floor(e / -jnp.log1p(-r)[..., None]) + 1.0
        t = jnp.sum(jnp.where(jnp.arange(PASSES_MAX) < self.passes[..., None], waits, 0.0), axis=-1)
        return jnp.minimum(t, self.budget)


class PassUntilAttempts(PassUntil):
    """PassUntil's law observed as ``attempts``: samples drawn until the ``passes``-th pass, capped
    at ``budget`` samples (attempts = budget: stopped at the budget, censored). Same curve, priors
    and problem scatter phi as ``pass-until``; ``predict(kind="mean")`` is the pass rate PU."""

    response = "attempts"
    extras = ("passes", "budget")

    def __init__(self, option=None):
        super().__init__("attempts")

    def observe(self, mu, p, y, aux):
        numpyro.sample("y", AttemptsObservation(mu, p["phi"], aux["passes"], aux["budget"]), obs=y)

    def site_value(self, y, aux):
        return np.asarray(y, dtype=np.float64)

    def from_site(self, value, aux):
        return np.asarray(value, dtype=np.float64)

    def sample_observation(self, rng, mu, p, aux):
        a, b = rate_ab(np.asarray(mu, dtype=np.float64), np.asarray(p["phi"], dtype=np.float64), xp=np)
        a, b = np.broadcast_arrays(a, b)
        r = clip_rate(rng.beta(a, b), xp=np)
        k = np.broadcast_to(np.asarray(aux["passes"], dtype=np.float64), r.shape)
        budget = np.broadcast_to(np.asarray(aux["budget"], dtype=np.float64), r.shape)
        t = k + rng.negative_binomial(k.astype(np.int64), r)
        return np.minimum(t, budget)

    def sbc_design(self):
        """6 model sizes x 12 problems, until the first pass, budgets of 200 and 2000 samples.

        (calibration.sbc validates the design with attempts = 1, so passes > 1 cannot be used here.)"""
        import pandas as pd

        n, problem = np.meshgrid(np.geomspace(1e8, 1e10, 6), np.arange(12), indexing="ij")
        problem = problem.ravel()
        return pd.DataFrame({"params": n.ravel(), "problem": problem, "passes": 1.0,
                             "budget": np.where(problem % 2, 2000.0, 200.0)})

    def check_response(self, y, aux):
        k = np.asarray(aux["passes"], dtype=np.float64)
        budget = np.asarray(aux["budget"], dtype=np.float64)
        checks = (
            ((k < 1) | (k > PASSES_MAX) | (k != np.round(k)),
             f"'passes' must be a whole number from 1 to {PASSES_MAX} (1 = sample until the first pass); "
             "for more passes use law 'pass-until' on correct of trials"),
            ((budget < k) | (budget > ATTEMPTS_MAX) | (budget != np.round(budget)),
             f"'budget' (the most samples drawn per row) must be a whole number >= passes and <= {ATTEMPTS_MAX}"),
            ((y < k) | (y > budget) | (y != np.round(y)),
             "'attempts' must be a whole number from passes to budget (samples drawn until the passes-th "
             "pass; attempts = budget when sampling stopped at the budget)"),
        )
        for bad, what in checks:
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise BayescaleError(
                    f"law {self.spec!r}: {what}, but row {i} has attempts={y[i]:g}, passes={k[i]:g}, "
                    f"budget={budget[i]:g} ({int(bad.sum())} such row(s)); fix or drop those rows")
