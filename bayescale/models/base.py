"""What a law is: inputs, parameters with priors and pooling, a mean function and a likelihood."""
from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ..errors import BayescaleError


@dataclass(frozen=True)
class Param:
    """A law parameter: its prior, its default grouping (None = shared) and group spread scale.

    Pooled parameters vary by group in the prior's unconstrained space:
    value[g] = T(T^-1(population) + tau * z[g]), tau ~ HalfNormal(group_scale), z ~ Normal(0, 1).
    """

    prior: dist.Distribution
    pool: str | None = None
    group_scale: float = 0.3
    doc: str = ""


class Law:
    """Base class. Subclasses set the class attributes and implement :meth:`mean`.

    ``mean(x, p, xp)`` receives the inputs centred on reference scales: log(input / reference)
    (``x["params"]`` is log(N / N0)), or input - reference for inputs in ``linear_inputs``; the
    parameters ``p`` broadcast per row; and ``xp``, the array namespace (jax.numpy for NumPyro,
    pytensor.tensor for PyMC). It returns the law's mean response and may only use
    ``xp.exp``, ``xp.log``, ``xp.log1p``, ``xp.logaddexp``, ``xp.sqrt`` and ``xp.where``, plus
    arithmetic, so that the same declaration builds both backends.

    The observation model is Student-t on log response by default; laws with other responses
    (accuracies, counts) override :meth:`noise_params`, :meth:`observe`, :meth:`site_value`,
    :meth:`sample_observation` and :meth:`check_response`, and list the per-row columns their
    likelihood needs (e.g. the number of questions) in ``extras``.
    """

    name: str = ""
    formula: str = ""
    inputs: tuple[str, ...] = ()
    linear_inputs: tuple[str, ...] = ()   # inputs centred as input - mean, not on the log scale
    extras: tuple[str, ...] = ()          # per-row columns the likelihood needs (not inputs)
    response: str = "loss"
    params: dict[str, Param] = {}
    option: str | None = None  # e.g. the input of a one-variable power law
    options: tuple[str, ...] = ()

    def __init__(self, option: str | None = None):
        self.option = option

    # ---- the mean curve -------------------------------------------------------------------
    def mean(self, x: dict, p: dict, xp=jnp):
        raise NotImplementedError

    def derived(self, p: dict, logref: dict) -> dict:
        """Quantities in the literature's raw parametrisation (numpy / xarray arithmetic)."""
        return {}

    @property
    def spec(self) -> str:
        return self.name if self.option is None else f"{self.name}:{self.option}"

    # ---- the observation model ----------------------------------------------------------
    def noise_params(self) -> dict[str, Param]:
        """Student-t on log response, a noise scale per dataset and shared degrees of freedom."""
        return {
            "sigma": Param(dist.HalfNormal(0.1), pool="dataset", group_scale=0.5,
                           doc="noise scale of log response"),
            # nu >= 2: robust to outliers, yet finite variance of log loss, so that predictions
            # of a new run's loss do not get Cauchy-like tails
            "nu": Param(dist.TruncatedNormal(10.0, 15.0, low=2.0), doc="Student-t degrees of freedom"),
        }

    def observe(self, mu, p: dict, y, aux: dict):
        """The likelihood of the observed site "y" (``y`` on the site's scale, see site_value)."""
        numpyro.sample("y", dist.StudentT(p["nu"], jnp.log(mu), p["sigma"]), obs=y)

    def site_value(self, y: np.ndarray, aux: dict) -> np.ndarray:
        """The response on the observed site's scale: log response."""
        return np.log(y)

    def from_site(self, value: np.ndarray, aux: dict) -> np.ndarray:
        """The inverse of :meth:`site_value`."""
        return np.exp(value)

    def sample_observation(self, rng: np.random.Generator, mu: np.ndarray, p: dict, aux: dict) -> np.ndarray:
        """New observations at the mean ``mu`` (draws x rows), on the response's scale."""
        t = rng.standard_t(np.broadcast_to(p["nu"], mu.shape))
        return np.exp(np.log(mu) + p["sigma"] * t)

    def check_response(self, y: np.ndarray, aux: dict) -> None:
        """Raise BayescaleError for responses the likelihood cannot take (default: loss > 0)."""
        bad = ~(y > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BayescaleError(
                f"column '{self.response}' must be > 0 for law {self.spec!r} (Student-t on log "
                f"{self.response}), but row {i} is {y[i]:g} ({int(bad.sum())} such row(s)); check units "
                "or remove those rows")

    def simulate(self, design, params=None, *, seed=0, **kwargs):
        """Simulate at the rows of ``design`` from ``params`` or the prior (see bayescale.simulate)."""
        from ..simulate import simulate

        return simulate(self, design, params, seed=seed, **kwargs)

    def to_pymc(self, df, pool=None, priors=None, **kwargs):
        """The equivalent ``pm.Model`` on ``df`` (needs ``pip install bayescale[pymc]``); see
        :func:`bayescale.pymc_interop.to_pymc`."""
        from ..pymc_interop import to_pymc

        return to_pymc(df, self, pool=pool, priors=priors, **kwargs)

    # ---- helpers --------------------------------------------------------------------------
    def all_params(self) -> dict[str, Param]:
        return {**self.params, **self.noise_params()}

    @property
    def n_free(self) -> int:
        return len(self.params)

    @property
    def has_allocation(self) -> bool:
        return {"params", "tokens"} <= set(self.inputs)

    def describe(self) -> dict:
        from ..priors import describe

        return {
            "name": self.spec,
            "formula": self.formula,
            "inputs": list(self.inputs),
            "params": {k: {"prior": describe(v.prior), "pool": v.pool, "doc": v.doc}
                       for k, v in self.all_params().items()},
        }

