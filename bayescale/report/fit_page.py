"""`bayescale report FIT --out DIR`: one self-contained page that answers what the big run will reach.

The page opens with the prediction at each target (median, 50 % and 90 % intervals, what the
interval's width is made of) and the compute-optimal allocation at each budget, in words and
numbers; then one plot from the data to beyond the targets; then the sampler's checks in plain
words; then the parameters (with the reference scales) and the priors. The numbers are those of
``Fit.predict(kind="observation")`` (``"mean"`` when the targets lack a column a measured value
needs, such as the number of questions) and ``Fit.optimal_allocation``, with the seed given, so they
are exactly what ``bayescale predict`` and ``bayescale allocate`` print.
"""
from __future__ import annotations

import html
import math
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..data import GROUP_COLUMNS
from ..errors import BayescaleWarning
from ..checks import check_seed
from ..results import REFERENCE_SYMBOL
from .html import embedded_image, page, table_html
from .plots import _training_table

LEVELS = (0.5, 0.9)
MAX_PATHS = 4        # prediction bands drawn (one per distinct target path)
MAX_COLOURED = 7     # groups with their own colour; the rest share one
# Okabe & Ito's colour-blind safe palette: bands take the blues/vermilion, points the others
BAND_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7"]
POINT_COLOURS = ["#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#F0E442", "#D55E00", "#0072B2"]
OTHER_COLOUR = "#999999"
UNITS = {"params": "parameters", "tokens": "tokens", "compute": "FLOP", "attempts": "attempts"}
AXIS_NAMES = {"params": "parameters N", "tokens": "training tokens D", "compute": "training compute C (FLOP)",
              "attempts": "samples per problem k", "loss": "loss L (nats/token)", "p_correct": "accuracy"}


def _first_fit(fit):
    return next(iter(fit.fits.values())) if hasattr(fit, "fits") else fit


def _x_column(law) -> str:
    return "compute" if {"params", "tokens"} <= set(law.inputs) else law.inputs[0]


def _with_compute(df: pd.DataFrame) -> pd.DataFrame:
    if "compute" not in df and {"params", "tokens"} <= set(df):
        df = df.assign(compute=6.0 * df["params"].astype(float) * df["tokens"].astype(float))
    return df


def _groups(fit, train: pd.DataFrame) -> list[str]:
    """The grouping columns the fit uses that have more than one label among its runs."""
    coords = _first_fit(fit).spec.coords
    return [g for g in GROUP_COLUMNS if g in coords and g in train and train[g].nunique() > 1]


def default_targets(fit) -> tuple[pd.DataFrame, str]:
    """Without ``--at``: the largest fitted run scaled to 10x and 100x its compute (same
    tokens per parameter, same group labels), and a sentence saying so."""
    one = _first_fit(fit)
    law = one.law
    train = _with_compute(_training_table(one))
    x = _x_column(law)
    top = train.loc[train[x].idxmax()]
    rows = []
    for factor in (10.0, 100.0):
        row = {c: top[c] for c in _groups(fit, train)}
        row.update({c: top[c] for c in (*law.extras, *law.mean_extras) if c in train})
        if {"params", "tokens"} <= set(law.inputs):
            row["params"], row["tokens"] = top["params"] * math.sqrt(factor), top["tokens"] * math.sqrt(factor)
        else:
            for c in law.inputs:
                row[c] = top[c] * factor if c == x else top[c]
        rows.append(row)
    shown = top[[c for c in top.index if c in law.inputs or c in _groups(fit, train)]]
    what = (f"No target was given (--at), so the report predicts the largest fitted run "
            f"({_describe_inputs(shown, law)}) scaled to 10x and 100x its {'compute' if x == 'compute' else x}"
            + (" (same tokens per parameter)." if x == "compute" and "params" in law.inputs else "."))
    return pd.DataFrame(rows), what


def _g(v: float) -> str:
    """Four significant digits (the precision the page and its tests compare), 7e10 not 7e+10."""
    return f"{float(v):.4g}".replace("e+", "e")


def _describe_inputs(row, law) -> str:
    parts = []
    for c in law.inputs:
        parts.append(f"{c} = {_g(row[c])}")
    if {"params", "tokens"} <= set(law.inputs):
        parts.append(f"D/N = {_g(float(row['tokens']) / float(row['params']))}")
    parts += [f"{g} = {row[g]}" for g in GROUP_COLUMNS if g in row and pd.notna(row[g])]
    return ", ".join(parts)


