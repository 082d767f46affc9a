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
ERR_FLOOR = 3e-3  # scale of loss-to-error's smooth floor on the error
EXP_MAX = 60.0    # exponents are capped here (float32 overflows near 88)


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

    ``mean`` returns the law's curve; laws whose rate has a floor taken from the data (a chance
    level) override :meth:`to_rate`, which maps the curve to the expected rate per row, and list
    the columns it needs in ``rate_extras`` (``Fit.predict(kind="mean")`` applies it)."""

    response = "p_correct"
    extras: tuple[str, ...] = ("trials",)
    rate_extras: tuple[str, ...] = ()   # columns to_rate needs (a subset of extras)

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
