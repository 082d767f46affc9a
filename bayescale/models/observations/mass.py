"""Beta on the probability mass a model puts on the correct choice of a question."""
from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist

from ...errors import BayescaleError
from ..param import Param
from .base import Observation, first_bad_row, plain_column, plain_row
from .rate import RATE_MAX, RATE_MIN, LogitLink


class BetaMass(LogitLink, Observation):
    """Each question's correct mass p_c ~ Beta(m·phi, (1 - m)·phi) around the curve's mean mass m."""

    name = "beta mass"
    site_scale = "mass on the correct choice"

    def noise_params(self):
        # shared by default: pooled by task (pool={"phi": "task"}) its non-centred funnel slows NUTS
        return {"phi": Param(dist.LogNormal(np.log(10.0), 1.5), group_scale=0.5,
                             doc="concentration of questions' correct masses around the mean m")}

    def observe(self, mu, p, y, aux):
        numpyro.sample("y", dist.Beta(mu * p["phi"], (1 - mu) * p["phi"]), obs=y)

    def site_value(self, y, aux):
        return np.clip(y, RATE_MIN, RATE_MAX)

    def from_site(self, value, aux):
        return np.clip(value, RATE_MIN, RATE_MAX)  # float32 draws can round to 0 or 1

    def sample(self, rng, mu, p, aux):
        phi = np.broadcast_to(p["phi"], mu.shape)
        return np.clip(rng.beta(mu * phi, (1 - mu) * phi), RATE_MIN, RATE_MAX)

    def check(self, y, aux, law, name_row=plain_row, shown=plain_column):
        # masses of exactly 0 or 1 (rounding) are clipped into the Beta's support by site_value
        bad = ~((y >= 0) & (y <= 1))
        if bad.any():
            i, n = first_bad_row(bad)
            raise BayescaleError(
                f"law {law.spec!r}: column {shown(law.response)} (mass on the correct choice) must lie in [0, 1], "
                f"but {name_row(i)} is {y[i]:g} ({n} such row(s)); fix or drop those rows")

    def pymc_observe(self, pm, pt, mu, p, y, aux):
        return pm.Beta("y", alpha=mu * p["phi"], beta=(1 - mu) * p["phi"], observed=y, dims="obs")