def _share_sentence(row) -> str:
    names = {"share_parameters": "the law's parameters (what more runs of this kind pin down)",
             "share_law": "disagreement between the stacked laws",
             "share_discrepancy": "the model discrepancy (the law's possible misfit, growing with distance beyond the data)",
             "share_noise": "run-to-run noise"}
    parts = [f"{row[k] * 100:.0f}% {text}" for k, text in names.items() if k in row and pd.notna(row[k])]
    return "Of the squared 90 % width of a new run's interval: " + "; ".join(parts) + "." if parts else ""


def prediction_kind(law, targets: pd.DataFrame) -> tuple[str, str | None]:
    """"observation" (what a new run will measure), or "mean" with a reason when the targets lack
    a column the observation model needs (a measured accuracy depends on the number of questions)."""
    missing = [c for c in law.extras if c not in targets]
    if not missing:
        return "observation", None
    return "mean", (f"The targets give no {', '.join(missing)}, which a new run's measured value depends on, "
                    f"so the page shows the expected value on the law's curve with its model discrepancy; "
                    f"give {missing[0]}=... in --at for a new run's measured value.")


def prediction_sentences(fit, targets: pd.DataFrame, pred: pd.DataFrame, kind: str = "observation") -> list[str]:
    """One HTML paragraph per target: where it is, then the median and intervals in bold."""
    law = _first_fit(fit).law
    response = AXIS_NAMES.get(law.response, law.response)
    out = []
    for i, (_, row) in enumerate(pred.iterrows(), start=1):
        where = _describe_inputs(row, law)
        if "compute" not in law.inputs and {"params", "tokens"} <= set(law.inputs):
            where += f", C = {_g(6 * float(row['params']) * float(row['tokens']))} FLOP"
        beyond = row.get("decades_beyond_data")
        if beyond is not None and pd.notna(beyond):
            where += (f"; {float(beyond):.1f} decades beyond the fitted runs" if beyond > 0.05
                      else "; inside the fitted range")
        own = row.get("decades_beyond_group")
        if own is not None and pd.notna(own) and beyond is not None and pd.notna(beyond) and own > beyond + 0.05:
            where += f" ({float(own):.1f} beyond its own group's runs)"
        verb = "a new run will measure" if kind == "observation" else "the expected"
        out.append(f"<b>Target {i}</b> ({html.escape(where)}): {verb} {html.escape(response)} "
                   + ("" if kind == "observation" else "is ")
                   + f"<b>{_g(row['median'])}</b> (median); 50% interval [{_g(row['lower_50'])}, {_g(row['upper_50'])}], "
                   f"<b>90% interval [{_g(row['lower_90'])}, {_g(row['upper_90'])}]</b>. "
                   + html.escape(_share_sentence(row)))
    return out


def allocation_sentences(table: pd.DataFrame, labels: dict) -> list[str]:
    out = []
    whose = (" for " + ", ".join(f"{k} {v}" for k, v in labels.items())) if labels else ""
    for _, r in table.iterrows():
        out.append(
            f"At {_g(r['compute'])} FLOP{whose} the compute-optimal run has N* = {_g(r['params_median'])} parameters "
            f"(90%: {_g(r['params_lower_90'])} to {_g(r['params_upper_90'])}) and D* = {_g(r['tokens_median'])} "
            f"tokens (90%: {_g(r['tokens_lower_90'])} to {_g(r['tokens_upper_90'])}), "
            f"{_g(r['tokens_per_param_median'])} tokens per parameter; the law's expected loss there is "
            f"{_g(r['loss_median'])} (90%: {_g(r['loss_lower_90'])} to {_g(r['loss_upper_90'])}).")
    return out


def diagnostics_text(fit) -> tuple[str, bool]:
    """The sampler's checks in words, and whether they pass."""
    fits = fit.fits if hasattr(fit, "fits") else {"": fit}
    parts, ok = [], True
    for name, one in fits.items():
        d, c = one.diagnostics, one.config
        drawn = c.get("stats", {}).get("draws_per_chain", c["draws"])
        problems = one.sampling_problems()
        ok &= not problems
        head = f"{name}: " if name else ""
        parts.append(
            f"{head}{c['chains']} chains x {drawn} draws after {c['warmup']} warmup; max r_hat {d['max_rhat']:.3f} "
            f"(target <= 1.01), min bulk ESS {d['min_ess_bulk']:.0f} (target >= 400), {d['divergences']} "
            f"divergent transitions (target 0), {d['mean_steps_per_draw']:.0f} leapfrog steps per draw."
            + ("" if not problems else " Failing: " + "; ".join(problems) + "."))
    return " ".join(parts), ok


