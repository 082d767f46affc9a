"""The HTML report: tables, plots and a JSON summary in one page, and `bayescale report` for a fit."""
from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from .downstream import plot_accuracy
from .plots import MAX_GROUP_PLOTS, _training_table, plot_fit


def write_html(out_dir, title: str, images: list[str], tables: dict[str, pd.DataFrame],
               summary: dict | None = None, notes: list[str] = (), intro: list[str] = ()) -> Path:
    out_dir = Path(out_dir)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
             "img{max-width:100%;border:1px solid #eee;margin:6px 0}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for paragraph in intro:
        parts.append(f"<p>{html.escape(paragraph)}</p>")
    for note in notes:
        parts.append(f"<p><em>note:</em> {html.escape(note)}</p>")
    for name, table in tables.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(table.to_html(float_format=lambda v: f"{v:.4g}", border=0))
    for img in images:
        parts.append(f"<div><img src='{html.escape(img)}' alt='{html.escape(img)}'></div>")
    if summary is not None:
        parts.append("<h2>summary (JSON)</h2><pre>" + html.escape(json.dumps(summary, indent=2)) + "</pre>")
    parts.append("</body></html>")
    path = out_dir / "report.html"
    path.write_text("\n".join(parts))
    return path


def fit_report(fit, out_dir) -> Path:
    """`bayescale report FIT.nc --out DIR`: the fit plot, the summary table and diagnostics (for a
    stacked fit: the weights, then each law's plot, parameters and diagnostics)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(fit, "fits"):
        images = []
        for i, one in enumerate(fit.fits.values()):
            images.append(f"fit_{i}.png")
            plot_fit(one, out_dir / images[-1])
        weights = pd.DataFrame({"law": list(fit.weights), "stacking weight": list(fit.weights.values()),
                                "formula": [one.law.formula for one in fit.fits.values()]}).set_index("law")
        diag = pd.DataFrame.from_dict(fit.diagnostics, orient="index")
        intro = ["Several laws fitted to the same runs; predictions draw each posterior draw from one law, "
                 "picked with its PSIS-LOO stacking weight, so intervals carry the laws' disagreement."]
        return write_html(out_dir, f"bayescale stacked fit: {fit.law_spec}", images,
                          {"laws and stacking weights": weights, "posterior summary": fit.summary(),
                           "diagnostics": diag}, notes=fit.notes, intro=intro)
    if fit.law.response == "p_correct":  # accuracy laws: one plot per task, with the chance level
        table = _training_table(fit)
        images = []
        for i, task in enumerate(sorted(set(table["task"]))[:MAX_GROUP_PLOTS]):
            name = f"accuracy_{i}.png"
            plot_accuracy(fit, table, out_dir / name, labels={"task": task})
            images.append(name)
    else:
        plot_fit(fit, out_dir / "fit.png")
        images = ["fit.png"]
    diag = pd.DataFrame([fit.diagnostics])
    return write_html(out_dir, f"bayescale fit: {fit.law.spec}", images,
                      {"posterior summary": fit.summary(), "diagnostics": diag}, notes=fit.notes)
