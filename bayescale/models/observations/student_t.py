"""Student-t on log response: the default observation model of loss laws."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ...errors import BayescaleError
from ..param import Param
from .base import Observation, first_bad_row, plain_column, plain_row


class LogStudentT(Observation):
    """log y ~ StudentT(nu, log mu, sigma): a noise scale per dataset, shared degrees of freedom."""

    name = "student-t on log response"
    site_scale = "log {response}"
    new_value_has_mean = False

    def noise_params(self):
        return {
            "sigma": Param(dist.HalfNormal(0.1), pool="dataset", group_scale=0.5,
                           doc="noise scale of log response"),
            # nu >= 2: robust to outliers, yet finite variance of log loss, so that predictions
            # of a new run's loss do not get Cauchy-like tails
            "nu": Param(dist.TruncatedNormal(10.0, 15.0, low=2.0), doc="Student-t degrees of freedom"),
        }

    def observe(self, mu, p, y, aux):
        numpyro.sample("y", dist.StudentT(p["nu"], jnp.log(mu), p["sigma"]), obs=y)

    def site_value(self, y, aux):
        return np.log(y)

    def from_site(self, value, aux):
        return np.exp(value)

    def sample(self, rng, mu, p, aux):
        t = rng.standard_t(np.broadcast_to(p["nu"], mu.shape))
        return np.exp(np.log(mu) + p["sigma"] * t)

    def check(self, y, aux, law, name_row=plain_row, shown=plain_column):
        bad = ~(y > 0)
        if bad.any():
            i, n = first_bad_row(bad)
            raise BayescaleError(
                f"column {shown(law.response)} must be > 0 for law {law.spec!r} (Student-t on log "
                f"{law.response}), but {name_row(i)} is {y[i]:g} ({n} such row(s)); check units "
                "or remove those rows")

    def pymc_observe(self, pm, pt, mu, p, y, aux):
        return pm.StudentT("y", nu=p["nu"], mu=pt.log(mu), sigma=p["sigma"], observed=y, dims="obs")
