"""What an observation model is: how a run's measured response scatters around the law's curve."""
from __future__ import annotations

import numpy as np

from ...errors import BayescaleError


class Observation:
    """The likelihood half of a law: a law is a curve composed with one of these.

    The curve gives ``mu`` per row; the observation model turns it into the expected response
    (:meth:`expected`), the likelihood of the measured response (:meth:`observe`, NumPyro site
    ``"y"``, and :meth:`pymc_observe`, its PyMC twin), and new measurements (:meth:`sample`).
    The site ``"y"`` holds the response on the site's own scale (:meth:`site_value`; e.g. log
    loss), named by :attr:`site_scale` ("{response}" stands for the law's response, see
    :meth:`site_label`).
    """

    name = ""
    site_scale = "{response}"
    extras: tuple[str, ...] = ()        # per-row columns the likelihood needs (e.g. trials)
    mean_extras: tuple[str, ...] = ()   # per-row columns :meth:`expected` needs (a subset of extras)

    link_name = "log"
    # whether a new measurement has a finite mean (Student-t scatter on the log scale has none:
    # E[exp(sigma T)] is infinite for every degrees of freedom)
    new_value_has_mean = True

    def link(self, mu, xp=np):
        """The scale on which the model discrepancy adds to the curve (log for positive responses)."""
        return xp.log(mu)

    def inverse_link(self, eta, xp=np):
        return xp.exp(eta)

    def noise_params(self) -> dict:
        """Parameters of the scatter (Param objects), sampled beside the curve's."""
        return {}

    def expected(self, mu, aux: dict, xp=np):
        """The expected response at curve value ``mu`` (default: the curve itself)."""
        return mu

    def observe(self, mu, p: dict, y, aux: dict) -> None:
        """Declare NumPyro site "y" with its likelihood (``y`` on the site's scale)."""
        raise NotImplementedError

    def site_value(self, y: np.ndarray, aux: dict) -> np.ndarray:
        """The response on the observed site's scale."""
        return np.asarray(y, dtype=np.float64)

    def site_label(self, response: str) -> str:
        """The site's scale for a law whose response is ``response``, e.g. "log loss"."""
        return self.site_scale.format(response=response)

    def from_site(self, value: np.ndarray, aux: dict) -> np.ndarray:
        """The inverse of :meth:`site_value`."""
        return np.asarray(value, dtype=np.float64)

    def sample(self, rng: np.random.Generator, mu: np.ndarray, p: dict, aux: dict) -> np.ndarray:
        """New measurements at curve values ``mu`` (draws x rows), on the response's scale."""
        raise NotImplementedError

    def check(self, y: np.ndarray, aux: dict, law, name_row=None, shown=None) -> None:
        """Raise BayescaleError for responses this likelihood cannot take; ``name_row(i)`` and
        ``shown(column)`` name a row and a column as the user's table has them."""

    def pymc_observe(self, pm, pt, mu, p: dict, y: np.ndarray, aux: dict):
        """The PyMC twin of :meth:`observe` (observed variable "y" over dim "obs")."""
        raise BayescaleError(f"observation model {self.name!r} has no PyMC twin yet; "
                             "to_pymc supports laws with Student-t on log response, Beta masses "
                             "and Beta-Binomial rates")

    def describe(self) -> str:
        return self.name


def first_bad_row(bad: np.ndarray) -> tuple[int, int]:
    """(index of the first True row, number of True rows)."""
    return int(np.flatnonzero(bad)[0]), int(bad.sum())


def plain_row(i: int) -> str:
    """A row named by its position, where no table says more (see :attr:`bayescale.data.Dataset.name_row`)."""
    return f"row {i}"


def plain_column(column: str) -> str:
    return f"'{column}'"
