"""Samples drawn until the k-th pass, capped at a budget: censored Beta-negative-binomial attempts.

Given a problem's pass rate r ~ Beta(PU·phi, (1-PU)·phi) the passes-th pass comes after a
negative-binomial number of failures, so attempts is Beta-negative-binomial; a row with
attempts = budget means sampling stopped at the budget (at most ``passes`` - 1 passes among the
first budget - 1 samples: right-censored). Sampling until a pass is what makes tiny pass rates
measurable: a problem with PU = 1e-4 needs ~1e4 samples, which a fixed small budget per problem
would record as zero passes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import betaln
from numpyro.distributions import constraints

from ...errors import BayescaleError
from .base import first_bad_row, plain_column, plain_row
from .rate import BetaBinomialRate, clip_rate

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


class CensoredAttempts(BetaBinomialRate):
    """Response ``attempts``: samples drawn until the ``passes``-th pass, at most ``budget``
    (attempts = budget: stopped at the budget, censored). Same problem scatter phi as the
    Beta-Binomial rate; the expected response (``kind="mean"``) is the pass rate itself."""

    name = "censored attempts until a pass"
    site_scale = "attempts (samples drawn)"

    def __init__(self):
        super().__init__()
        self.extras = ("passes", "budget")

    def observe(self, mu, p, y, aux):
        numpyro.sample("y", AttemptsObservation(mu, p["phi"], aux["passes"], aux["budget"]), obs=y)

    def site_value(self, y, aux):
        return np.asarray(y, dtype=np.float64)

    def from_site(self, value, aux):
        return np.asarray(value, dtype=np.float64)

    def sample(self, rng, mu, p, aux):
        a, b = rate_ab(np.asarray(mu, dtype=np.float64), np.asarray(p["phi"], dtype=np.float64), xp=np)
        a, b = np.broadcast_arrays(a, b)
        r = clip_rate(rng.beta(a, b), xp=np)
        k = np.broadcast_to(np.asarray(aux["passes"], dtype=np.float64), r.shape)
        budget = np.broadcast_to(np.asarray(aux["budget"], dtype=np.float64), r.shape)
        t = k + rng.negative_binomial(k.astype(np.int64), r)
        return np.minimum(t, budget)

    def check(self, y, aux, law, name_row=plain_row, shown=plain_column):
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
                i, n = first_bad_row(bad)
                raise BayescaleError(
                    f"law {law.spec!r}: {what}, but {name_row(i)} has attempts={y[i]:g}, passes={k[i]:g}, "
                    f"budget={budget[i]:g} ({n} such row(s)); fix or drop those rows")

    def pymc_observe(self, pm, pt, mu, p, y, aux):
        return super(BetaBinomialRate, self).pymc_observe(pm, pt, mu, p, y, aux)
