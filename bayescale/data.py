"""Tidy long schema: validate and normalise a DataFrame, build group indices, report exclusions."""
from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .errors import BayescaleError, BayescaleWarning

SIZE_COLUMNS = ("params", "tokens", "compute", "multiplier")  # multiplier: tokens per parameter, D/N
GROUP_COLUMNS = ("family", "dataset", "task")
DEFAULT_GROUP = "all"


@dataclass
class Dataset:
    """A validated table plus what a law needs from it."""

    frame: pd.DataFrame                      # normalised table, one row per observation
    inputs: dict[str, np.ndarray]            # raw positive inputs, float64
    response: np.ndarray                     # the observed response (e.g. loss), float64
    group_index: dict[str, np.ndarray]       # grouping column -> int index per row
    coords: dict[str, list[str]]             # grouping column -> labels
    notes: list[str] = field(default_factory=list)
    # names a validated row (a position here) as the user's table has it: file line or index
    name_row: Callable[[int], str] = lambda i: f"row {i}"
    shown: Callable[[str], str] = lambda col: f"'{col}'"   # a column as the user named it
    kept: np.ndarray | None = None   # positions of the given table's rows kept (duplicates='drop' drops some)

    @property
    def n(self) -> int:
        return len(self.response)

    def data_hash(self) -> str:
        return frame_hash(self.frame)


def frame_hash(frame: pd.DataFrame) -> str:
    """A stable sha256 over the values of a normalised table (row order matters)."""
    h = hashlib.sha256()
    for col in sorted(frame.columns):
        h.update(col.encode())
        values = frame[col].to_numpy()
        if values.dtype.kind in "fiu":
            h.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        else:
            h.update("\x1f".join(map(str, values)).encode())
    return h.hexdigest()


def apply_column_map(df: pd.DataFrame, columns: dict[str, str] | None) -> pd.DataFrame:
    """Rename user columns to schema names: columns={"params": "n_params"}."""
    if not isinstance(df, pd.DataFrame):
        raise BayescaleError(
            f"expected a pandas DataFrame, got {type(df).__name__}; "
            "load your table with pandas.read_csv or pandas.read_parquet first"
        )
    if not columns:
        return df.copy()
    if not isinstance(columns, dict):
        raise BayescaleError(
            f"columns must be a dict from schema name to your column name, like "
            f"{{'params': 'n_params'}}, got {columns!r}"
        )
    missing = [src for src in columns.values() if src not in df.columns]
    if missing:
        # pandas' rename maps {old: new}; this map is {schema name: your column}
        flipped = {v: k for k, v in columns.items() if v in missing and k in df.columns}
        hint = (f"; the map reads {{schema name: your column}} (pandas' rename is the other way round): "
                f"did you mean columns={flipped}?" if flipped else "")
        raise BayescaleError(
            f"column mapping refers to {missing}, which the table does not have; "
            f"available columns: {list(map(str, df.columns))}{hint}"
        )
    return df.rename(columns={src: dst for dst, src in columns.items()})


# model and data sizes as people write them (70B parameters, 1.4T tokens): read by the CLI's
# options; in a table only named in the hint of the error
SI_EXPONENTS = {"k": 3, "K": 3, "M": 6, "B": 9, "b": 9, "G": 9, "T": 12, "t": 12, "P": 15}


def _shown(col: str, columns: dict | None) -> str:
    """A column as the user knows it: the schema name, and theirs when they mapped it."""
    yours = (columns or {}).get(col)
    return f"'{col}'" if not yours or yours == col else f"'{col}' (your '{yours}')"


# names other tools and papers give the schema's columns: a guess shown in an error, never applied
COLUMN_LOOKALIKES = {
    "params": (r"n|num_?params|n_?params|params?|parameters|model_?size|non_?embedding_?params", r"param"),
    "tokens": (r"d|num_?tokens|n_?tokens|tokens|train_?tokens|training_?tokens|dataset_?size|data", r"token"),
    "compute": (r"c|flops?|compute|train_?flops", r"flop|compute"),
    "loss": (r"l|loss|val_?loss|eval_?loss|valid(ation)?_?loss|final_?loss|test_?loss", r"loss"),
}