def reference_lines(fit) -> list[str]:
    """Each law's formula and the reference scales it is written about (every law of a stack)."""
    fits = fit.fits if hasattr(fit, "fits") else {"": fit}
    return [(f"{name}: " if name else "") + _one_reference_text(one) for name, one in fits.items()]


def _one_reference_text(one) -> str:
    parts = []
    for name, value in one.reference_scales.items():
        if name in one.law.linear_inputs:
            parts.append(f"{name}: {_g(value)}")
        else:
            symbol = REFERENCE_SYMBOL.get(name, f"{name}0")
            parts.append(f"{symbol} = {_g(value)} {UNITS.get(name, '')}".rstrip())
    return ("The law is written about reference scales near the data's geometric mean: " + ", ".join(parts)
            + f". Formula: {one.law.formula}.") if parts else f"Formula: {one.law.formula}."


def summary_table(fit) -> pd.DataFrame:
    """The posterior summary; for a stack, each law's block labelled with its weight (to two
    decimals, as everywhere on the page: the optimiser's 1e-17 is a weight of 0.00)."""
    table = fit.summary()
    if hasattr(fit, "weights"):
        table = table.drop(columns="weight")
        labels = {name: f"{name} (weight {w:.2f})" for name, w in fit.weights.items()}
        table.index = table.index.set_levels([labels[k] for k in table.index.levels[0]], level=0)
    return table


def _readable_prior(text: str) -> str:
    """A prior as a reader wants it, 4 significant digits (the saved fit keeps every digit)."""
    from ..errors import BayescaleError
    from ..priors import describe, parse

    try:
        return describe(parse(text), digits=4)
    except BayescaleError:   # a form parse does not read: shown as saved
        return text


def priors_table(fit) -> pd.DataFrame:
    fits = fit.fits if hasattr(fit, "fits") else {"": fit}
    rows = []
    for name, one in fits.items():
        for param, prior in one.config.get("priors", {}).items():
            rows.append({"law": name, "parameter": param, "prior": _readable_prior(prior)})
        disc = one.config.get("discrepancy")
        if disc:
            rows.append({"law": name, "parameter": "disc_scale", "prior": _readable_prior(disc["prior"])})
        for term in one.config.get("offsets", []) or []:
            if isinstance(term, dict) and "prior" in term:
                rows.append({"law": name, "parameter": f"offset {term.get('group', '')} scale",
                             "prior": _readable_prior(term["prior"])})
    table = pd.DataFrame(rows)
    if len(fits) == 1 and len(table):
        table = table.drop(columns="law")
    return table


LAW_LINE_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))   # a stack's laws, one style each


