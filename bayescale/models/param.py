"""A law parameter: prior, default grouping and group spread."""
from __future__ import annotations

from dataclasses import dataclass

import numpyro.distributions as dist


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
