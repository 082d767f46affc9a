"""Datasets: the embedded synthetic demo and loaders for the public scaling measurements.

    from bayescale import datasets
    datasets.list()                       # the names load() takes
    runs = datasets.load("demo")          # the built-in SYNTHETIC demo (no files needed)
    print(datasets.info("gemstones"))     # the data card
    df = datasets.load("chinchilla_epoch")
    mask = datasets.holdout("chinchilla_epoch", df)
    datasets.reference("step_law")        # the authors' own fits, where published

The files are read at run time from the data home (data_home=, $BAYESCALE_DATA, ../shared/datasets,
~/.cache/bayescale/datasets); `bayescale datasets fetch NAME` downloads them.
"""
from __future__ import annotations

import builtins

import numpy as np
import pandas as pd

from ..errors import BayescaleError
from .demo import demo_data
from .registry import REGISTRY, Card, format_card, get

# one module per source; importing registers its tables
from . import chinchilla_epoch, gadre, gemstones, step_law, obsscaling, sloth, pythia, learning_curves, monkeys  # noqa: E402,F401

__all__ = ["DEMO", "demo_data", "list", "info", "load", "holdout", "reference", "card_text"]

DEMO = "demo"   # the built-in synthetic table: part of the package, so no data home is needed


def list(primary_only: bool = False) -> builtins.list[str]:  # noqa: A001  (the public name is datasets.list())
    """The names :func:`load` takes: "demo" (built in, SYNTHETIC) and the registered public
    datasets (primary_only: only these, one loss table per source)."""
    public = sorted(n for n, t in REGISTRY.items() if t.primary or not primary_only)
    return public if primary_only else [DEMO, *public]


def info(name: str) -> Card:
    """The data card of a dataset (str(card) via card_text(name))."""
    return get(name).card


def card_text(name: str) -> str:
    return format_card(get(name))


def load(name: str, data_home=None, **options) -> pd.DataFrame:
    """The table in the long schema; fixes are listed in df.attrs['notes'] and warned about.
    ``load("demo")`` is the built-in synthetic table (:func:`demo_data`)."""
    if name == DEMO:
        if options:
            raise BayescaleError(f"the demo table takes no options, got {sorted(options)}")
        return demo_data()
    table = get(name)
    _check_switches(name, table.loader, options)
    try:
        return table.loader(data_home=data_home, **options)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            valid = [o.split("=")[0] for o, _ in table.card.options] or ["(none)"]
            raise BayescaleError(f"{name}: {exc}; valid options: {', '.join(valid)}") from exc
        raise


def _check_switches(name: str, loader, options: dict) -> None:
    """An option whose default is True or False takes only True or False: any other value (the
    text "no", say) would be read as true in silence."""
    import inspect

    params = inspect.signature(loader).parameters
    for key, value in options.items():
        default = params[key].default if key in params else None
        if isinstance(default, bool) and not isinstance(value, (bool, np.bool_)):
            raise BayescaleError(f"{name}: option {key} is true or false, got {value!r}; "
                                 f"e.g. {key}=false (CLI --option {key}=false)")


def holdout(name: str, df: pd.DataFrame | None = None, data_home=None) -> np.ndarray:
    """Boolean mask of the natural large-scale held-out rows of load(name) (or of df)."""
    table = get(name)
    if df is None:
        df = load(name, data_home=data_home)
    return np.asarray(table.holdout(df), dtype=bool)


def reference(name: str, data_home=None):
    """The source authors' published fits or bootstrap samples, where they exist."""
    table = get(name)
    if table.reference is None:
        have = sorted(n for n, t in REGISTRY.items() if t.reference is not None)
        raise BayescaleError(f"no published reference fits are registered for '{name}'; "
                             f"datasets with reference values: {', '.join(have)}")
    return table.reference(data_home=data_home)
