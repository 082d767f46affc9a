"""What a law is: a curve (inputs, parameters with priors and pooling, a mean function) composed
with an observation model (the likelihood of the measured response)."""
from __future__ import annotations

import jax.numpy as jnp

from .observations import LogStudentT, Observation
from .param import Param

__all__ = ["Law", "Param"]


class Law:
    """Base class. Subclasses set the class attributes and implement :meth:`mean`.

    ``mean(x, p, xp)`` receives the inputs centred on reference scales: log(input / reference)
    (``x["params"]`` is log(N / N0)), or input - reference for inputs in ``linear_inputs``; the
    parameters ``p`` broadcast per row; and ``xp``, the array namespace (jax.numpy for NumPyro,
    numpy after sampling, pytensor.tensor for PyMC). It returns the law's curve and may only use
    ``xp.exp``, ``xp.log``, ``xp.log1p``, ``xp.logaddexp``, ``xp.sqrt`` and ``xp.where``, plus
    arithmetic, so that the same declaration builds every backend.

    ``observation`` is the observation model (default: Student-t on log response); it owns the
    likelihood, the scatter parameters, the expected response and new measurements.
    """

    name: str = ""
    formula: str = ""
    inputs: tuple[str, ...] = ()
    linear_inputs: tuple[str, ...] = ()   # inputs centred as input - mean, not on the log scale
    response: str = "loss"
    params: dict[str, Param] = {}
    option: str | None = None         # e.g. the input of a one-variable power law
    options: tuple[str, ...] = ()
    observation: Observation = LogStudentT()
    coordinates = None                # FloorPlusPowers: the sampler's coordinates (models/coordinates.py)
    derived_doc: dict[str, str] = {}  # what each of :meth:`derived`'s quantities is (summary rows, `laws`)

    def __init__(self, option: str | None = None):
        self.option = option

    # ---- the curve ------------------------------------------------------------------------
    def mean(self, x: dict, p: dict, xp=jnp):
        raise NotImplementedError

    def derived(self, p: dict, logref: dict) -> dict:
        """Quantities in the literature's raw parametrisation (numpy / xarray arithmetic)."""
        return {}

    def sbc_design(self):
        """A small design (DataFrame) for simulation-based calibration, or None for the default
        grid over the law's size inputs (see bayescale.sbc.default_design)."""
        return None

    @property
    def spec(self) -> str:
        return self.name if self.option is None else f"{self.name}:{self.option}"

    # ---- the observation model's view ------------------------------------------------------
    @property
    def extras(self) -> tuple[str, ...]:
        """Per-row columns the likelihood needs (not inputs), e.g. the number of questions."""
        return self.observation.extras

    @property
    def mean_extras(self) -> tuple[str, ...]:
        """Per-row columns the expected response needs (e.g. the chance level)."""
        return self.observation.mean_extras

    def noise_params(self) -> dict[str, Param]:
        return self.observation.noise_params()

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
            "observation": self.observation.describe(),
            "params": {k: {"prior": describe(v.prior), "pool": v.pool, "doc": v.doc}
                       for k, v in self.all_params().items()},
            "derived": dict(self.derived_doc),
        }
