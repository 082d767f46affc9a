"""What defines a model apart from the data arrays: the law, pooling, priors, reference scales and
centring choice, resolved from a table (:func:`build`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import jax
import numpy as np
import numpyro.distributions as dist
import pandas as pd

from .data import DEFAULT_GROUP, GROUP_COLUMNS, Dataset, check_group_sizes, validate
from .design import centre, extra_columns, reference_scales
from .discrepancy import Discrepancy, coordinates, walk_group
from .discrepancy import resolve as discrepancy_term
from .errors import BayescaleError
from .group_offset import GroupOffset
from .group_offset import resolve as offset_terms
from .models import Law, get_law
from .priors import describe, parse

CENTRED_MIN_POINTS = 8  # "auto": groups this well observed are sampled centred


@dataclass
class ModelSpec:
    """Everything that defines the NumPyro model, apart from the data arrays."""

    law: Law
    pooled: dict[str, str]                    # parameter -> grouping column
    priors: dict[str, dist.Distribution]      # parameter (and "<p>_tau") -> prior
    coords: dict[str, list[str]]              # grouping column -> labels (pooled ones only)
    logref: dict[str, float]                  # input -> log reference scale
    notes: list[str] = field(default_factory=list)
    centred: tuple[str, ...] = ()             # pooled parameters sampled centred (see choose_centring)
    discrepancy: Discrepancy | None = None    # the model-discrepancy walk, or None (the law alone)
    ranges: dict[str, list[float]] | None = None   # axis -> [min, max] of the fitted runs (discrepancy.coordinates)
    # grouping -> label -> axis -> [min, max] of that group's own runs (a family that stops at 1B
    # is extrapolated from there, whatever the other families reached)
    group_ranges: dict[str, dict[str, dict[str, list[float]]]] | None = None
    law_coordinates: bool = False             # sampled in the law's coordinates (models/coordinates.py)
    offsets: tuple[GroupOffset, ...] = ()     # shifts of the curve per group (group_offset.py)

    def key(self) -> tuple:
        return (
            self.law.spec,
            tuple(sorted(self.pooled.items())),
            tuple(sorted((k, describe(v)) for k, v in self.priors.items())),
            tuple(sorted((g, len(v)) for g, v in self.coords.items())),
            tuple(sorted(self.centred)),
            None if self.discrepancy is None else self.discrepancy.key(),
            self.law_coordinates,
            tuple(t.key() for t in self.offsets),
        )

    def to_json(self) -> dict:
        return {
            "law": self.law.spec,
            "pooled": self.pooled,
            "priors": {k: describe(v, digits=15) for k, v in self.priors.items()},
            "coords": self.coords,
            "logref": self.logref,
            "centred": list(self.centred),
            "discrepancy": None if self.discrepancy is None else self.discrepancy.to_json(),
            "ranges": self.ranges,
            "group_ranges": self.group_ranges,
            "law_coordinates": self.law_coordinates,
            "offsets": [t.to_json() for t in self.offsets],
        }

    @classmethod
    def from_json(cls, d: dict) -> "ModelSpec":
        return cls(
            law=get_law(d["law"]),
            pooled=dict(d["pooled"]),
            priors={k: parse(v) for k, v in d["priors"].items()},
            coords={k: list(v) for k, v in d["coords"].items()},
            logref={k: float(v) for k, v in d["logref"].items()},
            centred=tuple(d.get("centred", ())),
            discrepancy=None if d.get("discrepancy") is None else Discrepancy.from_json(d["discrepancy"]),
            ranges=d.get("ranges"),   # absent in fits saved before ranges were recorded
            group_ranges=d.get("group_ranges"),
            law_coordinates=bool(d.get("law_coordinates", False)),
            offsets=tuple(GroupOffset.from_json(t) for t in d.get("offsets", [])),
        )


# ---- building the spec ----------------------------------------------------------------------

def resolve_pool(law: Law, pool, data: Dataset) -> tuple[dict[str, str], list[str]]:
    """Which parameters vary by which grouping; groupings with one level collapse to shared."""
    params = law.all_params()
    defaults = {k: v.pool for k, v in params.items() if v.pool}
    if pool is None:
        requested = defaults
    elif isinstance(pool, str) and pool.lower() == "none":
        requested = {k: v for k, v in defaults.items() if k in law.noise_params()}
    elif isinstance(pool, dict):
        unknown = [k for k in pool if k not in params]
        if unknown:
            raise BayescaleError(
                f"cannot pool {unknown}: law {law.spec!r} has parameters {list(params)}"
            )
        requested = {k: v for k, v in defaults.items() if k in law.noise_params()}
        requested.update(pool)
        requested = {k: v for k, v in requested.items() if v}
    else:
        raise BayescaleError(
            f"pool must be None (the law's defaults), 'none' or a dict like {{'alpha': 'family'}}, got {pool!r}"
        )
    bad = {k: g for k, g in requested.items() if g not in GROUP_COLUMNS}
    if bad:
        raise BayescaleError(f"cannot pool {bad}: groupings are {list(GROUP_COLUMNS)}")
    pooled, notes = {}, []
    for name, g in requested.items():
        if len(data.coords[g]) > 1:
            pooled[name] = g
        elif pool is not None and name not in law.noise_params():
            notes.append(f"'{name}' pooled over '{g}', but the data have one {g}; it is shared")
    # a grouping the law pools by default, absent under its own name but present under another
    # (model_family, Task): the fit runs unpooled, which the user should hear with the fix
    for g in sorted({g for k, g in requested.items() if g not in pooled}):
        if g in data.frame.columns and len(data.coords[g]) <= 1 and (data.frame[g] != DEFAULT_GROUP).any():
            continue   # the column is there, with one label: nothing to map
        lookalikes = [c for c in map(str, data.frame.columns)
                      if c != g and c.lower() not in GROUP_COLUMNS and g in c.lower()]
        if lookalikes:
            names = [k for k, v in requested.items() if v == g]
            notes.append(f"no '{g}' column, so {names} are shared by every run (the law pools them by {g}); "
                         f"if {lookalikes[0]!r} holds the {g}, map it: columns={{'{g}': '{lookalikes[0]}'}} "
                         f"(CLI --col {g}={lookalikes[0]})")
    return pooled, notes


def _check_pooled_columns(pool: dict, df, columns: dict | None) -> None:
    """A grouping asked for by name must be a column of the table: without one every row is in
    one group, and the fit would run unpooled behind a note that the data "have one" group."""
    if not isinstance(df, pd.DataFrame):
        return
    mapped = dict(columns or {})
    for name, g in pool.items():
        if g in GROUP_COLUMNS and mapped.get(g, g) not in df.columns:
            raise BayescaleError(
                f"cannot pool '{name}' over '{g}': the table has no '{mapped.get(g, g)}' column (its columns: "
                f"{list(map(str, df.columns))}). Name the column holding the {g} labels with "
                f"columns={{'{g}': 'YOUR_COLUMN'}} (CLI: --col {g}=YOUR_COLUMN), or leave '{name}' unpooled")


def resolve_priors(law: Law, priors: dict | None, pooled: dict[str, str]) -> dict:
    params = law.all_params()
    out = {k: v.prior for k, v in params.items()}
    for k in pooled:
        out[f"{k}_tau"] = dist.HalfNormal(params[k].group_scale)
    if priors is not None and not isinstance(priors, dict):
        raise BayescaleError(f"priors must be a dict like {{'alpha': 'Normal(0.3, 0.1)'}}, got {priors!r}")
    for k, v in (priors or {}).items():
        if k not in out:
            raise BayescaleError(
                f"no parameter {k!r} to set a prior on; law {law.spec!r} with this pooling has {sorted(out)}"
            )
        if isinstance(v, str):
            v = parse(v)
        if not isinstance(v, dist.Distribution):
            raise BayescaleError(f"prior for {k!r} must be a numpyro distribution or text, got {v!r}")
        text = describe(v)
        try:
            parse(text)  # the prior must be recordable in the saved fit
        except BayescaleError as exc:
            raise BayescaleError(f"prior for {k!r}: {exc}") from exc
        _check_support(k, v, out[k])
        out[k] = v
    return out


def _check_support(name: str, prior: dist.Distribution, default: dist.Distribution) -> None:
    """A user prior must put its mass where the parameter is defined (e.g. E > 0)."""
    if isinstance(prior, dist.Delta):
        values = np.asarray(prior.v)
    else:
        values = np.asarray(prior.sample(jax.random.PRNGKey(0), (256,)))
    inside = np.asarray(default.support(values))
    if not np.all(inside):
        raise BayescaleError(
            f"prior {describe(prior)} for {name!r} puts mass outside the parameter's domain "
            f"({default.support}); the default prior is {describe(default)}. Choose a prior on that domain "
            "(e.g. LogNormal or HalfNormal for positive parameters)"
        )


def choose_centring(pooled: dict[str, str], data: Dataset, parametrisation: str = "auto") -> tuple[str, ...]:
    """Centred group values when every group has many points (data dominate, so a non-centred
    form would make its own funnel); non-centred offsets when some group is thin."""
    if parametrisation == "centred":
        return tuple(pooled)
    if parametrisation == "non-centred":
        return ()
    if parametrisation != "auto":
        raise BayescaleError(f"parametrisation must be 'auto', 'centred' or 'non-centred', got {parametrisation!r}")
    return tuple(k for k, g in pooled.items()
                 if np.bincount(data.group_index[g]).min() >= CENTRED_MIN_POINTS)


def free_parameters(law: Law, priors: dict | None) -> int:
    """The law's parameters left free by ``priors``: a Delta prior fixes one (e.g.
    ``{"floor": "Delta(0.0)"}``), so it needs no data point of its own."""
    fixed = 0
    for k, p in (priors or {}).items():
        if k in law.params:
            try:
                fixed += isinstance(parse(p) if isinstance(p, str) else p, dist.Delta)
            except BayescaleError:
                pass   # reported with its name by resolve_priors
    return law.n_free - fixed


def unused_grouping_notes(data: Dataset, groupings: set, law) -> list[str]:
    """A grouping column with several labels that nothing in the model varies by: its runs are
    fitted as one curve (task curves with their own asymptotes would share one), so say so."""
    out = []
    for g in GROUP_COLUMNS:
        labels = data.coords.get(g, [])
        if len(labels) > 1 and g not in groupings:
            shown = ", ".join(repr(v) for v in labels[:3]) + (", ..." if len(labels) > 3 else "")
            first = next(iter(law.params))
            out.append(f"column '{g}' has {len(labels)} labels ({shown}) but no parameter varies by it: its runs "
                       f"are fitted as one curve. For a curve per {g}, pool the law's parameters by it, e.g. "
                       f"pool={{'{first}': '{g}', ...}} (CLI --pool {first}={g}); or drop the column")
    return out


def build(df, law, *, pool=None, priors=None, columns=None, duplicates="error",
          parametrisation="auto", check_response=True, discrepancy=None,
          offset=None, discrepancy_by="auto") -> tuple[ModelSpec, Dataset]:
    """Validate the data and resolve law, pooling, priors, reference scales, the model
    discrepancy (see :mod:`bayescale.discrepancy`) and the group offset (:mod:`bayescale.group_offset`)."""
    law = get_law(law)
    data = validate(df, law.inputs, law.response, columns=columns, duplicates=duplicates,
                    min_points=free_parameters(law, priors), extra_numeric=law.extras,
                    linear_inputs=law.linear_inputs, positive_response=False)
    if check_response:
        law.observation.check(data.response, extra_columns(data.frame, law.extras), law, data.name_row, data.shown)
    if isinstance(pool, dict):
        _check_pooled_columns(pool, df, columns)
    pooled, notes = resolve_pool(law, pool, data)
    check_group_sizes(data, {g: [k for k, v in pooled.items() if v == g and k in law.params]
                             for g in set(pooled.values())})
    logref = reference_scales(law, data.inputs)
    x = centre(law, data.inputs, logref)
    resolved = resolve_priors(law, priors, pooled)
    offsets = offset_terms(law, offset, pooled, data, GROUP_COLUMNS)
    by, walk_notes = walk_group(law, discrepancy_by, pooled, data, GROUP_COLUMNS)
    pooled_by = sorted(set(pooled.values()))
    labels = np.column_stack([data.group_index[g] for g in pooled_by]) if pooled_by else None
    disc = discrepancy_term(law, discrepancy, x, by, len(data.coords[by]) if by else 1,
                            data.group_index[by] if by else None, labels)
    if disc is None:
        walk_notes = []
    groupings = set(pooled.values()) | {t.dim for t in offsets} | ({disc.group} if disc and disc.group else set())
    axes = coordinates(law.inputs, x)
    spec = ModelSpec(
        law=law, pooled=pooled, priors=resolved,
        coords={g: data.coords[g] for g in sorted(groupings)},
        logref=logref,
        notes=data.notes + notes + walk_notes + ([] if pool == "none" else unused_grouping_notes(data, groupings, law)),
        centred=choose_centring(pooled, data, parametrisation),
        discrepancy=disc,
        ranges={k: [float(v.min()), float(v.max())] for k, v in axes.items()},
        group_ranges={g: _group_ranges(axes, data.group_index[g], data.coords[g]) for g in sorted(groupings)},
        law_coordinates=law.coordinates is not None and law.coordinates.applies(resolved, pooled),
        offsets=offsets,
    )
    return spec, data


def _group_ranges(axes: dict[str, np.ndarray], index: np.ndarray, labels: list[str]) -> dict:
    """Each label's [min, max] along every axis, from its own rows."""
    return {label: {k: [float(v[index == i].min()), float(v[index == i].max())] for k, v in axes.items()}
            for i, label in enumerate(labels) if np.any(index == i)}