def likely_columns(missing: list[str], available: list) -> dict[str, str]:
    """For each missing schema column, the one table column that looks like it (an exact common
    name first, else the only column containing its stem); none where it is not one clear column."""
    out = {}
    for name in missing:
        if name not in COLUMN_LOOKALIKES:
            continue
        exact, stem = COLUMN_LOOKALIKES[name]
        cols = [str(c) for c in available if str(c) not in out.values()]
        for pattern, match in ((exact, re.fullmatch), (stem, re.search)):
            found = [c for c in cols if match(pattern, c.lower())]
            if len(found) == 1:
                out[name] = found[0]
                break
            if found:   # several: no guess
                break
    return out


def row_name(frame: pd.DataFrame, i: int) -> str:
    """Row ``i`` (a position) as the user can find it: the line of the file it came from
    (``attrs["source_file"]``, set by the CLI's reader), the --at point, else the position and any
    index label."""
    return _rows_named(frame, [i])


def _line_of(position: int, blank_lines) -> int:
    """The file line of the row at ``position``: the header is line 1, and each blank line (which
    the parser skipped) before the row moves it one line down."""
    line = position + 2
    for b in sorted(blank_lines):
        if b <= line:
            line += 1
    return line


def _rows_named(frame: pd.DataFrame, positions: list[int]) -> str:
    """Rows (positions) named as :func:`row_name` names one."""
    one = len(positions) == 1
    shown = positions[0] if one else positions
    word = "row" if one else "rows"
    if frame.attrs.get("source_at"):   # the CLI's --at points, in the order given
        if one and len(frame) == 1:
            return "the --at point"
        return f"--at point{'' if one else 's'} {positions[0] + 1 if one else [i + 1 for i in positions]}"
    source = frame.attrs.get("source_file")
    if source:
        blank = frame.attrs.get("source_blank_lines", ())
        lines = [_line_of(i, blank) for i in positions]
        lines = lines[0] if one else lines
        return f"{word} {shown} ({'line' if one else 'lines'} {lines} of {source}, after its header)"
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return f"{word} {shown} (counting from 0)"
    labels = index[positions[0]] if one else [index[i] for i in positions]
    return f"{word} {shown} (counting from 0; index {labels!r})"


def _numeric_column(df: pd.DataFrame, col: str, columns: dict | None = None) -> np.ndarray:
    raw = df[col]
    name = _shown(col, columns)
    if raw.dtype.kind in "bcmM" or isinstance(raw.dtype, (pd.PeriodDtype, pd.IntervalDtype)):
        raise BayescaleError(
            f"column {name} must hold real numbers, but it has dtype {raw.dtype}; "
            "convert it to plain numbers (e.g. df[col].astype(float)) or map another column"
        )
    try:
        values = pd.to_numeric(raw, errors="coerce")
    except (TypeError, ValueError, OverflowError) as exc:
        raise BayescaleError(
            f"column {name} must hold real numbers that fit in a float64, but pandas cannot read it "
            f"as numbers ({exc}); fix or remove those rows"
        ) from exc
    if values.dtype.kind in "bc":
        raise BayescaleError(
            f"column {name} must hold real numbers, but it holds {values.dtype} values; "
            "convert them to plain numbers or remove those rows"
        )
    bad = values.isna() & raw.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        text = str(raw.iloc[i]).strip()
        # 70M / 1.4B as sizes are written in papers: the CLI's --at takes them, a table does not
        sized = re.fullmatch(r"([+-]?(?:\d+\.?\d*|\.\d+))\s*([kKMBbGTtP])", text)
        hint = (f"; write numbers in full or as exponents ({text!r} as {float(sized[1]) * 10.0 ** SI_EXPONENTS[sized[2]]:g}), "
                "not with size suffixes" if sized else "")
        raise BayescaleError(
            f"column {name} must be numeric, but {row_name(df, i)} holds {raw.iloc[i]!r} "
            f"({int(bad.sum())} non-numeric value(s) in all){hint}; fix or remove those rows"
        )
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    nonfinite = ~np.isfinite(arr)
    if nonfinite.any():
        i = int(np.flatnonzero(nonfinite)[0])
        raise BayescaleError(
            f"column {name} has {int(nonfinite.sum())} NaN or infinite value(s), first at {row_name(df, i)} "
            f"({arr[i]}); drop or fill those rows"
        )
    return arr


