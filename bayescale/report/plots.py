"""Plots of a loss fit and of calibration scores (fit bands, reliability diagram, PIT histogram).

Figures are `matplotlib.figure.Figure` objects saved with `fig.savefig`: pyplot is never imported,
so the host's matplotlib backend and figure manager are left alone.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

# Okabe & Ito's colour-blind safe palette, for every figure of the reports
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
# one colour per method in every plot (reliability diagram and PIT histogram)
METHOD_COLORS = {"bayescale (new observation)": OKABE_ITO[0], "bayescale (mean curve)": OKABE_ITO[1],
                 "bootstrap": OKABE_ITO[2], "no-pool": OKABE_ITO[3],
                 "bayescale, law alone (new observation)": OKABE_ITO[4]}
DPI = 200   # 2x: sharp on high-density screens and in print


MAX_GROUP_PLOTS = 8


def _color(name: str, i: int) -> str:
    return METHOD_COLORS.get(name, OKABE_ITO[(i + len(METHOD_COLORS)) % len(OKABE_ITO)])


X_LABEL = {"params": "parameters N", "tokens": "training tokens D", "compute": "training compute C (FLOP)"}


def _training_table(fit) -> pd.DataFrame:
    const = fit.group("constant_data")
    table = pd.DataFrame({k: np.asarray(const[k].values) for k in const.data_vars})
    if "compute" not in table and {"params", "tokens"} <= set(table):
        table["compute"] = 6 * table["params"] * table["tokens"]
    return table


def plot_fit(fit, path, heldout: pd.DataFrame | None = None, group: str | None = None) -> Path:
    """Loss against compute (or the law's one input), log axes, 50% and 90% bands per group."""
    train = _training_table(fit)
    law = fit.law
    x_col = law.inputs[0] if len(law.inputs) == 1 else "compute"
    group = group or next((g for g in ("family", "dataset", "task") if train[g].nunique() > 1), "family")
    frames = [train.assign(_held=False)]
    if heldout is not None and len(heldout):
        h = heldout.copy()
        if "compute" not in h and {"params", "tokens"} <= set(h):
            h["compute"] = 6 * h["params"] * h["tokens"]
        for g in ("family", "dataset", "task"):
            if g not in h:
                h[g] = "all"
        frames.append(h.assign(_held=True))
    allpts = pd.concat(frames, ignore_index=True)
    labels = sorted(allpts[group].astype(str).unique())
    # at most two panels a row: a page shows the figure at its size (100 px per inch), so a row of
    # three or more panels was wider than the page and the browser shrank its type
    ncols = min(2, len(labels))
    nrows = -(-len(labels) // ncols)
    fig = Figure(figsize=(5.2 * ncols + (2.4 if ncols == 1 else 0), 4.2 * nrows))   # one panel: its legend beside it
    grid_axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    spare = list(grid_axes.ravel()[len(labels):])
    for ax in spare:
        ax.set_visible(False)
    panels = list(grid_axes.ravel()[:len(labels)])
    if len(law.inputs) > 1:   # one set of D/N bands for all panels, so one legend reads for each
        ratio = allpts["tokens"] / allpts["params"]
        distinct = np.unique(np.round(ratio, 6))
        ratios = distinct if len(distinct) <= 4 else np.quantile(ratio, [0.1, 0.5, 0.9])
    for ax, label in zip(panels, labels):
        pts = allpts[allpts[group].astype(str) == label].sort_values(x_col)
        if len(law.inputs) == 1:
            grid = np.geomspace(pts[x_col].min() / 1.5, pts[x_col].max() * 3, 120)
            curve = pd.DataFrame({x_col: grid, group: label})
            for g in ("family", "dataset", "task"):
                if g != group:
                    curve[g] = pts[g].iloc[0]
            for k in law.mean_extras:   # e.g. accuracy's chance level: the panel's own (most common) value
                if k in pts:
                    curve[k] = pts[k].mode().iloc[0]
            pred = fit.predict(curve, levels=(0.5, 0.9), kind="mean")
            ax.fill_between(grid, pred["lower_90"], pred["upper_90"], color=OKABE_ITO[0], alpha=0.18, label="90% interval")
            ax.fill_between(grid, pred["lower_50"], pred["upper_50"], color=OKABE_ITO[0], alpha=0.35, label="50% interval")
            ax.plot(grid, pred["median"], color=OKABE_ITO[0], lw=1.2, label="posterior median")
        else:  # two inputs: bands along lines of constant tokens per parameter, the same in every panel
            grid_c = np.geomspace(pts["compute"].min() / 2, pts["compute"].max() * 4, 80)
            for j, r in enumerate(ratios):
                n = np.sqrt(grid_c / (6 * r))
                curve = pd.DataFrame({"params": n, "tokens": r * n, group: label})
                for g in ("family", "dataset", "task"):
                    if g != group:
                        curve[g] = pts[g].iloc[0]
                pred = fit.predict(curve, levels=(0.5, 0.9), kind="mean")
                color = OKABE_ITO[j % len(OKABE_ITO)]
                ax.fill_between(grid_c, pred["lower_90"], pred["upper_90"], color=color, alpha=0.15)
                ax.fill_between(grid_c, pred["lower_50"], pred["upper_50"], color=color, alpha=0.35)
                ax.plot(grid_c, pred["median"], color=color, lw=1.1, label=f"D/N = {r:.3g}: median, 50%, 90%")
        tr = pts[~pts["_held"]]
        ho = pts[pts["_held"]]
        colour = "k"
        if len(law.inputs) > 1:   # each run in the colour of the band nearest its tokens per parameter
            near = np.abs(np.log(np.asarray(tr["tokens"] / tr["params"], float))[:, None] - np.log(ratios)[None, :])
            colour = [OKABE_ITO[j % len(OKABE_ITO)] for j in near.argmin(axis=1)]
        ax.scatter(tr[x_col], tr[law.response], s=14, color=colour, edgecolor="#222222", lw=0.4, zorder=3,
                   label="training runs")
        if len(ho):
            ax.scatter(ho[x_col], ho[law.response], s=60, marker="*", color="#000000", zorder=4, label="held-out runs")
        ax.set_xscale("log")
        ax.set_xlabel(X_LABEL.get(x_col, x_col))
        if law.observation.link_name == "logit":   # a rate: the logit axis is the law's own scale
            ax.set_yscale("logit")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))   # 0.01, 0.5, 0.9
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        else:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.1f"))
        ax.set_title(f"{group} = {label}")
        ax.grid(True, which="both", alpha=0.25)
    for row in grid_axes:
        row[0].set_ylabel(f"{law.response} (nats/token)" if law.response == "loss" else law.response)
    entries = {}   # every panel's entries once (a panel may have no held-out runs)
    for ax in panels:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(name, handle)
    handles, names = list(entries.values()), list(entries)
    below = ncols > 1 and not spare
    if ncols == 1:   # one panel: the legend beside it, off the data
        panels[0].legend(handles, names, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    elif spare:      # in the empty slot of the last row
        spare[0].set_visible(True)
        spare[0].axis("off")
        spare[0].legend(handles, names, fontsize=9, loc="center", frameon=False)
    else:            # below the panels, across the figure
        fig.legend(handles, names, fontsize=8, loc="lower center", ncol=min(len(names), 4), frameon=False)
    fig.suptitle("\n".join(textwrap.wrap(f"{law.spec}: {law.formula}", 40 + 50 * ncols)), fontsize=10)
    fig.tight_layout(rect=(0, 0.12 / nrows if below else 0, 1, 1))   # room for a legend below
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    return path


def plot_reliability(summaries: dict[str, dict], path) -> Path:
    """Nominal against empirical coverage of central intervals, one line per method."""
    fig = Figure(figsize=(4.6, 4.4))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    for i, (name, s) in enumerate(summaries.items()):
        nominal = [float(k) for k in s["coverage"]]
        empirical = [s["coverage"][k] for k in s["coverage"]]
        ax.plot(nominal, empirical, marker="o", color=_color(name, i), label=name)
    ax.set_xlim(0.4, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("nominal coverage of central interval")
    ax.set_ylabel("empirical coverage on held-out runs")
    ax.set_title("reliability diagram")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    return path


def plot_pit(pit_values: dict[str, np.ndarray], path, bins: int = 10) -> Path:
    """PIT histograms, one panel per method (outlines drawn over each other hid one another):
    flat means calibrated, U-shaped overconfident, humped underconfident."""
    n = max(len(pit_values), 1)
    fig = Figure(figsize=(min(3.0 * n, 12.0), 3.4))
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True, squeeze=False)[0])
    edges = np.linspace(0, 1, bins + 1)
    for i, (ax, (name, values)) in enumerate(zip(axes, pit_values.items())):
        ax.hist(values, bins=edges, density=True, color=_color(name, i), alpha=0.8, edgecolor="white")
        ax.axhline(1.0, color="grey", ls="--", lw=1)
        ax.set_title(f"{name}\n(n={len(values)})", fontsize=8)
        ax.set_xlabel("PIT value", fontsize=8)
    axes[0].set_ylabel("density (dashed: uniform)")
    fig.suptitle("PIT histograms (predictive CDF at the held-out value)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    return path
