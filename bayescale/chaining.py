"""Chaining a loss fit into a downstream fit: accuracy at new (N, D) with the loss's uncertainty.

``chain(loss_fit, downstream_fit).predict(df)`` draws the loss at each row from the loss fit
(its mean curve or a new run's loss), pairs those draws one to one with the downstream fit's
parameter draws (loss draws in random order, so that chains are not aligned), and evaluates the
downstream law at each drawn loss. The result is the accuracy (or rate) with both posteriors'
uncertainty. :func:`rate_draws` gives the same draws for a downstream fit alone.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from . import predict as predictive
from .errors import BayescaleError, BayescaleWarning
from .predict import check_levels, interval_columns
from .results import Fit
from .saved import load
from .checks import check_seed

KINDS = ("mean", "observation")


def _as_fit(f) -> Fit:
    f = f if isinstance(f, Fit) or hasattr(f, "fits") else load(f)
    if not isinstance(f, Fit):   # a stacked fit
        raise BayescaleError(f"a chain takes one fit per step, not a stacked fit (laws {list(f.fits)}): refit the "
                             "law you want with one --law (Python: law='NAME'), or chain one law's fit, "
                             "stack.fits['NAME']")
    return f


def rate_draws(fit: Fit, df: pd.DataFrame, kind: str = "mean", *, seed: int = 0,
               inputs: dict | None = None, notes: list | None = None) -> np.ndarray:
    """Draws (samples x rows) of a downstream law's rate at the rows of ``df``.

    As ``Fit.predict``: ``kind="mean"`` is the expected rate, for laws with a chance floor the
    accuracy itself (chance from column ``chance``), not the law's normalised curve. ``inputs``
    overrides input columns with draws (samples x rows), e.g. the loss drawn from a loss fit;
    ``kind="observation"`` adds a new run's scatter and the finite number of questions (column
    ``trials``; 0 = the run's rate itself).
    """
    if kind not in KINDS:
        raise BayescaleError(f"kind must be 'mean' or 'observation', got {kind!r}")
    data = predictive.prepare(fit, df, kind, given=tuple(inputs or ()))
    notes = data.notes if notes is None else notes
    return predictive.response_draws(fit, data.frame, kind, np.random.default_rng(check_seed(seed)), notes, inputs)


class Chain:
    """A loss fit feeding the ``loss`` input of a downstream fit (e.g. ``loss-to-error``)."""

    def __init__(self, loss_fit, downstream_fit):
        self.loss_fit, self.downstream_fit = _as_fit(loss_fit), _as_fit(downstream_fit)
        law = self.downstream_fit.law
        if "loss" not in law.inputs:
            raise BayescaleError(
                f"the downstream law {law.spec!r} has inputs {list(law.inputs)}; chaining needs a law "
                "of the loss, e.g. 'loss-to-error' or 'accuracy-sigmoid:loss'")
        if self.loss_fit.law.response != "loss":
            raise BayescaleError(f"the first fit must predict loss, but law {self.loss_fit.law.spec!r} "
                                 f"predicts '{self.loss_fit.law.response}'")

    def draws(self, df: pd.DataFrame, kind: str = "mean", loss_kind: str = "mean", *, seed: int = 0):
        """(loss draws, downstream draws), both samples x rows, paired draw by draw."""
        loss, rate, _, _ = self._draws(df, kind, loss_kind, seed)
        return loss, rate

    def _draws(self, df, kind, loss_kind, seed):
        """The paired draws, the loss fit's prediction table and the chain's notes: the loss
        fit's, the downstream fit's, and where the chained loss leaves the downstream fit's losses."""
        seed = check_seed(seed)
        if loss_kind not in KINDS:
            raise BayescaleError(f"loss_kind must be 'mean' or 'observation', got {loss_kind!r}")
        df = df.drop(columns=["loss"], errors="ignore")
        table, loss = self.loss_fit.predict(df, levels=(0.5,), kind=loss_kind, seed=seed, return_draws=True)
        loss = loss.values[np.random.default_rng([seed, 7]).permutation(loss.shape[0])]
        notes: list[str] = []
        rate = rate_draws(self.downstream_fit, df, kind, seed=seed + 1, inputs={"loss": loss}, notes=notes)
        for note in notes:
            warnings.warn(note, BayescaleWarning, stacklevel=4)
        medians = pd.DataFrame({"loss": np.median(loss, axis=0)})
        for _, (dist, lo, hi) in predictive.linear_beyond(self.downstream_fit, medians).items():
            if (dist > 0).any():
                notes.append(f"{int((dist > 0).sum())} row(s) have a chained loss (median) outside the downstream "
                             f"fit's losses [{lo:.4g}, {hi:.4g}] (up to {dist.max():.3g} beyond)")
        notes = [f"loss fit: {n}" for n in table.attrs.get("notes", [])] + notes
        return loss[: len(rate)], rate, table, notes

    def predict(self, df: pd.DataFrame, levels=(0.5, 0.9), kind: str = "mean", loss_kind: str = "mean",
                *, seed: int = 0, return_draws: bool = False):
        """``df`` plus the downstream response's mean, median and intervals (and ``loss_*`` columns).

        ``kind`` is the downstream curve ("mean") or a new run's measured rate ("observation",
        needs ``trials``); ``loss_kind`` whether the loss is the loss fit's curve or a new run's loss.
        """
        levels = check_levels(levels)
        loss, rate, table, notes = self._draws(df, kind, loss_kind, seed)
        out = df.copy()   # the caller's index kept, as Fit.predict keeps it
        for col in ("decades_beyond_data", "decades_beyond_group"):   # beyond the loss fit's runs
            if col in table:
                out[col] = table[col].to_numpy()
        for col, v in interval_columns(loss, levels, prefix="loss_").items():
            out[col] = v
        for col, v in interval_columns(rate, levels).items():
            out[col] = v
        out.attrs.update(kind=kind, loss_kind=loss_kind, n_draws=len(rate), notes=notes)
        if return_draws:
            return out, xr.DataArray(rate, dims=("sample", "row"), name=self.downstream_fit.law.response,
                                     attrs={"kind": kind, "loss_kind": loss_kind})
        return out


def chain(loss_fit, downstream_fit) -> Chain:
    """Chain a loss fit (Fit or saved path) into a downstream fit of the loss; see :class:`Chain`."""
    return Chain(loss_fit, downstream_fit)
