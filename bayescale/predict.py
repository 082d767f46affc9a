"""The one predictive path: parameter draws -> centred inputs -> the law's curve -> the response
(expected value or a new measurement) -> intervals.

Everything that predicts goes through here: ``Fit.predict``, chaining a loss fit into a
downstream law, choice accuracies, the bootstrap baseline, compute-optimal allocation, tokens for a
target loss and optimal hyperparameters. A *source* of draws is anything with ``law``, ``logref``, ``pooled``,
``ranges`` (fitted range of each centred input, or None), ``has_discrepancy``, ``n_draws``,
``param_draws(frame, rng, notes, typical=False)`` (per-row parameter draws, samples x rows),
``discrepancy_draws(x, n, rng, frame, notes)``, ``offset_draws(frame, n, rng, notes)`` (group
offsets or None) and ``new_observations(rng, mu, values, aux)``: a :class:`bayescale.Fit`, or a
:class:`bayescale.baselines.BootstrapFit`. All arithmetic after sampling is float64.

``kind``:
* ``"observation"`` (a new run's measured value: the curve plus the observation model's scatter;
  where that scatter has no finite mean, Student-t on the log scale, the ``mean`` column is the
  mean of the run's expected value, see :data:`NO_MEAN_NOTE`),
* ``"mean"`` (the expected response: the curve, or for laws with a chance floor the accuracy),
* ``"curve"`` (the law's curve itself).
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import xarray as xr
from numpyro.distributions.transforms import biject_to

from .checks import check_seed
from .data import DEFAULT_GROUP, GROUP_COLUMNS, Dataset, apply_column_map, label_text, validate
from .design import centre, centre_log, extra_columns, size_inputs
from .discrepancy import coordinates
from .errors import BayescaleError, BayescaleWarning, caller_stacklevel
from .models.choice_mass import accuracy_from_mass

KINDS = ("observation", "mean", "curve")
NO_MEAN_NOTE = ("'mean' of a new run's value: the mean of its expected value (the curve with the model "
                "discrepancy); under Student-t scatter on the log scale a single run's value has no finite mean, "
                "so its median and intervals come from the new-run draws and its mean from the curve")


# ---- levels and intervals ---------------------------------------------------------------------

def level_name(level: float) -> str:
    return f"{level * 100:g}"


def check_levels(levels) -> tuple[float, ...]:
    try:
        levels = tuple(float(v) for v in np.atleast_1d(levels))
    except (TypeError, ValueError):
        raise BayescaleError(f"interval levels must be numbers between 0 and 1, got {levels!r}; "
                             "e.g. levels=(0.5, 0.9) (CLI: --level 0.5,0.9)") from None
    bad = [v for v in levels if not 0 < v < 1]
    if bad:
        raise BayescaleError(f"interval levels must lie strictly between 0 and 1, got {bad}; e.g. levels=(0.5, 0.9) (CLI: --level 0.5,0.9)")
    return levels


def check_quantiles(quantiles) -> tuple[float, ...]:
    """Summary quantiles: numbers in [0, 1] (one, or several)."""
    try:
        qs = tuple(float(v) for v in np.atleast_1d(quantiles))
    except (TypeError, ValueError):
        raise BayescaleError(f"quantiles must be numbers in [0, 1], got {quantiles!r}; e.g. "
                             "quantiles=(0.05, 0.5, 0.95)") from None
    bad = [v for v in qs if not 0 <= v <= 1]
    if bad or not qs:
        raise BayescaleError(f"quantiles must lie in [0, 1], got {bad or list(qs)}; e.g. quantiles=(0.05, 0.5, 0.95) "
                             "(percentiles such as 95 are 0.95)")
    return qs


TAIL_DRAWS = 5   # draws beyond each end of an interval, below which its ends are mostly Monte-Carlo noise


def thin_tail_notes(n_draws: int, levels, more: str = "fit with more draws (draws=..., CLI --draws)") -> list[str]:
    """A note for each interval whose ends rest on few draws (a 99.9 % interval from 600 draws);
    ``more`` says how to get more of them from the source."""
    out = []
    for level in levels:
        tail = n_draws * (1.0 - level) / 2.0
        if tail < TAIL_DRAWS:
            out.append(f"the {100 * level:g}% interval's ends rest on about {tail:.1f} draw(s) each (of {n_draws}): "
                       f"they move from seed to seed; {more} for them")
    return out


def quantiles(draws: np.ndarray, qs) -> np.ndarray:
    """np.quantile over axis 0, where infinite draws (tokens a draw never reaches a loss with)
    give an infinite quantile wherever the interpolation reaches one, not NaN (inf - inf)."""
    draws = np.asarray(draws, dtype=np.float64)
    qs = np.asarray(qs, dtype=np.float64)
    if np.all(np.isfinite(draws)):
        return np.quantile(draws, qs, axis=0)
    finite = np.where(np.isfinite(draws), draws, np.nan)
    with warnings.catch_warnings():   # a column of only infinite draws has no finite value
        warnings.simplefilter("ignore", RuntimeWarning)
        top, bottom = np.nanmax(finite, axis=0), np.nanmin(finite, axis=0)
    top, bottom = np.nan_to_num(top, nan=0.0), np.nan_to_num(bottom, nan=0.0)
    out = np.quantile(np.where(np.isposinf(draws), top, np.where(np.isneginf(draws), bottom, draws)), qs, axis=0)
    # an indicator sorts as the draws do: a quantile above 0 of "is +inf" (below 1 of "is not -inf")
    # means the interpolation takes weight from an infinite draw
    out = np.where(np.quantile(np.isposinf(draws).astype(float), qs, axis=0) > 0, np.inf, out)
    return np.where(np.quantile((~np.isneginf(draws)).astype(float), qs, axis=0) < 1, -np.inf, out)


def interval_columns(draws: np.ndarray, levels, prefix: str = "") -> dict[str, np.ndarray]:
    """mean, median and central intervals over axis 0 of ``draws``."""
    draws = np.asarray(draws, dtype=np.float64)
    out = {f"{prefix}mean": draws.mean(axis=0), f"{prefix}median": quantiles(draws, 0.5)}
    for level in levels:
        lo, hi = quantiles(draws, [(1 - level) / 2, (1 + level) / 2])
        out[f"{prefix}lower_{level_name(level)}"] = lo
        out[f"{prefix}upper_{level_name(level)}"] = hi
    return out


def summary_frame(arrays: dict[str, np.ndarray], levels) -> dict:
    """One row of interval columns per named draw vector: {name_mean, name_median, ...}."""
    row = {}
    for name, arr in arrays.items():
        for col, v in interval_columns(np.asarray(arr)[:, None], levels, prefix=f"{name}_").items():
            row[col] = float(v[0])
    return row


# ---- parameter draws --------------------------------------------------------------------------

def stacked(posterior, name: str) -> np.ndarray:
    """Draws of one posterior variable, (chain, draw) stacked into one leading axis, float64."""
    da = posterior[name]
    extra = [d for d in da.dims if d not in ("chain", "draw")]
    values = da.transpose("chain", "draw", *extra).values   # chain outer, draw inner: xarray's stack order
    return np.asarray(values, dtype=np.float64).reshape((-1,) + values.shape[2:])


def unseen_labels_note(group: str, unseen: list[str], what: str) -> str:
    """The note for group labels the fit has not seen, and what was drawn for them: one wording for
    every part (parameters, offset, walk), so :func:`unnamed_group_notes` can find them."""
    return f"{group} label(s) {[str(u) for u in unseen]} not in the fit: {what}"


def label_indices(known: list[str], labels) -> tuple[np.ndarray, list[str]]:
    """Each label's column in a table of the ``known`` groups extended by the unseen ones (sorted,
    after the known): the indices, and the unseen labels whose columns the caller must draw."""
    index = {lab: i for i, lab in enumerate(known)}
    unseen = sorted({lab for lab in labels if lab not in index})
    index.update({lab: len(known) + i for i, lab in enumerate(unseen)})
    return np.array([index[lab] for lab in labels], dtype=np.int64), unseen


def group_parameter_draws(fit, frame: pd.DataFrame, rng: np.random.Generator, notes: list[str],
                          typical: bool = False) -> dict[str, np.ndarray]:
    """Per-row parameter draws (samples x rows) of a hierarchical fit. Rows of a group the fit has
    not seen get a new group drawn from the population; ``typical`` uses the population value for
    every row instead."""
    spec, post = fit.spec, fit.posterior
    values = {}
    for name in fit.law.all_params():
        pop = stacked(post, name)
        g = spec.pooled.get(name)
        if g is None or typical:
            values[name] = pop[:, None]
            continue
        table = stacked(post, f"{name}_by_{g}")
        labels = frame[g].astype(str).to_numpy() if g in frame else np.full(len(frame), "")
        columns, unseen = label_indices(spec.coords[g], labels)
        if unseen:
            t = biject_to(spec.priors[name].support)
            tau = stacked(post, f"{name}_tau")
            z = rng.standard_normal((len(pop), len(unseen)))
            new = np.asarray(t(np.asarray(t.inv(pop))[:, None] + tau[:, None] * z), dtype=np.float64)
            table = np.concatenate([table, new], axis=1)
            notes.append(unseen_labels_note(g, unseen, f"'{name}' drawn from the population distribution over {g} labels"))
        values[name] = table[:, columns]
    return values


def unused_group_notes(source, rows: pd.DataFrame) -> list[str]:
    """A note for each group column whose labels in ``rows`` the fit never saw and does not use
    (no parameter, offset or walk varies by it): those labels change nothing, which a user who
    meant them to would otherwise not learn. Labels the fitted runs carried too say nothing new."""
    spec = getattr(source, "spec", None)
    if spec is None or not hasattr(source, "fitted_rows"):
        return []
    unused = [g for g in GROUP_COLUMNS if g in rows and g not in spec.coords]
    if not unused:   # the fitted rows are rebuilt only when there is something to compare
        return []
    try:
        fitted = source.fitted_rows()
    except BayescaleError:
        return []
    notes = []
    for g in unused:
        new = sorted(set(map(str, rows[g].dropna())) - set(map(str, fitted[g])))
        if new:
            notes.append(f"column '{g}' plays no part in this fit (no parameter, offset or walk of it varies by "
                         f"{g}), so its label(s) {new[:5]} were not used; to predict by {g}, fit with a parameter "
                         f"pooled over it (pool={{NAME: '{g}'}}; CLI: --pool NAME={g})")
    return notes


def unnamed_group_notes(source, given_columns, notes: list[str]) -> list[str]:
    """Rows that name no label of a grouping the fit is pooled by are predicted for a new group (the
    table's missing column reads as the one label ``"all"``): the notes each part drew for the
    unseen label "all" become one note that says which parts were drawn (from the fit's spec) and
    how to name a fitted group instead."""
    spec = getattr(source, "spec", None)
    if spec is None:
        return notes
    out = list(notes)
    for g in spec.coords:
        prefix = unseen_labels_note(g, [DEFAULT_GROUP], "")
        mine = [n for n in out if n.startswith(prefix)]
        if g in given_columns or not mine:
            continue
        names = [n for n in source.law.all_params() if spec.pooled.get(n) == g]
        parts = [f"its {', '.join(names)} drawn from the population over the fitted {g} labels"] if names else []
        if any(t.group == g for t in spec.offsets):
            parts.append("its offset drawn from the fitted spread")
        if spec.discrepancy is not None and spec.discrepancy.group == g:
            parts.append("its discrepancy walk drawn from its prior, with the fitted scale")
        known = list(spec.coords[g])
        shown = ", ".join(repr(k) for k in known[:5]) + (", ..." if len(known) > 5 else "")
        merged = (f"the rows name no {g}, so they are predicted for a new {g} ({'; '.join(parts)}); to predict for "
                  f"a fitted {g}, add a '{g}' column (CLI: --at ...,{g}=LABEL) with one of {shown}")
        at = out.index(mine[0])
        out = [n for n in out if n not in mine]
        out.insert(at, merged)
    return out


def source_groupings(source) -> set[str]:
    """The groupings a fit's parameters, offsets or walks vary by."""
    spec = getattr(source, "spec", None)
    return set(spec.coords) if spec is not None else set(getattr(source, "pooled", {}).values())


def label_draws(source, labels: dict, seed: int = 0) -> tuple[dict, list[str]]:
    """Parameter draws (samples x 1) for group labels such as ``family="dense"``, or the
    population's typical values when no label is given (``seed``: a new group's draw)."""
    bad = [k for k in labels if k not in GROUP_COLUMNS]
    if bad:
        raise BayescaleError(f"unknown label(s) {bad}; use {list(GROUP_COLUMNS)}")
    varies = sorted(source_groupings(source))
    unused = [k for k in labels if k not in varies]
    if unused:   # a label nothing varies by would silently turn the others into a new group's draw
        raise BayescaleError(
            f"this fit does not vary by {unused} (" + (f"it varies by {varies}" if varies else "it has no groups")
            + f"), so a label for {unused[0]} selects nothing; "
            + (f"give one of {varies} (e.g. {varies[0]}=NAME) or no label" if varies else "give no label"))
    notes: list[str] = []
    frame = label_frame(labels)
    values = source.param_draws(frame, np.random.default_rng(check_seed(seed)), notes, typical=not labels)
    warn_unseen(notes, labels)
    if not labels and (source.pooled or getattr(getattr(source, "spec", None), "offsets", None)):
        groupings = [g for g in sorted(source_groupings(source)) if g in GROUP_COLUMNS]   # not family_x_task
        notes.append("no group labels given: the population's typical parameter values were used"
                     + (" (no group offset)" if getattr(source, "spec", None) is not None and source.spec.offsets else "")
                     + f"; predict without a label draws a new group from the population instead (wider); give "
                       f"{groupings[0] if groupings else 'a group'}=LABEL to both for a fitted group")
    return values, notes


def label_offset(source, labels: dict, notes: list[str], seed: int = 0) -> np.ndarray | None:
    """The labelled group's offset draws (samples x 1, on the link scale; a new group's drawn from
    the spread between groups), or None: no offsets, or no labels (the typical group, offset 0)."""
    if not labels:
        return None
    before = len(notes)
    offset = source.offset_draws(label_frame(labels), source.n_draws, np.random.default_rng([check_seed(seed), 1]), notes)
    mine = notes[before:]
    warn_unseen(mine, labels)
    notes[before:] = mine
    return offset


def label_frame(labels: dict) -> pd.DataFrame:
    """Keyword labels (family="dense", task=3) as one row of text, by the fit's rule for labels."""
    return pd.DataFrame({g: label_text(pd.Series([labels[g]], dtype=object), g).tolist() for g in labels})


def warn_unseen(notes: list[str], labels: dict) -> None:
    """Warn the notes of labels given that the fit has not seen (a typo reads as a new group), as
    predict does, and reword in place those of a grouping no label was given for (a new group is
    drawn for it, which is no one's typo)."""
    for k, note in enumerate(notes):
        group = note.split(" label(s) ", 1)[0]
        if " not in the fit: " not in note:
            continue
        if group in labels:
            warnings.warn(note, BayescaleWarning, stacklevel=caller_stacklevel(os.path.dirname(__file__)))
        else:
            notes[k] = (f"no {group} label given: a new {group} is drawn ({note.split(' not in the fit: ', 1)[1]}); "
                        f"give {group}=LABEL for a fitted one")


def shifted(source, mu: np.ndarray, offset: np.ndarray | None) -> np.ndarray:
    """The curve ``mu`` (samples x ...) with a group's offset added on the link scale, as predict
    adds it; ``mu`` itself without one."""
    if offset is None:
        return mu
    obs = source.law.observation
    return np.asarray(obs.inverse_link(obs.link(mu, np) + offset.reshape(-1, *([1] * (mu.ndim - 1))), np),
                      dtype=np.float64)


# ---- the curve and the response ---------------------------------------------------------------

def curve(law, x: dict, values: dict, n_draws: int, n_rows: int) -> np.ndarray:
    """The law's curve (draws x rows, float64) at centred inputs ``x``."""
    mu = np.asarray(law.mean(x, values, xp=np), dtype=np.float64)
    return np.broadcast_to(mu, (n_draws, n_rows))


def curve_at_sizes(source, log_params, log_tokens, values: dict) -> np.ndarray:
    """The curve at log N, log D (broadcast against the draws), for laws in any of params, tokens,
    compute = 6ND and multiplier = D/N."""
    x = centre_log(source.law, size_inputs(np.asarray(log_params, np.float64),
                                           np.asarray(log_tokens, np.float64)), source.logref)
    return np.asarray(source.law.mean(x, values, xp=np), dtype=np.float64)


def columns_for(source, df: pd.DataFrame, columns):
    """The column map for rows to predict at: the one given, else the fit's own (``fit(...,
    columns={"params": "n_params"})``) for the names the rows hold under the user's name only."""
    if columns is not None or not isinstance(df, pd.DataFrame):
        return columns
    recorded = (getattr(source, "config", None) or {}).get("columns") or {}
    mine = {k: v for k, v in recorded.items() if v in df.columns and k not in df.columns}
    return mine or None


def prepare(source, df: pd.DataFrame, kind: str, *, columns=None, given=()) -> Dataset:
    """Validate the rows to predict at: the law's inputs (except those ``given`` as draws) and the
    per-row columns the ``kind`` needs; the fit's own column map when none is given."""
    law = source.law
    columns = columns_for(source, df, columns)
    if kind not in KINDS:
        raise BayescaleError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    extras = {"observation": law.extras, "mean": law.mean_extras}.get(kind, ())
    missing = [c for c in extras if c not in apply_column_map(df, columns).columns]
    if missing:
        hint = " ('chance' = 1 / number of choices, 0 for free-form answers)" if "chance" in missing else ""
        other = "kind='curve' for the law's curve without them" if kind == "mean" else \
            "kind='mean' for the expected value"
        raise BayescaleError(
            f"missing column(s) {missing}: law {law.spec!r} ({law.formula}) needs them per row for "
            f"kind={kind!r}, and the prediction table has {list(df.columns)}; add them{hint}, or use {other}")
    return validate(df, tuple(k for k in law.inputs if k not in given), response=None, columns=columns,
                    duplicates="keep", groups=GROUP_COLUMNS, extra_numeric=extras,
                    linear_inputs=law.linear_inputs)


def response_draws(source, frame: pd.DataFrame, kind: str, rng: np.random.Generator, notes: list[str],
                   given: dict | None = None, stages: dict | None = None) -> np.ndarray:
    """Draws (samples x rows) of ``kind`` at the validated rows ``frame``. ``given`` replaces input
    columns by draws (samples x rows), e.g. the loss drawn from a loss fit. ``stages``, when a dict,
    receives the expected response from the parameters alone ("parameters"), with the model
    discrepancy ("discrepancy"), and from the discrepancy alone on the median curve
    ("discrepancy_alone"), for the width decomposition."""
    law = source.law
    obs = law.observation
    given = dict(given or {})
    values = source.param_draws(frame, rng, notes)
    n = min([source.n_draws] + [len(v) for v in given.values()])
    values = {k: v[:n] for k, v in values.items()}
    raw = {k: given[k][:n] if k in given else frame[k].to_numpy(np.float64)[None, :] for k in law.inputs}
    x = centre(law, raw, source.logref)
    mu = curve(law, x, values, n, len(frame))
    if kind == "curve":
        return mu
    offset = source.offset_draws(frame, n, rng, notes)
    if offset is not None:   # the group's shift is part of its parameters (known or drawn)
        mu = obs.inverse_link(obs.link(mu, np) + offset, np)
    aux_mean = extra_columns(frame, law.mean_extras)
    if stages is not None:
        stages["parameters"] = np.asarray(obs.expected(mu, aux_mean, np), dtype=np.float64)
    delta = source.discrepancy_draws(x, n, rng, frame, notes)
    if delta is not None:   # what the law misses, growing beyond the fitted runs
        linked = obs.link(mu, np)
        if stages is not None:   # the walk on the median curve (the link is monotone)
            median_curve = np.median(linked, axis=0, keepdims=True)
            stages["discrepancy_alone"] = np.asarray(
                obs.expected(obs.inverse_link(median_curve + delta, np), aux_mean, np), dtype=np.float64)
        mu = obs.inverse_link(linked + delta, np)
    expected = np.asarray(obs.expected(mu, aux_mean, np), dtype=np.float64)
    if stages is not None:
        stages["discrepancy"] = expected
    if kind == "observation":
        return np.asarray(source.new_observations(rng, mu, values, extra_columns(frame, law.extras)),
                          dtype=np.float64)
    return expected


SHARE_LEVEL = 0.9   # the interval whose width the shares decompose


def central_width(draws: np.ndarray, level: float = SHARE_LEVEL) -> np.ndarray:
    """Width of the central ``level`` interval of each column of ``draws`` (samples x rows)."""
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return hi - lo


def width_shares(stages: dict, draws: np.ndarray) -> dict[str, np.ndarray]:
    """Shares of a new run's squared 90 % interval width from the parameters, the model
    discrepancy and the observation noise; they add up to 1 per row. Widths, not variances: they
    exist for the heavy tails of Student-t scatter on the log scale (a single draw far in the
    tail cannot take the whole share); for Gaussian parts they are the shares of the variance.

    The noise's share is what it adds to the expected value's squared width (it is independent
    of the rest). The parameters and the discrepancy are not: over and near the fitted runs the
    walk and the curve trade off (posterior correlations of -0.6 to -0.95), so each alone is far
    wider than their sum, and adding them in a fixed order gives the first all of it. Their
    split is averaged over both orders (Shapley): parameters ½(P + M - D), discrepancy
    ½(D + M - P), with P, D and M the squared widths of the curve alone, of the walk alone on
    the median curve and of both; a split outside [0, M] is clipped."""
    p = central_width(stages["parameters"]) ** 2
    m = central_width(stages["discrepancy"]) ** 2
    alone = stages.get("discrepancy_alone")
    d = central_width(alone) ** 2 if alone is not None else np.zeros_like(m)
    disc = np.where(d > 0, np.clip(0.5 * (d + m - p), 0.0, m), 0.0)
    parts = {"parameters": m - disc, "discrepancy": disc,
             "noise": np.maximum(central_width(draws) ** 2 - m, 0.0)}
    scale = sum(parts.values())
    return {k: np.where(scale > 0, v / np.where(scale > 0, scale, 1.0), np.nan) for k, v in parts.items()}


def decades_by_axis(source, frame: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """How far each row lies outside the fitted runs' range along each log axis the fit records
    (for laws in N and D: N, D, compute and tokens per parameter), in decades (0 inside); None when
    the source does not record its ranges."""
    ranges = source.ranges
    if not ranges:
        return None
    return _decades_outside(_axes(source, frame), ranges, source.law)


def _axes(source, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The rows' centred log axes (:func:`bayescale.discrepancy.coordinates`), as the ranges are recorded."""
    law = source.law
    return coordinates(law.inputs, centre(law, {k: frame[k].to_numpy(np.float64) for k in law.inputs}, source.logref))


def _decades_outside(x: dict[str, np.ndarray], ranges: dict, law) -> dict[str, np.ndarray]:
    """Per log axis, how far each value of ``x`` lies outside [lo, hi], in decades (0 inside)."""
    return {k: np.maximum(np.maximum(x[k] - hi, lo - x[k]) / np.log(10.0), 0.0)
            for k, (lo, hi) in ranges.items() if k not in law.linear_inputs}


def linear_beyond(source, frame: pd.DataFrame) -> dict[str, tuple[np.ndarray, float, float]]:
    """Along each linear input the fit records a range of (a loss, for a law of the loss): how
    far each row lies outside the fitted runs, in that input's own units, with the range."""
    law, ranges = source.law, source.ranges or {}
    out = {}
    for k in law.linear_inputs:
        if k in ranges and k in frame:
            v = frame[k].to_numpy(np.float64) - source.logref[k]   # centred as the ranges are
            lo, hi = ranges[k]
            out[k] = (np.maximum(np.maximum(v - hi, lo - v), 0.0), lo + source.logref[k], hi + source.logref[k])
    return out


def decades_beyond(source, frame: pd.DataFrame) -> np.ndarray | None:
    """How far each row lies outside the fitted runs' range, in decades along the farthest axis
    (:func:`decades_by_axis`; 0 inside); None when the source does not record its range."""
    axes = decades_by_axis(source, frame)
    return None if axes is None else farthest(axes, len(frame))


def decades_beyond_group(source, frame: pd.DataFrame) -> tuple[np.ndarray, str | None] | None:
    """How far each row lies beyond its own group's fitted runs (the family, task or corpus it
    names), in decades along the farthest log axis; the largest over the groupings the fit varies
    by, with the grouping that sets it. NaN for a row of a group the fit has not seen (it has no
    runs of its own). None when the fit has no groupings or did not record their ranges."""
    per_group = getattr(source, "group_ranges", None)
    law = source.law
    if not per_group or not any(k not in law.linear_inputs for k in (source.ranges or {})):
        return None
    x = _axes(source, frame)
    out, which = np.zeros(len(frame)), np.full(len(frame), None, dtype=object)
    for g, labels in per_group.items():
        names = frame[g].astype(str).to_numpy() if g in frame else np.full(len(frame), None)
        out[~np.isin(names, list(labels))] = np.nan   # an unseen group has no runs of its own
        for label, ranges in labels.items():
            rows = np.flatnonzero(names == label)
            if not rows.size:
                continue
            d = farthest(_decades_outside({k: v[rows] for k, v in x.items()}, ranges, law), rows.size)
            further = d > out[rows]   # False where out is NaN: NaN stays NaN
            out[rows[further]], which[rows[further]] = d[further], g
    return out, which


def farthest(axes: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Each row's largest distance over the axes of :func:`decades_by_axis` (0 without axes)."""
    return np.max(np.stack(list(axes.values())), axis=0) if axes else np.zeros(n)


def predict(source, df: pd.DataFrame, levels=(0.5, 0.9), kind: str = "observation", *, seed: int = 0,
            columns: dict | None = None, return_draws: bool = False, given: dict | None = None):
    """``df``'s columns plus mean, median and central intervals of ``kind`` at each row (and the
    draws as an xarray DataArray (sample, row) when ``return_draws``). A new run's value
    (``kind="observation"``) also gets the shares of its squared 90 % width from the parameters, the model
    discrepancy and the noise; every kind gets ``decades_beyond_data``."""
    levels, seed = check_levels(levels), check_seed(seed)
    columns = columns_for(source, df, columns)
    data = prepare(source, df, kind, columns=columns, given=tuple(given or ()))
    notes = list(data.notes)
    stages: dict = {}
    draws = response_draws(source, data.frame, kind, np.random.default_rng(seed), notes, given, stages)
    law = source.law
    out = df.copy()   # the caller's index kept, so that the result aligns with their table
    if "compute" in law.inputs and "compute" not in out:
        out["compute"] = data.frame["compute"].to_numpy()
    for col, v in interval_columns(draws, levels).items():
        out[col] = v
    notes += thin_tail_notes(len(draws), levels, *([source.more_draws] if hasattr(source, "more_draws") else []))
    no_mean = kind == "observation" and not law.observation.new_value_has_mean
    if no_mean:
        # a sample mean of draws with no population mean is ruled by the largest draw (one new
        # run's loss drawn at 1e15 in 400,000): the mean is that of the run's expected curve
        out["mean"] = stages["discrepancy"].mean(axis=0)
    if kind == "observation":
        for name, v in width_shares(stages, draws).items():
            out[f"share_{name}"] = v
    rows = apply_column_map(df, columns)
    notes = unnamed_group_notes(source, rows.columns, notes) + unused_group_notes(source, rows)
    for note in notes:
        if note not in data.notes:
            warnings.warn(note, BayescaleWarning, stacklevel=3)
    if no_mean:
        notes.append(NO_MEAN_NOTE)   # said in the notes (and reports), not warned: it is how the column is defined
    axes = None if given else decades_by_axis(source, data.frame)
    why = ("the model-discrepancy term widens their intervals" if source.has_discrepancy else
           "this fit has no model-discrepancy term, so its intervals know only the law's own parameter uncertainty")
    if axes is not None:
        # decades are a distance along log axes: a law of the loss alone has none (NaN, not 0)
        beyond = farthest(axes, len(data.frame)) if axes else np.full(len(data.frame), np.nan)
        out["decades_beyond_data"] = beyond
        far = beyond > 0.5
        if far.any():   # said in the notes (and reports), not warned: extrapolating is the point
            row = int(np.nanargmax(beyond))
            axis = max(axes, key=lambda k: axes[k][row]).replace("_", " ")
            notes.append(f"{int(far.sum())} row(s) lie beyond the fitted runs (up to {np.nanmax(beyond):.1f} decades, "
                         f"in {axis}): {why}")
        own = decades_beyond_group(source, data.frame)
        if own is not None:
            by_group, grouping = own
            out["decades_beyond_group"] = by_group
            further = np.nan_to_num(by_group, nan=-np.inf) > beyond + 0.5
            if further.any():
                row = int(np.argmax(np.where(further, by_group - beyond, -np.inf)))
                g = grouping[row]
                label = data.frame[g].astype(str).iloc[row]
                notes.append(f"{int(further.sum())} row(s) lie further beyond their own {g}'s runs than beyond all "
                             f"runs (up to {by_group[row]:.1f} decades beyond the runs of {g} {label!r}, "
                             f"{beyond[row]:.1f} beyond all; decades_beyond_group gives each row's): what varies by "
                             f"{g} is extrapolated that far, whatever the other groups' runs reached")
        for axis, (dist, lo, hi) in linear_beyond(source, data.frame).items():
            if (dist > 0).any():
                notes.append(f"{int((dist > 0).sum())} row(s) lie outside the fitted runs' {axis} "
                             f"[{lo:.4g}, {hi:.4g}] (up to {dist.max():.3g} beyond): {why}")
    out.attrs["notes"] = notes
    out.attrs["kind"] = kind
    if return_draws:
        da = xr.DataArray(draws, dims=("sample", "row"), name="curve" if kind == "curve" else law.response,
                          attrs={"kind": kind, "law": law.spec})
        return out, da
    return out


# ---- quantities implied by a law's draws ---------------------------------------------------------

def choice_accuracy(fit, df: pd.DataFrame, *, kappa: float = 1.0, levels=(0.5, 0.9), seed: int = 0,
                    return_draws: bool = False):
    """Predicted accuracy at the rows of ``df`` (column ``choices``: number of choices per row) from a
    ``choice-mass`` fit: mean and central intervals over posterior draws of (m, phi)."""
    if fit.law.name != "choice-mass":
        raise BayescaleError(f"choice_accuracy needs a 'choice-mass' fit, got law {fit.law.spec!r}")
    if "choices" not in df.columns:
        raise BayescaleError("choice_accuracy needs a column 'choices' (number of answer choices per row, e.g. 4)")
    data = prepare(fit, df, "curve")
    values = fit.param_draws(data.frame, np.random.default_rng(check_seed(seed)), data.notes)
    mu = curve(fit.law, centre(fit.law, data.frame, fit.logref), values, fit.n_draws, len(data.frame))
    phi = np.broadcast_to(np.asarray(values["phi"], np.float64), mu.shape)
    k = df["choices"].to_numpy()
    draws = np.empty_like(mu)
    for c in np.unique(k):
        cols = np.flatnonzero(k == c)
        draws[:, cols] = accuracy_from_mass(mu[:, cols], phi[:, cols], int(c), kappa)
    out = pd.DataFrame({"mean": draws.mean(axis=0)}, index=df.index)
    for lv in levels:
        out[f"lower_{lv:g}"] = np.quantile(draws, (1 - lv) / 2, axis=0)
        out[f"upper_{lv:g}"] = np.quantile(draws, (1 + lv) / 2, axis=0)
    return (out, draws) if return_draws else out
