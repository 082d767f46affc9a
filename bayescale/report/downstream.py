"""Plot a downstream fit: accuracy (or pass rate) against compute, with 50 % / 90 % bands."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..chaining import rate_draws
from ..errors import BayescaleError
from .plots import DPI, OKABE_ITO


def plot_accuracy(fit, data: pd.DataFrame, path, *, heldout: pd.DataFrame | None = None,
                  labels: dict | None = None, chance: float | None = None, n_grid: int = 60,
                  title: str | None = None) -> Path:
    """Accuracy against the fit's input (log x for compute, params, attempts) for one group.

    ``labels`` picks the group (e.g. ``{"task": "arc_easy"}``) in ``data`` and ``heldout``;
    ``chance`` (default: the rows' ``chance`` column, if any) is drawn as a dashed line.
    """
    law = fit.law
    if len(law.inputs) != 1 or law.response == "loss":
        raise BayescaleError(f"plot_accuracy draws a downstream fit of one input (accuracy or pass rate against "
                             f"compute, loss or attempts); {law.spec!r} models {law.response} of "
                             f"{', '.join(law.inputs)}: plot it with bayescale report FIT (a loss fit's page)")
    (xcol,) = law.inputs
    labels = labels or {}

    def pick(df):
        if df is None:
            return None
        mask = np.ones(len(df), dtype=bool)
        for k, v in labels.items():
            mask &= df[k].astype(str).to_numpy() == str(v)
        return df.loc[mask].reset_index(drop=True)

    train, test = pick(data), pick(heldout)
    if not len(train):
        raise BayescaleError(f"no rows with labels {labels} to plot")
    both = pd.concat([train, test]) if test is not None else train
    lo, hi = both[xcol].min(), both[xcol].max()
    log_x = xcol not in law.linear_inputs
    grid = np.geomspace(lo / 3, hi * 3, n_grid) if log_x else np.linspace(lo - 0.2, hi + 0.2, n_grid)
    rows = pd.DataFrame({xcol: grid, **{k: str(v) for k, v in labels.items()}})
    if "chance" in law.extras:
        rows["chance"] = float(train["chance"].iloc[0])
    draws = rate_draws(fit, rows, "mean")  # the expected accuracy (chance floor applied once, there)
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.subplots()
    for level, alpha in ((0.9, 0.18), (0.5, 0.35)):
        q = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        ax.fill_between(grid, q[0], q[1], color=OKABE_ITO[0], alpha=alpha, lw=0, label=f"{level:.0%} interval")
    ax.plot(grid, np.median(draws, axis=0), color=OKABE_ITO[0], lw=1.5, label="posterior median")
    ax.scatter(train[xcol], train[law.response], color="k", s=18, zorder=3, label="fitted runs")
    if test is not None and len(test):
        ax.scatter(test[xcol], test[law.response], facecolor="none", edgecolor=OKABE_ITO[3], s=60, lw=1.5,
                   marker="D", zorder=4, label="held-out runs")
    if chance is None and "chance" in train:
        chance = float(train["chance"].iloc[0])
    if chance is not None:
        ax.axhline(chance, color="gray", ls="--", lw=1, label=f"chance ({chance:g})")
    if log_x:
        ax.set_xscale("log")
    names = {"compute": "training compute C (FLOPs)", "params": "parameters N", "loss": "loss L (nats)",
             "attempts": "samples per problem k"}
    ax.set_xlabel(names.get(xcol, xcol))
    ax.set_ylabel({"p_correct": "accuracy"}.get(law.response, law.response))
    ax.set_title(title or f"{law.spec}" + (" — " + ", ".join(f"{v}" for v in labels.values()) if labels else ""))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)   # off the data
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path
