"""Rates (accuracies, pass rates, coverage) and Gadre et al. (2024)'s loss-to-error law.

:class:`RateLaw` is the observation model shared by the downstream laws: the law gives the
expected rate p of a run; the run's own rate is r ~ Beta(p·phi, (1-p)·phi) (runs scatter around
the curve: phi is their concentration), and the ``correct`` answers out of ``trials`` questions are
Binomial(trials, r), i.e. Beta-Binomial in all. Rows with ``trials`` = 0 carry only a rate, whose
likelihood is then the Beta itself. As phi grows this tends to a plain Binomial.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import betaln, gammaln
from numpyro.distributions import constraints

from ..errors import BayescaleError
from .base import Law, Param
from .registry import register

RATE_MIN, RATE_MAX = 1e-10, 1 - 1e-6  # rates are kept inside (float32 cannot hold 1 - 1e-10)


def clip_rate(p, xp=jnp):
    return xp.where(p < RATE_MIN, RATE_MIN, xp.where(p > RATE_MAX, RATE_MAX, p))


class RateObservation(dist.Distribution):
    """Beta-Binomial counts where trials > 0, a Beta rate where trials == 0 (one site for both)."""

    arg_constraints = {}
    support = constraints.real

    def __init__(self, rate, phi, trials, validate_args=None):
        self.rate, self.phi, self.trials = jnp.broadcast_arrays(rate, phi, trials)
        super().__init__(batch_shape=jnp.shape(self.rate), validate_args=validate_args)

    def _ab(self):
        rate = clip_rate(self.rate)
        return rate * self.phi, (1 - rate) * self.phi

    def log_prob(self, value):
        a, b = self._ab()
        counted = self.trials > 0
        # each branch sees safe stand-in values where the other applies (no NaN in gradients)
        n = jnp.where(counted, self.trials, 1.0)
        k = jnp.where(counted, value, 0.0)
        v = jnp.where(counted, 0.5, clip_rate(value))
        binom = (gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
                 + betaln(k + a, n - k + b) - betaln(a, b))
        beta = (a - 1) * jnp.log(v) + (b - 1) * jnp.log1p(-v) - betaln(a, b)
        return jnp.where(counted, binom, beta)

    def sample(self, key, sample_shape=()):
        import jax

        a, b = self._ab()
        k1, k2 = jax.random.split(key)
        r = clip_rate(dist.Beta(a, b).sample(k1, sample_shape))
        n = jnp.round(jnp.where(self.trials > 0, self.trials, 1.0)).astype(jnp.int32)
        count = dist.Binomial(n, r).sample(k2)
        return jnp.where(self.trials > 0, count.astype(r.dtype), r)


class RateLaw(Law):
    """A law for a rate in [0, 1] (column ``p_correct``) observed as ``correct`` of ``trials``.

    ``mean`` returns the expected rate; laws whose rate has a floor taken from the data (a chance
    level) override :meth:`to_rate`, which maps ``mean`` to the observed rate per row."""

    response = "p_correct"
    extras: tuple[str, ...] = ("trials",)

    def noise_params(self):
        return {"phi": Param(dist.LogNormal(np.log(200.0), 1.5),
                             doc="concentration of a run's rate around the curve: r ~ Beta(p·phi, (1-p)·phi)")}

    def to_rate(self, mu, aux, xp=jnp):
        return mu

    def observe(self, mu, p, y, aux):
        rate = self.to_rate(mu, aux)
        numpyro.sample("y", RateObservation(rate, p["phi"], aux["trials"]), obs=y)

    def site_value(self, y, aux):
        t = np.asarray(aux["trials"], dtype=np.float64)
        return np.where(t > 0, y * t, y)

    def from_site(self, value, aux):
        t = np.asarray(aux["trials"], dtype=np.float64)
        return np.where(t > 0, value / np.where(t > 0, t, 1.0), value)

    def sample_observation(self, rng, mu, p, aux):
        rate = clip_rate(np.asarray(self.to_rate(mu, aux, xp=np), dtype=np.float64), xp=np)
        phi = np.broadcast_to(p["phi"], rate.shape)
        r = clip_rate(rng.beta(rate * phi, (1 - rate) * phi), xp=np)
        t = np.broadcast_to(np.asarray(aux["trials"], dtype=np.float64), rate.shape)
        n = np.round(np.where(t > 0, t, 1.0)).astype(np.int64)
        return np.where(t > 0, rng.binomial(n, r) / n, r)

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

    def check_response(self, y, aux):
        t = np.asarray(aux["trials"], dtype=np.float64)
        for bad, what in ((t < 0, "'trials' must be >= 0 (0 = only a rate is known)"),
                          ((y < 0) | (y > 1), f"'{self.response}' must lie in [0, 1]"),
                          ((t == 0) & ((y <= 0) | (y >= 1)),
                           f"rows with trials = 0 need 0 < {self.response} < 1 (Beta likelihood); "
                           "give the number of questions in 'trials' for rates of exactly 0 or 1")):
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise BayescaleError(
                    f"law {self.spec!r}: {what}, but row {i} has {self.response}={y[i]:g}, trials={t[i]:g} "
                    f"({int(bad.sum())} such row(s)); fix or drop those rows")


@register
class LossToError(RateLaw):
    """Gadre et al. (2024): top-1 error Err = eps - k·exp(-gamma·L) of the (predicted) loss L.

    Written for accuracy 1 - Err = 1 - eps + exp(log_k0 - gamma·(L - L0)) with L0 the mean
    training loss; eps is the error at high loss (about 1 - chance), k is reported raw."""

    name = "loss-to-error"
    formula = "Err = eps - k·exp(-gamma·L)   (p_correct = 1 - Err)"
    inputs = ("loss",)
    linear_inputs = ("loss",)
    params = {
        "eps": Param(dist.Beta(6.0, 3.0), pool="task", group_scale=0.5, doc="error at high loss (about 1 - chance)"),
        "log_k0": Param(dist.Normal(-2.0, 1.5), pool="task", doc="log of eps - Err at the reference loss L0"),
        "gamma": Param(dist.LogNormal(np.log(1.5), 0.75), doc="rate of the exponential in loss"),
    }

    def mean(self, x, p, xp=jnp):
        return clip_rate(1 - p["eps"] + xp.exp(p["log_k0"] - p["gamma"] * x["loss"]), xp)

    def derived(self, p, logref):
        return {"k": np.exp(p["log_k0"] + p["gamma"] * logref["loss"])}
