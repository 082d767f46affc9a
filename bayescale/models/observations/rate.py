"""Beta-Binomial rates: accuracies and pass rates observed as correct answers out of trials.

The law gives the expected rate p of a run; the run's own rate is r ~ Beta(p·phi, (1-p)·phi) (runs
scatter around the curve: phi is their concentration), and the ``correct`` answers out of
``trials`` questions are Binomial(trials, r), i.e. Beta-Binomial in all. Rows with ``trials`` = 0
carry only a rate, whose likelihood is then the Beta itself. As phi grows this tends to a plain
Binomial.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import betaln, gammaln
from numpyro.distributions import constraints

from ...errors import BayescaleError
from ..param import Param
from .base import Observation, first_bad_row, plain_column, plain_row

RATE_MIN, RATE_MAX = 1e-10, 1 - 1e-6  # rates are kept inside (float32 cannot hold 1 - 1e-10)


def clip_rate(p, xp=jnp):
    return xp.where(p < RATE_MIN, RATE_MIN, xp.where(p > RATE_MAX, RATE_MAX, p))


class LogitLink:
    """Rates take the model discrepancy on the logit scale."""

    link_name = "logit"

    def link(self, mu, xp=np):
        return xp.log(mu) - xp.log1p(-mu)

    def inverse_link(self, eta, xp=np):
        return clip_rate(xp.exp(-xp.logaddexp(0.0, -eta)), xp)


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
        a, b = self._ab()
        k1, k2 = jax.random.split(key)
        r = clip_rate(dist.Beta(a, b).sample(k1, sample_shape))
        n = jnp.round(jnp.where(self.trials > 0, self.trials, 1.0)).astype(jnp.int32)
        count = dist.Binomial(n, r).sample(k2)
        return jnp.where(self.trials > 0, count.astype(r.dtype), r)


class BetaBinomialRate(LogitLink, Observation):
    """``correct`` of ``trials`` ~ Beta-Binomial around the expected rate (response ``p_correct``).

    ``chance_floor=True``: the curve is the share of the way from the chance level (column
    ``chance``, 1 / number of choices) to 1, and the expected accuracy is chance + (1 - chance)·curve.
    """

    name = "beta-binomial rate"
    site_scale = "correct answers (count), or the rate where trials = 0"

    def __init__(self, chance_floor: bool = False):
        self.chance_floor = chance_floor
        self.extras = ("trials", "chance") if chance_floor else ("trials",)
        self.mean_extras = ("chance",) if chance_floor else ()

    def noise_params(self):
        return {"phi": Param(dist.LogNormal(np.log(200.0), 1.5),
                             doc="concentration of a run's rate around the curve: r ~ Beta(p·phi, (1-p)·phi)")}

    def expected(self, mu, aux, xp=np):
        return aux["chance"] + (1 - aux["chance"]) * mu if self.chance_floor else mu

    def observe(self, mu, p, y, aux):
        numpyro.sample("y", RateObservation(self.expected(mu, aux, jnp), p["phi"], aux["trials"]), obs=y)

    def site_value(self, y, aux):
        t = np.asarray(aux["trials"], dtype=np.float64)
        return np.where(t > 0, y * t, y)

    def from_site(self, value, aux):
        t = np.asarray(aux["trials"], dtype=np.float64)
        return np.where(t > 0, value / np.where(t > 0, t, 1.0), value)

    def sample(self, rng, mu, p, aux):
        rate = clip_rate(np.asarray(self.expected(mu, aux, np), dtype=np.float64), xp=np)
        phi = np.broadcast_to(p["phi"], rate.shape)
        r = clip_rate(rng.beta(rate * phi, (1 - rate) * phi), xp=np)
        t = np.broadcast_to(np.asarray(aux["trials"], dtype=np.float64), rate.shape)
        n = np.round(np.where(t > 0, t, 1.0)).astype(np.int64)
        return np.where(t > 0, rng.binomial(n, r) / n, r)

    def check(self, y, aux, law, name_row=plain_row, shown=plain_column):
        if self.chance_floor:
            c = np.asarray(aux["chance"], dtype=np.float64)
            bad = (c < 0) | (c >= 1)
            if bad.any():
                i, _ = first_bad_row(bad)
                raise BayescaleError(
                    f"law {law.spec!r}: column {shown('chance')} must lie in [0, 1) (1 / number of choices; 0 for "
                    f"free-form answers), but {name_row(i)} has {c[i]:g}; fix or drop those rows")
        t = np.asarray(aux["trials"], dtype=np.float64)
        for bad, what in ((t < 0, "'trials' must be >= 0 (0 = only a rate is known)"),
                          ((y < 0) | (y > 1), f"'{law.response}' must lie in [0, 1]"),
                          ((t == 0) & ((y <= 0) | (y >= 1)),
                           f"rows with trials = 0 need 0 < {law.response} < 1 (Beta likelihood); "
                           "give the number of questions in 'trials' for rates of exactly 0 or 1")):
            if bad.any():
                i, n = first_bad_row(bad)
                raise BayescaleError(
                    f"law {law.spec!r}: {what}, but {name_row(i)} has {law.response}={y[i]:g}, trials={t[i]:g} "
                    f"({n} such row(s)); fix or drop those rows")

    def pymc_observe(self, pm, pt, mu, p, y, aux):
        def betaln_pt(a, b):
            return pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(a + b)

        def logp(value, rate, phi, trials):
            rate = pt.clip(rate, RATE_MIN, RATE_MAX)
            a, b = rate * phi, (1 - rate) * phi
            counted = trials > 0
            n = pt.switch(counted, trials, 1.0)
            k = pt.switch(counted, value, 0.0)
            v = pt.switch(counted, 0.5, pt.clip(value, RATE_MIN, RATE_MAX))
            binom = (pt.gammaln(n + 1) - pt.gammaln(k + 1) - pt.gammaln(n - k + 1)
                     + betaln_pt(k + a, n - k + b) - betaln_pt(a, b))
            beta = (a - 1) * pt.log(v) + (b - 1) * pt.log1p(-v) - betaln_pt(a, b)
            return pt.switch(counted, binom, beta)

        aux_pt = {k: pt.as_tensor_variable(np.asarray(v, dtype=np.float64)) for k, v in aux.items()}
        rate = self.expected(mu, aux_pt, pt)
        return pm.CustomDist("y", rate, p["phi"], aux_pt["trials"], logp=logp, observed=y, dims="obs")
