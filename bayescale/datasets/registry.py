"""The registry: sources (where files come from), tables (what `load` returns) and their data cards."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import BayescaleError


@dataclass(frozen=True)
class Source:
    """One folder of the data home, downloaded from one or more public repositories."""

    folder: str
    repos: tuple[tuple[str, str, str], ...]   # (local prefix, "owner/name", commit); path = prefix + original path
    license: str
    citation: str

    def origin(self, relpath: str) -> tuple[str, str, str]:
        """(repo, commit, original path) of a file given by its path inside the folder."""
        for prefix, repo, commit in sorted(self.repos, key=lambda r: -len(r[0])):
            if relpath.startswith(prefix):
                return repo, commit, relpath[len(prefix):]
        raise BayescaleError(f"no repository registered for '{relpath}' in source '{self.folder}'")


@dataclass(frozen=True)
class Card:
    """What a table measures and how it was made; `bayescale datasets show NAME` prints it."""

    name: str
    title: str
    measured: str
    response: str                       # response column(s) and their units
    params_convention: str
    tokens: str
    groups: str                         # what family / dataset / task mean here
    holdout: str
    defects_fixed: tuple[str, ...]
    not_fixed: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()   # (option=default, meaning)
    rows: str = ""                      # row count after the documented fixes (default options)
    reference: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Table:
    name: str
    source: Source
    card: Card
    loader: Callable[..., pd.DataFrame]             # loader(data_home=None, **options)
    holdout: Callable[[pd.DataFrame], np.ndarray]   # boolean mask over a loaded frame
    reference: Callable[..., object] | None = None  # reference(data_home=None)
    primary: bool = False                           # the source's main (loss) table


REGISTRY: dict[str, Table] = {}


def register(table: Table) -> Table:
    if table.name in REGISTRY:
        raise BayescaleError(f"dataset '{table.name}' is registered twice")
    REGISTRY[table.name] = table
    return table


def get(name: str) -> Table:
    if name == "demo":   # built in (datasets.load("demo")), without a source, card or natural holdout
        raise BayescaleError("'demo' is the built-in synthetic table: load it (bayescale.datasets.load('demo') "
                             "or dataset:demo); it has no data card, natural holdout or reference fits, "
                             "so use a holdout protocol such as top-compute:0.1")
    if name not in REGISTRY:
        raise BayescaleError(
            f"unknown dataset '{name}'; registered datasets: {', '.join(sorted(REGISTRY))}, and the "
            "built-in demo (`bayescale datasets list`)"
        )
    return REGISTRY[name]


def sources() -> dict[str, Source]:
    return {t.source.folder: t.source for t in REGISTRY.values()}


def format_card(table: Table) -> str:
    """A data card as plain text."""
    c, s = table.card, table.source
    lines = [f"{c.name}: {c.title}", ""]
    for label, value in (("measured", c.measured), ("response", c.response),
                         ("params (N)", c.params_convention), ("tokens (D)", c.tokens),
                         ("groups", c.groups), ("rows", c.rows), ("holdout", c.holdout)):
        if value:
            lines.append(f"{label + ':':<12} {value}")
    lines.append(f"{'source:':<12} folder '{s.folder}/' of the data home")
    for prefix, repo, commit in s.repos:
        where = f" (files under {prefix})" if prefix else ""
        lines.append(f"{'':<12} https://github.com/{repo} @ {commit}{where}")
    siblings = sorted(n for n, t in REGISTRY.items() if t.source.folder == s.folder and n != c.name)
    if siblings:
        lines.append(f"{'':<12} other tables from this source: {', '.join(siblings)}")
    lines.append(f"{'license:':<12} {s.license}")
    lines.append(f"{'citation:':<12} {s.citation}")
    if c.options:
        lines.append("options:")
        lines += [f"  {opt}: {doc}" for opt, doc in c.options]
    lines.append("defects fixed by the loader:" if c.defects_fixed else "defects fixed by the loader: none known")
    lines += [f"  - {d}" for d in c.defects_fixed]
    if c.not_fixed:
        lines.append("known issues NOT fixed:")
        lines += [f"  - {d}" for d in c.not_fixed]
    if c.reference:
        lines.append(f"reference:   {c.reference}")
    return "\n".join(lines)
