"""Checks of sampler settings shared by every entry point: a bad value is one clear error before
any compiling, never a silent change (a seed taken modulo 2^32) or a late traceback."""
from __future__ import annotations

import numpy as np

from .errors import BayescaleError

SEED_LIMIT = 2**32   # JAX's and NumPy's seeds are 32-bit: larger ones would wrap around silently


def check_seed(seed, name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise BayescaleError(f"{name} must be an integer, got {seed!r}")
    if not 0 <= int(seed) < SEED_LIMIT:
        raise BayescaleError(f"{name} must lie in [0, 2^32 - 1] (it seeds 32-bit generators, so larger values "
                             f"would wrap around onto smaller ones), got {seed}")
    return int(seed)


def law_seed(seed: int, i: int) -> int:
    """The seed of the i-th law of a mixture: seed + i, wrapped into the seeds' 32-bit range (so
    a valid seed near its top stays valid; every smaller seed gives seed + i as before)."""
    return (int(seed) + i) % SEED_LIMIT


def check_flag(value, name: str, *, none: bool = False):
    """A True/False option (or None where None means "decide for me"): a string such as "no" is
    an error, not True because it is not empty."""
    if (value is None and none) or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    raise BayescaleError(f"{name} must be True or False{' (or None: automatic)' if none else ''}, got {value!r}")


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise BayescaleError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_target_accept(value) -> float | None:
    """None (the default for the model) or a float strictly between 0 and 1."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BayescaleError(f"target_accept must be a number between 0 and 1, got {value!r}") from None
    if not 0 < v < 1:
        raise BayescaleError(f"target_accept must lie strictly between 0 and 1 (e.g. 0.9, or 0.99 for a "
                             f"posterior with divergences), got {value!r}")
    return v
