"""Helpers shared by the loaders: visible fixes, the long schema, reading files with clear errors."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pandas as pd

from ..data import validate
from ..errors import BayescaleError, BayescaleWarning, caller_stacklevel
from .paths import data_file

LABELS = ("family", "dataset", "task")


class Notes(list):
    """The list of fixes made while loading; each one is also warned about."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def fix(self, message: str) -> None:
        msg = f"{self.name}: {message}"
        self.append(msg)
        warnings.warn(msg, BayescaleWarning, stacklevel=caller_stacklevel(os.path.dirname(__file__)))


def read_csv(folder: str, relpath: str, data_home=None, **kw) -> pd.DataFrame:
    path = data_file(folder, relpath, data_home)
    try:
        return pd.read_csv(path, **kw)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise BayescaleError(f"cannot read {path} as CSV ({exc}); re-fetch `{folder}`") from exc


def read_json(folder: str, relpath: str, data_home=None):
    path = data_file(folder, relpath, data_home)
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise BayescaleError(f"cannot read {path} as JSON ({exc}); re-fetch `{folder}`") from exc


def read_jsonl(folder: str, relpath: str, data_home=None) -> pd.DataFrame:
    path = data_file(folder, relpath, data_home)
    try:
        return pd.read_json(path, lines=True)
    except (ValueError, OSError) as exc:
        raise BayescaleError(f"cannot read {path} as JSON lines ({exc}); re-fetch `{folder}`") from exc


def read_parquet(folder: str, relpath: str, data_home=None) -> pd.DataFrame:
    path = data_file(folder, relpath, data_home)
    try:
        return pd.read_parquet(path)
    except ImportError as exc:
        raise BayescaleError(
            f"{path} is a Parquet file and pandas needs pyarrow to read it; install it with "
            "`pip install pyarrow`"
        ) from exc
    except (ValueError, OSError) as exc:
        raise BayescaleError(f"cannot read {path} as Parquet ({exc}); re-fetch `{folder}`") from exc


def check_option(name: str, value, allowed) -> None:
    if value not in allowed:
        raise BayescaleError(f"option {name}={value!r} is not valid; choose one of {list(allowed)}")


def drop_rows(df: pd.DataFrame, mask, notes: Notes, why: str) -> pd.DataFrame:
    """Drop the rows where mask is True, with a counted note (no note when nothing is dropped)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        notes.fix(f"dropped {int(mask.sum())} of {len(df)} row(s): {why}")
    return df.loc[~mask].reset_index(drop=True)


def drop_exact_duplicates(df: pd.DataFrame, notes: Notes) -> pd.DataFrame:
    return drop_rows(df, df.duplicated(keep="first").to_numpy(), notes, "exact duplicates of earlier rows")


def finish(df: pd.DataFrame, notes: Notes, *, response: str, counts: bool = False) -> pd.DataFrame:
    """Put a table into the long schema: params, tokens, compute, response, family, dataset, task, extras.

    compute is derived as 6*N*D where absent; the table is checked with bayescale.data.validate
    (numeric, positive sizes, no NaN in required columns, labels present, no exact duplicates).
    """
    df = df.copy()
    if "compute" not in df.columns:
        df["compute"] = 6.0 * df["params"].astype(float) * df["tokens"].astype(float)
        notes.append(f"{notes.name}: compute derived as 6*params*tokens (the source has no FLOP column)")
    for label in LABELS:
        if label not in df.columns:
            raise BayescaleError(f"internal: loader {notes.name} did not set the '{label}' label")
        df[label] = df[label].astype(str)
    extra = ("correct", "trials") if counts else ()
    data = validate(df, ("params", "tokens", "compute"), response, groups=LABELS,
                    duplicates="error", positive_response=(response == "loss"), extra_numeric=extra)
    frame = data.frame
    first = ["params", "tokens", "compute", response, *extra, *LABELS]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    frame.attrs["name"] = notes.name
    frame.attrs["response"] = response
    frame.attrs["notes"] = list(notes)
    return frame


def counts_from_stderr(df: pd.DataFrame, stderr: pd.Series, notes: Notes) -> pd.DataFrame:
    """Add trials / correct / counts_exact from accuracies and their standard errors.

    lm-evaluation-harness and lighteval report se = sqrt(p (1-p) / (n-1)), so per task
    n = median over rows of p (1-p) / se^2 + 1. Where p*n is not an integer (a task that averages
    sub-tasks, e.g. MMLU), counts_exact is False and correct is only approximate.
    """
    p, se = df["p_correct"].astype(float), stderr.astype(float)
    est = p * (1 - p) / se.where(se > 0) ** 2 + 1
    n = est.groupby(df["task"]).transform("median")
    if n.isna().any():
        bad = sorted(df.loc[n.isna(), "task"].unique())
        raise BayescaleError(f"{notes.name}: cannot derive question counts for tasks {bad} (no usable stderr)")
    df = df.copy()
    df["trials"] = np.round(n)
    df["correct"] = np.round(p * df["trials"])
    off = ((p * df["trials"] - df["correct"]).abs() > 0.02).groupby(df["task"]).transform("any")
    df["counts_exact"] = ~off.to_numpy()
    notes.append(f"{notes.name}: trials derived per task from the reported stderr (n = p(1-p)/se^2 + 1); "
                 f"{int(off.groupby(df['task']).first().sum())} task(s) average sub-tasks, so their counts "
                 "are approximate (counts_exact=False)")
    return df