def _positive(frame: pd.DataFrame, col: str, columns: dict | None = None) -> None:
    arr = frame[col].to_numpy()
    bad = arr <= 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BayescaleError(
            f"column {_shown(col, columns)} must be > 0 (sizes, losses and log-scale inputs are positive), but "
            f"{row_name(frame, i)} is {arr[i]:g} "
            f"({int(bad.sum())} such row(s)); check units or remove those rows"
        )


def label_text(labels: pd.Series, column: str) -> pd.Series:
    """Group labels as text, exactly as given: whole numbers stored as floats (a column that held a
    gap once) read as 1, not 1.0; two different values that would read the same (the number 1 and
    the text "1") are an error, not one merged group."""
    def text(v):
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v)

    out = labels.map(text)
    clashes = {}
    for value, t in zip(labels.tolist(), out.tolist()):
        kind = "text" if isinstance(value, str) else "number" if isinstance(value, (int, float, np.number)) else type(value).__name__
        clashes.setdefault(t, set()).add((kind, repr(value)))
    ambiguous = {t: sorted(r for _, r in kinds) for t, kinds in clashes.items() if len({k for k, _ in kinds}) > 1}
    if ambiguous:
        t, values = next(iter(sorted(ambiguous.items())))
        raise BayescaleError(f"group column '{column}' mixes values that read alike as labels ({' and '.join(values)} "
                             f"both read {t!r}); make the labels all text, e.g. df['{column}'] = df['{column}'].astype(str)")
    return out


