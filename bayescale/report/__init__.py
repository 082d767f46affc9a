"""Plots and an HTML report for a fit and, optionally, its calibration scores.

`plots` draws loss fits and calibration diagnostics, `downstream` accuracy (or pass-rate) fits,
`html` writes report.html; `fit_report` is `bayescale report FIT.nc --out DIR`. Every figure is a
`matplotlib.figure.Figure` saved to a file: pyplot is never imported and the backend never set.
"""
from __future__ import annotations

from ..scores import LEVELS
from .downstream import plot_accuracy
from .fit_page import fit_report
from .html import write_html
from .plots import plot_fit, plot_pit, plot_reliability

__all__ = ["fit_report", "plot_fit", "plot_reliability", "plot_pit", "write_html", "plot_accuracy", "LEVELS"]