def plot_targets(fit, targets: pd.DataFrame, pred: pd.DataFrame, path, *, seed: int = 0,
                 kind: str = "observation") -> Path:
    """The fitted runs (coloured by group, or by tokens per parameter), 50 % / 90 % bands of a new
    run's value along each target's path from the data to beyond it, the targets with their
    intervals, and the fitted range shaded."""
    one = _first_fit(fit)
    law = one.law
    train = _with_compute(_training_table(one))
    targets, pred = _with_compute(targets.reset_index(drop=True)), _with_compute(pred.reset_index(drop=True))
    x = _x_column(law)
    two_inputs = {"params", "tokens"} <= set(law.inputs)
    groups = _groups(fit, train)
    log_y = law.response == "loss"
    log_x = x not in law.linear_inputs

    fig = Figure(figsize=(9.0, 5.0))
    ax = fig.subplots()
    lo, hi = float(train[x].min()), float(train[x].max())
    ax.axvspan(lo, hi, color="#000000", alpha=0.06, lw=0, label="fitted range")

    # bands: one per distinct path (group labels, and tokens per parameter for laws in N and D)
    fixed_cols = [c for c in targets.columns if c not in law.inputs and c != "compute"]
    ratio = (targets["tokens"] / targets["params"]).map(lambda v: float(f"{v:.6g}")) if two_inputs else 0.0
    paths = targets.assign(_ratio=ratio)   # rounded: 10x compute at the same D/N gives the same path
    paths = paths.drop_duplicates(subset=fixed_cols + ["_ratio"]).head(MAX_PATHS)
    x_end = float(targets[x].max()) * 3 if log_x else float(targets[x].max()) + 0.1 * (hi - lo + 1)
    x_start = lo / 2 if log_x else lo
    for j, (_, target) in enumerate(paths.iterrows()):
        grid = np.geomspace(x_start, x_end, 90) if log_x else np.linspace(x_start, x_end, 90)
        if two_inputs:
            r = float(target["_ratio"])
            n = np.sqrt(grid / (6 * r))
            curve = pd.DataFrame({"params": n, "tokens": r * n})
        else:
            curve = pd.DataFrame({c: (grid if c == x else float(target[c])) for c in law.inputs})
        for c in fixed_cols:
            curve[c] = target[c]
        with warnings.catch_warnings():   # the same notes as the targets' prediction, shown once
            warnings.simplefilter("ignore", BayescaleWarning)
            band = fit.predict(curve, levels=LEVELS, kind=kind, seed=seed)
        colour = BAND_COLOURS[j % len(BAND_COLOURS)]
        what = ", ".join([f"D/N = {_g(target['_ratio'])}"] * two_inputs + [str(target[g]) for g in groups if g in target])
        ax.fill_between(grid, band["lower_90"], band["upper_90"], color=colour, alpha=0.14, lw=0)
        ax.fill_between(grid, band["lower_50"], band["upper_50"], color=colour, alpha=0.30, lw=0)
        ax.plot(grid, band["median"], color=colour, lw=1.4,
                label=f"{'new run' if kind == 'observation' else 'expected value'}{' (' + what + ')' if what else ''}: median, 50% and 90%")
        # a stack's band mixes its laws: each law's own median shows where they part
        for k, (name, member) in enumerate(getattr(fit, "fits", {}).items()):
            style = LAW_LINE_STYLES[k % len(LAW_LINE_STYLES)]   # more laws than styles: they repeat
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BayescaleWarning)
                alone = member.predict(curve, levels=(0.5,), kind=kind, seed=seed)
            ax.plot(grid, alone["median"], color="#333333", lw=1.0, ls=style,
                    label=f"{name} alone (weight {fit.weights[name]:.2f}): median" if j == 0 else None)

    # fitted runs: coloured by group, else by tokens per parameter
    if groups:
        key = train[groups].astype(str).agg(" / ".join, axis=1)
        title = "fitted runs by " + " / ".join(groups)
    elif two_inputs:
        ratio = train["tokens"] / train["params"]
        edges = np.unique(np.geomspace(ratio.min(), ratio.max() * 1.0001, min(5, ratio.nunique()) + 1))
        bins = np.clip(np.searchsorted(edges, ratio, side="right") - 1, 0, len(edges) - 2)
        key = pd.Series([f"{edges[b]:.3g}-{edges[b + 1]:.3g}" for b in bins], index=train.index)
        title = "fitted runs by D/N (tokens per parameter)"
    else:
        key = pd.Series("fitted runs", index=train.index)
        title = None
    labels = list(dict.fromkeys(key.sort_values(key=lambda s: s.map(_natural_key)).tolist()))
    for i, label in enumerate(labels):
        mask = (key == label).to_numpy()
        colour = POINT_COLOURS[i] if i < MAX_COLOURED else OTHER_COLOUR
        name = label if i < MAX_COLOURED else "other groups"
        ax.scatter(train.loc[mask, x], train.loc[mask, law.response], s=16, color=colour, edgecolor="#333333",
                   lw=0.3, zorder=3, label=name if i <= MAX_COLOURED else None)

    # targets: a star at the median, 90 % and 50 % intervals as error bars
    for i, (_, row) in enumerate(pred.iterrows(), start=1):
        xv = float(row[x])
        ax.errorbar([xv], [row["median"]], yerr=[[row["median"] - row["lower_90"]], [row["upper_90"] - row["median"]]],
                    fmt="none", ecolor="#000000", elinewidth=1.0, capsize=4, zorder=5)
        ax.errorbar([xv], [row["median"]], yerr=[[row["median"] - row["lower_50"]], [row["upper_50"] - row["median"]]],
                    fmt="none", ecolor="#000000", elinewidth=3.0, zorder=5)
        ax.scatter([xv], [row["median"]], marker="*", s=170, color="#000000", zorder=6,
                   label="targets: median, 50% and 90%" if i == 1 else None)
        # the name centred above its 90 % bar (the value is in the text above the figure): a label
        # beside the star ran into the next target's bar when targets were a decade apart
        ax.annotate(f"target {i}", (xv, row["upper_90"]), textcoords="offset points", xytext=(0, 4),
                    ha="center", va="bottom", fontsize=8)
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
        import matplotlib.ticker as ticker

        ax.yaxis.set_major_formatter(ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%.2f"))
    ax.set_xlabel(AXIS_NAMES.get(x, x))
    ax.set_ylabel(AXIS_NAMES.get(law.response, law.response))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title=title, title_fontsize=8, frameon=False)
    name = fit.law_spec if hasattr(fit, "fits") else f"{law.spec}: {law.formula}"
    ax.set_title("\n".join(textwrap.wrap(name, 70)), fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=200)
    return path


