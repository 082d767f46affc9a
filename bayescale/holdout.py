"""Holdout protocols: which rows a calibration run hides from the fit."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import BayescaleError

PROTOCOLS = ("top-compute:FRACTION", "largest-n:K", "natural")
DEFAULT_FRACTION = 0.1   # a bare 'top-compute' is calibrate's default holdout, top-compute:0.1


def _compute(df: pd.DataFrame) -> np.ndarray:
    if "compute" in df:
        return df["compute"].to_numpy(dtype=np.float64)
    if "params" in df and "tokens" in df:
        return 6.0 * df["params"].to_numpy(np.float64) * df["tokens"].to_numpy(np.float64)
    raise BayescaleError("top-compute holdout needs a 'compute' column or 'params' and 'tokens'")


def _checked_compute(df: pd.DataFrame) -> None:
    """The compute that orders the split must be a positive number in every row: a NaN or
    negative compute would put the largest run on the training side in silence."""
    c = _compute(df)
    bad = np.flatnonzero(~(np.isfinite(c) & (c > 0)))
    if bad.size:
        column = "'compute'" if "compute" in df else "'params' x 'tokens'"
        fix = ("give every run a positive, finite compute, or drop the column to use 6·params·tokens"
               if "compute" in df else "give every run positive, finite params and tokens")
        raise BayescaleError(f"top-compute holdout orders runs by {column}, which is {c[bad[0]]:g} at row {bad[0]} "
                             f"(counting from 0, the header not counted; {bad.size} such row(s)): {fix}")


def _per_group(df: pd.DataFrame, by: str | None, rule) -> np.ndarray:
    if by is None:
        return rule(df)
    if by not in df:
        raise BayescaleError(f"cannot hold out per '{by}': no such column; columns are {list(df.columns)}")
    mask = np.zeros(len(df), dtype=bool)
    for _, rows in df.groupby(by, sort=False).indices.items():
        mask[rows] = rule(df.iloc[rows])
    return mask


def top_compute(df: pd.DataFrame, fraction: float, by: str | None = None) -> np.ndarray:
    """The top ``fraction`` of rows by compute (at least one row), overall or per group."""
    if not 0 < fraction < 1:
        raise BayescaleError(f"top-compute fraction must be in (0, 1), got {fraction}")
    _checked_compute(df)

    def rule(part):
        c = _compute(part)
        k = max(1, int(round(fraction * len(part))))
        cut = np.sort(c)[-k]
        return c >= cut

    return _per_group(df, by, rule)


def largest_n(df: pd.DataFrame, k: int = 1, by: str | None = None) -> np.ndarray:
    """All rows of the ``k`` largest distinct model sizes, overall or per group."""
    if k < 1:
        raise BayescaleError(f"largest-n needs K >= 1, got {k}")
    if "params" not in df:
        raise BayescaleError(f"largest-n holdout needs a 'params' column; columns are {list(df.columns)}")

    def rule(part):
        sizes = np.unique(part["params"].to_numpy(np.float64))
        return part["params"].to_numpy(np.float64) >= sizes[-min(k, len(sizes))]

    return _per_group(df, by, rule)


def parse(spec: str, df: pd.DataFrame, *, by: str | None = None, natural=None) -> np.ndarray:
    """'top-compute:0.2', 'largest-n:1' or 'natural' (``natural`` is the dataset's own mask)."""
    name, _, arg = spec.partition(":")
    try:
        if name == "top-compute":
            mask = top_compute(df, float(arg or DEFAULT_FRACTION), by)
        elif name == "largest-n":
            mask = largest_n(df, int(arg or 1), by)
        elif name == "natural":
            if natural is None:
                raise BayescaleError("holdout 'natural' needs a registered dataset (DATA = dataset:NAME)")
            mask = np.asarray(natural, dtype=bool)
            if mask.shape != (len(df),):
                raise BayescaleError(f"the natural holdout mask has {mask.size} entries for {len(df)} rows; "
                                     "it must hold one boolean per row of the table")
        else:
            raise BayescaleError(f"unknown holdout {spec!r}; choose one of {list(PROTOCOLS)}")
    except BayescaleError:  # a ValueError too; already says what is wrong
        raise
    except ValueError as exc:
        raise BayescaleError(f"cannot read holdout {spec!r}: {exc}; e.g. top-compute:0.2") from exc
    if mask.all() or not mask.any():
        raise BayescaleError(f"holdout {spec!r} selects {int(mask.sum())} of {len(mask)} rows; "
                             "it must leave both a training and a held-out part")
    return mask