def validate(
    df: pd.DataFrame,
    inputs: tuple[str, ...],
    response: str | None = "loss",
    *,
    columns: dict[str, str] | None = None,
    groups: tuple[str, ...] = GROUP_COLUMNS,
    duplicates: str = "error",
    positive_response: bool = True,
    min_points: int = 1,
    extra_numeric: tuple[str, ...] = (),
    linear_inputs: tuple[str, ...] = (),
) -> Dataset:
    """Check a table against the long schema and return a :class:`Dataset`.

    ``duplicates`` is "error" (default), "drop" (drop exact duplicate rows, with a warning) or
    "keep". Missing group columns are filled with the single label ``"all"``.
    """
    if duplicates not in ("error", "drop", "keep"):
        raise BayescaleError(f"duplicates must be 'error', 'drop' or 'keep', got {duplicates!r}")
    frame = apply_column_map(df, columns)
    frame.columns = [str(c) for c in frame.columns]
    if frame.columns.duplicated().any():
        dup = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise BayescaleError(f"column name(s) {dup} appear more than once; rename them")
    notes: list[str] = []

    if "compute" in inputs and "compute" not in frame.columns:
        if "params" in frame.columns and "tokens" in frame.columns:
            frame["compute"] = 6.0 * _numeric_column(frame, "params") * _numeric_column(frame, "tokens")
            notes.append("compute derived as 6*params*tokens")
    # over-training laws take the token multiplier M = D/N (Gadre et al. 2024); derive it likewise
    if "multiplier" in inputs and "multiplier" not in frame.columns:
        if "params" in frame.columns and "tokens" in frame.columns:
            frame["multiplier"] = _numeric_column(frame, "tokens") / _numeric_column(frame, "params")
            notes.append("multiplier derived as tokens/params (M = D/N)")
    needed = list(dict.fromkeys([*inputs, *([response] if response else []), *extra_numeric]))
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        hint = ""
        if "compute" in missing or "multiplier" in missing:
            hint = " (compute and multiplier can also be derived from params and tokens)"
        elif "tokens" in missing and {"params", "compute"} <= set(frame.columns):
            # not derived: a table's compute may count more than 6ND (attention, embeddings)
            hint = (" (with params and compute, tokens = compute / (6 * params) if your compute is 6ND: add it as "
                    "df['tokens'] = df['compute'] / (6 * df['params']))")
        if frame.attrs.get("source_at"):
            raise BayescaleError(f"--at lacks {missing}: this law needs {needed}{hint}; give them in --at, e.g. "
                                 f"--at {','.join(f'{c}=...' for c in needed if c != response)}")
        guess = likely_columns(missing, [c for c in frame.columns if c not in needed])
        rest = [c for c in missing if c not in guess]
        how = (f"If {', '.join(f'{v!r}' for v in guess.values())} {'is' if len(guess) == 1 else 'are'} "
               f"{', '.join(guess)}, map {'it' if len(guess) == 1 else 'them'}: columns={guess} (CLI: --col "
               + ",".join(f"{k}={v}" for k, v in guess.items()) + ")" + (". " if rest else "")) if guess else ""
        if rest:
            how += f"Map your names with columns={{'{rest[0]}': 'your_name'}} (CLI: --col {rest[0]}=your_name)"
        raise BayescaleError(
            f"missing column(s) {missing}: this law needs {needed}{hint}; the table has "
            f"{list(frame.columns)}. {how}"
        )
    if len(frame) == 0:
        raise BayescaleError("the table has no rows; give at least one row")

    for col in needed:
        frame[col] = _numeric_column(frame, col, columns)
        log_input = col in inputs and col not in linear_inputs
        if col in SIZE_COLUMNS or log_input or (col == response and positive_response):
            _positive(frame, col, columns)

    for g in groups:
        if g not in frame.columns:
            frame[g] = DEFAULT_GROUP
        else:
            labels = frame[g]
            if labels.isna().any():
                i = int(np.flatnonzero(labels.isna().to_numpy())[0])
                raise BayescaleError(
                    f"group column {_shown(g, columns)} has {int(labels.isna().sum())} empty label(s), first at "
                    f"{row_name(frame, i)}; "
                    "fill them (e.g. with 'unknown') or drop those rows"
                )
            frame[g] = label_text(labels, g)

    keep = [*needed, *[g for g in groups]]
    keep += [c for c in frame.columns if c not in keep]
    frame = frame[keep]
    # every column counts: two runs may share inputs and a rounded score and differ only in a
    # name (real leaderboards do), so rows that differ anywhere are two runs
    frame_before_drop = frame
    try:
        dup_mask = frame.duplicated(keep="first").to_numpy()
    except TypeError:  # unhashable cells (lists, dicts) in extra columns: compare their text
        dup_mask = frame.astype(str).duplicated(keep="first").to_numpy()
    if dup_mask.any():
        rows = _rows_named(frame, np.flatnonzero(dup_mask)[:5].tolist())
        if duplicates == "error":
            raise BayescaleError(
                f"{int(dup_mask.sum())} exact duplicate row(s) (e.g. {rows}); duplicates would count one run "
                "twice. Remove them (df.drop_duplicates()) or pass duplicates='drop' (CLI: --duplicates drop)"
            )
        if duplicates == "drop":
            msg = f"dropped {int(dup_mask.sum())} exact duplicate row(s): {_rows_named(frame, np.flatnonzero(dup_mask).tolist())}"
            notes.append(msg)
            warnings.warn(msg, BayescaleWarning, stacklevel=2)
            frame = frame.loc[~dup_mask]
    original = frame_before_drop
    kept = np.flatnonzero(~dup_mask) if duplicates == "drop" else np.arange(len(frame))
    frame = frame.reset_index(drop=True)

    if len(frame) < min_points:
        raise BayescaleError(
            f"{len(frame)} row(s) but the law has {min_points} free parameters; "
            f"give at least {min_points} observations or use a law with fewer parameters"
        )

    group_index, coords = {}, {}
    for g in groups:
        codes, uniques = pd.factorize(frame[g], sort=True)
        group_index[g] = codes.astype(np.int32)
        coords[g] = [str(u) for u in uniques]

    return Dataset(
        frame=frame,
        inputs={k: frame[k].to_numpy(dtype=np.float64) for k in inputs},
        response=(frame[response].to_numpy(dtype=np.float64) if response
                  else np.full(len(frame), np.nan)),
        group_index=group_index,
        coords=coords,
        notes=notes,
        name_row=lambda i: row_name(original, int(kept[i])),
        shown=lambda col: _shown(col, columns),
        kept=kept,
    )


def check_group_sizes(data: Dataset, pooled: dict[str, list[str]]) -> None:
    """Each level of a pooling column needs at least as many points as parameters pooled over it."""
    for g, names in pooled.items():
        counts = np.bincount(data.group_index[g], minlength=len(data.coords[g]))
        small = [(data.coords[g][i], int(c)) for i, c in enumerate(counts) if c < len(names)]
        if small:
            raise BayescaleError(
                f"group(s) {small} of '{g}' have fewer points than the {len(names)} parameter(s) "
                f"pooled over '{g}' ({names}); pool fewer parameters over '{g}', merge small groups, "
                "or add runs"
            )