def _natural_key(label: str):
    """Sort '3.5-12' after '1-3.5' (numbers as numbers), other labels alphabetically."""
    head = str(label).split("-")[0]
    try:
        return (0, float(head), "")
    except ValueError:
        return (1, 0.0, str(label))


def fit_report(fit, out_dir, targets: pd.DataFrame | None = None, budgets=(), *, seed: int = 0) -> Path:
    """Write ``out_dir/report.html`` (and the plot as ``fit.png``) for a fit or a stacked fit."""
    seed = check_seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    one = _first_fit(fit)
    law = one.law
    intro, notes = [], list(fit.notes)
    if targets is None or not len(targets):
        targets, what = default_targets(fit)
        intro.append(what)
    kind, why = prediction_kind(law, targets)
    if why:
        intro.append(why)
    pred = fit.predict(targets, levels=LEVELS, kind=kind, seed=seed)
    notes += [n for n in pred.attrs.get("notes", []) if n not in notes]
    headline = prediction_sentences(fit, targets, pred, kind)
    allocation, allocation_table = [], None
    budgets = [float(b) for b in budgets]
    if budgets and {"params", "tokens"} <= set(law.inputs):
        labels = {g: str(targets[g].iloc[0]) for g in one.spec.coords if g in targets and pd.notna(targets[g].iloc[0])}
        allocation_table = fit.optimal_allocation(budgets, levels=LEVELS, seed=seed, **labels)
        allocation = allocation_sentences(allocation_table, labels)
        notes += [n for n in allocation_table.attrs.get("notes", []) if n not in notes]
    elif budgets:
        allocation = [f"No compute-optimal allocation: {law.spec} is not a law of parameters and tokens."]
    plot_path = plot_targets(fit, targets, pred, out_dir / "fit.png", seed=seed, kind=kind)
    diag_text, healthy = diagnostics_text(fit)

    n_obs = one.config["n_obs"]
    title = f"bayescale report: {fit.law_spec} on {n_obs} runs"
    body = []
    if hasattr(fit, "weights"):
        intro.append("Several laws were fitted to the same runs; every prediction draws each posterior draw "
                     "from one law picked with its PSIS-LOO stacking weight ("
                     + ", ".join(f"{k} {v:.2f}" for k, v in fit.weights.items())
                     + "), so the intervals carry the laws' disagreement.")
    body.append("<h2>What a new run will reach</h2>")
    body += [f"<p>{html.escape(s)}</p>" for s in intro]
    body += [f"<p class='headline'>{s}</p>" for s in headline]   # already escaped
    if not healthy:
        body.append("<p class='warning'>Warning: the sampler's checks fail (see Diagnostics); the numbers on "
                    "this page may be wrong. Refit with more draws or a higher --target-accept.</p>")
    if allocation:
        body.append("<h2>Compute-optimal allocation</h2>")
        body += [f"<p class='headline'>{html.escape(s)}</p>" for s in allocation]
    body.append("<h2>From the data to the targets</h2>")
    body.append("<p>Fitted runs as points (the shaded band is their range); coloured bands: where a new run "
                "would land along each target's path (50% darker, 90% lighter), widening beyond the data; "
                "stars: the targets."
                + (" Dark dashed and dotted lines: each stacked law's own median, where the laws part."
                   if hasattr(fit, "weights") else "") + "</p>")
    body.append(embedded_image(plot_path, "the fitted runs, prediction bands and targets"))
    body.append("<h2>Diagnostics</h2>")
    body.append(f"<p class='{'ok' if healthy else 'warning'}'>"
                + ("The sampler's checks pass. " if healthy else "The sampler's checks FAIL. ")
                + html.escape(diag_text) + "</p>")
    body.append("<h2>Parameters</h2>")
    body += [f"<p>{html.escape(line)}</p>" for line in reference_lines(fit)]
    body.append(table_html("posterior summary", summary_table(fit)))
    body.append(table_html("priors", priors_table(fit)))
    body.append(table_html("predictions at the targets", pred))
    if allocation_table is not None:
        body.append(table_html("allocation", allocation_table))
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    return page(out_dir, title, body)
