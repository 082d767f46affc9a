"""Law uncertainty: several laws fitted to the same runs, predicting as their stacking mixture.

Two laws can both fit a ladder and still disagree far beyond it (on Epoch, chinchilla and farseer
give non-overlapping 90% intervals at 70B parameters / 1.4T tokens). A :class:`StackedFit` holds
one :class:`bayescale.Fit` per candidate law and weighs them by PSIS-LOO stacking on the fitted
runs (Yao, Vehtari, Simpson & Gelman 2018): the weights that best predict each left-out run. Its
predictions draw each posterior draw from one law, picked with its weight, so the intervals carry
the laws' disagreement as well as each law's own uncertainty. Held-out runs are never used.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from .checks import check_seed, law_seed
from .comparison import PARETO_K_BAD
from .errors import BayescaleError, BayescaleWarning, caller_stacklevel
from .files import check_fit_name, write_atomically
from .integrity import damaged, json_digest, stamp
from .predict import central_width, check_levels, interval_columns, summary_frame
from .results import Fit, load_idata, tokens_table

STACK_ATTR = "bayescale_stack"
# what a Fit holds for its one posterior, which a mixture of laws has no single value of
ONE_LAW_ONLY = ("idata", "posterior", "group", "law", "spec", "config", "logref", "pooled", "ranges", "n_draws",
                "draws", "posterior_predictive", "fitted_rows", "sampling_problems")


class OneLawOnly(BayescaleError, AttributeError):
    """A Fit's attribute asked of a stacked fit: an error that says where to look, and still an
    AttributeError, so ``hasattr`` and ``getattr(..., default)`` keep working."""


class StackedFit:
    """Fits of several laws to the same runs, mixed by PSIS-LOO stacking weights."""

    def __init__(self, fits: dict[str, Fit], weights: dict[str, float] | None = None):
        if len(fits) < 2:
            raise BayescaleError(f"a stacked fit needs at least two laws, got {list(fits)}")
        hashes = {name: f.config["data_hash"] for name, f in fits.items()}
        if len(set(hashes.values())) > 1:
            raise BayescaleError(f"stacked fits must be fitted to the same runs; data hashes differ: {hashes}")
        self.fits = dict(fits)
        self._loos = pointwise_loo(self.fits)
        self._stacking = stacking_weights(self.fits, self._loos)   # also for weights given (a saved stack's)
        self.weights = self._stacking if weights is None else weights
        self._reliability_notes = loo_reliability_notes(self._loos)

    @property
    def stack_notes(self) -> list[str]:
        """Notes about the weights (not one law), for the weights as they are now: weights set by
        hand are not said to be stacking's."""
        mine = self.weights
        by_stacking = all(abs(mine[k] - self._stacking[k]) < 1e-6 for k in mine)
        return self._reliability_notes + (decisive_weight_notes(self._loos, mine) if by_stacking else [])

    @property
    def weights(self) -> dict[str, float]:
        return dict(self._weights)   # a copy: changing it does not change the stack

    @weights.setter
    def weights(self, weights: dict) -> None:
        self._weights = checked_weights(weights, self.fits)

    def __getattr__(self, name: str):
        if name in ONE_LAW_ONLY:
            laws = list(self.__dict__.get("fits", {}))
            example = f"stack.fits[{laws[0]!r}].{name}" if laws else f"stack.fits[NAME].{name}"
            raise OneLawOnly(f"a stacked fit has no single {name}: it mixes the laws {laws} by their stacking "
                             f"weights, and each law's fit has its own; read one law's as {example} "
                             "(the mixture's predictions: stack.predict, stack.optimal_allocation, stack.summary)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---- what a Fit offers, for the mixture ---------------------------------------------------
    @property
    def law_spec(self) -> str:
        return " + ".join(f"{name} ({w:.2f})" for name, w in self.weights.items())

    @property
    def response(self) -> str:
        return next(iter(self.fits.values())).law.response

    @property
    def has_discrepancy(self) -> bool:
        return any(f.has_discrepancy for f in self.fits.values())

    @property
    def diagnostics(self) -> dict:
        return {name: f.diagnostics for name, f in self.fits.items()}

    @property
    def notes(self) -> list[str]:
        return self.stack_notes + [f"{name}: {n}" for name, f in self.fits.items() for n in f.notes]

    def __repr__(self) -> str:
        return f"<bayescale.StackedFit {self.law_spec}>"

    def _mixture(self, draws: dict[str, np.ndarray], seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Draws of the mixture (as many as the smallest fit has) and which law each came from."""
        rng = np.random.default_rng([seed, 11])
        n = min(len(d) for d in draws.values())
        names = list(draws)
        counts = rng.multinomial(n, [self.weights[k] for k in names])
        parts = [draws[k][rng.choice(len(draws[k]), size=c, replace=False)] for k, c in zip(names, counts)]
        which = np.repeat(np.arange(len(names)), counts)
        order = rng.permutation(n)
        return np.concatenate(parts)[order], which[order]

    def predict(self, df: pd.DataFrame, levels=(0.5, 0.9), kind: str = "observation", *, seed: int = 0,
                columns: dict | None = None, return_draws: bool = False):
        """As :meth:`bayescale.Fit.predict`, for the mixture; a new run's width shares gain
        ``share_law`` (the laws' disagreement)."""
        levels, seed = check_levels(levels), check_seed(seed)
        seeds = {name: law_seed(seed, i) for i, name in enumerate(self.fits)}
        both = self._each_law(lambda name, f: f.predict(df, levels=levels, kind=kind, seed=seeds[name],
                                                        columns=columns, return_draws=True))
        tables = {name: table for name, (table, _) in both.items()}
        per_law = {name: da.values for name, (_, da) in both.items()}
        draws, _ = self._mixture(per_law, seed)
        first = next(iter(tables.values()))
        out = first[[c for c in first.columns if c in df.columns or c == "compute"]].copy()
        for col, v in interval_columns(draws, levels).items():
            out[col] = v
        if kind == "observation":
            w = self.weights
            if not all(f.law.observation.new_value_has_mean for f in self.fits.values()):
                # the mixture's draws have no mean either (see predict.NO_MEAN_NOTE): the laws' means, weighted
                out["mean"] = sum(w[k] * tables[k]["mean"].to_numpy() for k in per_law)
            # squared 90 % widths, as predict.width_shares: each law's own width split by its
            # shares, and the laws' disagreement as what the mixture's width adds beyond them
            within = {k: central_width(per_law[k]) ** 2 for k in per_law}
            parts = {"law": np.maximum(central_width(draws) ** 2 - sum(w[k] * within[k] for k in per_law), 0.0)}
            for part in ("parameters", "discrepancy", "noise"):
                parts[part] = sum(w[k] * tables[k][f"share_{part}"].to_numpy() * within[k] for k in per_law)
            scale = sum(parts.values())
            for part in ("parameters", "discrepancy", "noise", "law"):
                out[f"share_{part}"] = np.where(scale > 0, parts[part] / np.where(scale > 0, scale, 1.0), np.nan)
        for col in ("decades_beyond_data", "decades_beyond_group"):   # last, as one law's table has them
            if col in first:
                out[col] = first[col].to_numpy()
        out.attrs["notes"] = merged_law_notes({k: t.attrs.get("notes", []) for k, t in tables.items()})
        out.attrs["kind"] = kind
        out.attrs["weights"] = dict(self.weights)
        if return_draws:
            return out, xr.DataArray(draws, dims=("sample", "row"), name=self.response,
                                     attrs={"kind": kind, "law": self.law_spec})
        return out

    def optimal_allocation(self, compute, levels=(0.5, 0.9), *, seed: int = 0, **labels) -> pd.DataFrame:
        """N*(C), D*(C) and L*(C) of the mixture: each draw from one law, picked with its weight."""
        levels = check_levels(levels)
        seed = check_seed(seed)
        seeds = {name: law_seed(seed, i) for i, name in enumerate(self.fits)}   # as predict gives each law
        both = self._each_law(lambda name, f: f.allocation_draws(compute, seed=seeds[name], **labels))
        per_law = {name: draws for name, (draws, _) in both.items()}
        rows = []
        for c in next(iter(per_law.values())):
            mixed = {}
            for q in ("params", "tokens", "loss", "tokens_per_param"):
                mixed[q], _ = self._mixture({k: per_law[k][c][q] for k in per_law}, seed)
            rows.append({"compute": c, **summary_frame(mixed, levels)})
        out = pd.DataFrame(rows)
        out.attrs["notes"] = merged_law_notes({name: notes for name, (_, notes) in both.items()})
        out.attrs["weights"] = dict(self.weights)
        return out

    def min_loss(self, levels=(0.5, 0.9), *, seed: int = 0, **labels) -> pd.DataFrame:
        """The mixture's lowest reachable loss (each law's asymptote E, drawn by the weights)."""
        levels = check_levels(levels)
        seed = check_seed(seed)
        seeds = {name: law_seed(seed, i) for i, name in enumerate(self.fits)}
        both = self._each_law(lambda name, f: f.min_loss_draws(seed=seeds[name], **labels))
        mixed, _ = self._mixture({name: floor for name, (floor, _) in both.items()}, seed)
        out = pd.DataFrame([summary_frame({"loss": mixed}, levels)])
        out.attrs["notes"] = merged_law_notes({name: notes for name, (_, notes) in both.items()})
        out.attrs["weights"] = dict(self.weights)
        return out

    def tokens_for_loss(self, target, params, levels=(0.5, 0.9), *, seed: int = 0, **labels) -> pd.DataFrame:
        """As :meth:`bayescale.Fit.tokens_for_loss`, for the mixture: each draw's tokens and loss
        floor from one law, picked with its weight (so a target one law cannot reach counts as
        unreachable in that law's share of the draws)."""
        levels = check_levels(levels)
        seed = check_seed(seed)
        seeds = {name: law_seed(seed, i) for i, name in enumerate(self.fits)}
        both = self._each_law(lambda name, f: f.tokens_draws(target, params, seed=seeds[name], **labels))
        first = next(iter(both.values()))
        keys, sizes = list(first[0]), list(first[1])
        # one mixture of whole draws (every quantity of a draw from the same law), columns:
        # the tokens at each (N, target), then the floor at each N
        per_law = {name: np.column_stack([d[k] for k in keys] + [f[n] for n in sizes])
                   for name, (d, f, _) in both.items()}
        mixed, _ = self._mixture(per_law, seed)
        draws = {k: mixed[:, i] for i, k in enumerate(keys)}
        floors = {n: mixed[:, len(keys) + i] for i, n in enumerate(sizes)}
        out = tokens_table(draws, floors, levels,
                           merged_law_notes({name: notes for name, (_, _, notes) in both.items()}))
        out.attrs["weights"] = dict(self.weights)
        return out

    def _each_law(self, call) -> dict:
        """``call(name, fit)`` for every law; the laws' warnings said as :func:`merged_law_notes`
        says notes (once when every law gives it, else with the law's name)."""
        results, said = {}, {}
        for name, f in self.fits.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                results[name] = call(name, f)
            said[name] = caught
        ours = {name: [str(w.message) for w in caught if issubclass(w.category, BayescaleWarning)]
                for name, caught in said.items()}
        category = {str(w.message): w.category for caught in said.values() for w in caught}
        level = caller_stacklevel(os.path.dirname(__file__))
        for text in merged_law_notes(ours):
            plain = text.partition(": ")[2]   # a law's own warning, after its name
            warnings.warn(text, category.get(text, category.get(plain, BayescaleWarning)), stacklevel=level)
        for caught in said.values():   # others (NumPy's, ArviZ's) as they were
            for w in caught:
                if not issubclass(w.category, BayescaleWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return results

    def summary(self) -> pd.DataFrame:
        """One block of parameter rows per law, with its stacking weight."""
        parts = []
        for name, f in self.fits.items():
            table = f.summary()
            table.insert(0, "weight", self.weights[name])
            table.index = pd.MultiIndex.from_product([[name], table.index], names=["law", "parameter"])
            parts.append(table)
        return pd.concat(parts)

    # ---- persistence: one netCDF, each law's groups under its name -------------------------------
    def save(self, path) -> Path:
        """Write every law's InferenceData into one netCDF file (groups ``<law>/<group>``), atomically."""
        check_fit_name(path)
        def write(tmp):
            meta = {"laws": list(self.fits), "weights": self.weights}
            meta["checksum"] = _meta_checksum(meta)
            xr.Dataset(attrs={STACK_ATTR: json.dumps(meta)}).to_netcdf(tmp, mode="w", engine="h5netcdf")
            for name, f in self.fits.items():
                with stamp(f.idata):
                    for group in f.idata.groups():
                        f.idata[group].to_netcdf(tmp, mode="a", group=f"{name}/{group}", engine="h5netcdf")

        return write_atomically(path, write, example="stack.nc")


def merged_law_notes(per_law: dict[str, list[str]]) -> list[str]:
    """The laws' notes, each said once: a note every law gives as it is, any other after its law's
    name (the laws' notes differ where their parameters do, e.g. which one a new group draws)."""
    lists = [list(dict.fromkeys(v)) for v in per_law.values()]
    shared = [n for n in lists[0] if all(n in other for other in lists[1:])] if lists else []
    return shared + [f"{name}: {n}" for name, notes in zip(per_law, lists) for n in notes if n not in shared]


def checked_weights(weights: dict, fits: dict) -> dict[str, float]:
    """Given weights, one per law, non-negative and summing to 1 (to rounding)."""
    example = "{" + ", ".join(f"{k!r}: {1 / len(fits):.2g}" for k in fits) + "}"
    if not isinstance(weights, dict):
        raise BayescaleError(f"weights must be a dict from law name to weight, e.g. {example}; got a "
                             f"{type(weights).__name__}")
    if set(weights) != set(fits):
        raise BayescaleError(f"weights must give one number per law {sorted(fits)}, got {sorted(weights)}; "
                             f"e.g. {example}")
    w = {k: float(weights[k]) for k in fits}
    if not all(np.isfinite(v) and v >= 0 for v in w.values()) or abs(sum(w.values()) - 1.0) > 1e-6:
        raise BayescaleError(f"weights must be non-negative and sum to 1, got {w}; divide each by their sum "
                             f"({sum(w.values()):.6g}) if they are relative")
    return w


def pointwise_loo(fits: dict[str, Fit]) -> dict:
    """Each fit's PSIS-LOO (ArviZ), computed once for the weights and the reliability notes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # Pareto-k warnings: said by loo_reliability_notes
        return {k: az.loo(f.idata, pointwise=True) for k, f in fits.items()}


def stacking_weights(fits: dict[str, Fit], loos: dict | None = None) -> dict[str, float]:
    """PSIS-LOO stacking weights of fits to the same runs (ArviZ's ``compare``)."""
    loos = pointwise_loo(fits) if loos is None else loos
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # Pareto-k warnings: see loo_reliability_notes
        table = az.compare(loos, ic="loo", method="stacking")
    w = {k: max(float(table.loc[k, "weight"]), 0.0) for k in fits}   # the optimiser's -1e-17 is 0
    total = sum(w.values())
    return {k: v / total for k, v in w.items()}


def decisive_weight_notes(loos: dict, weights: dict) -> list[str]:
    """A note when stacking puts (nearly) all the weight on one law although its lead in ELPD over
    another lies within two standard errors (of the paired pointwise difference): the mixture then
    carries almost none of the laws' disagreement, which the data do not rule out."""
    top = max(weights, key=weights.get)
    if weights[top] < 0.99:
        return []
    out = []
    best = np.asarray(loos[top].loo_i).ravel()
    for name in loos:
        if name == top:
            continue
        diff = best - np.asarray(loos[name].loo_i).ravel()
        lead, se = float(diff.sum()), float(np.sqrt(diff.size * diff.var()))
        if lead < 2 * se:
            out.append(f"stacking gives {top} {weights[top]:.2f} of the weight, though its ELPD lead over {name} "
                       f"({lead:.1f} ± {se:.1f}) is within two standard errors: the mixture carries almost none of "
                       "their disagreement. To keep it, set the weights yourself, e.g. equal (CLI: predict, allocate, "
                       "report or plan --weights LAW=W,...; Python: stack.weights = {...})")
    return out


def loo_reliability_notes(loos: dict) -> list[str]:
    """The laws whose PSIS-LOO (:func:`pointwise_loo`) has runs with Pareto k above PARETO_K_BAD
    (the threshold of bayescale.compare): the stacking weights rest on those estimates (ArviZ's
    warning is silenced, so the stack says it here)."""
    out = []
    for name, loo in loos.items():
        k = np.asarray(loo.pareto_k).ravel()
        bad = int(np.sum(k > PARETO_K_BAD))
        if bad:
            out.append(f"{name}: PSIS-LOO is unreliable at {bad} of {k.size} runs (Pareto k > {PARETO_K_BAD}), and the "
                       "stacking weights rest on it: read them as a guide, not a verdict (bayescale.compare(stack), CLI "
                       "`bayescale compare STACK.nc`, gives the ELPD differences with their standard errors)")
    return out


def read_stack(path: Path) -> StackedFit | None:
    """The stacked fit saved at ``path``, or None when the file holds a single fit."""
    try:
        root = xr.open_dataset(path, engine="h5netcdf")
        meta = root.attrs.get(STACK_ATTR)
        root.close()
    except (OSError, ValueError):
        return None
    if meta is None:
        return None
    meta = json.loads(meta)
    recorded = meta.pop("checksum", None)
    if recorded is not None and recorded != _meta_checksum(meta):
        raise damaged(path, "its list of laws and weights does not match the checksum written with it")
    fits = {name: Fit(load_idata(path, prefix=f"{name}/")) for name in meta["laws"]}
    return StackedFit(fits, meta["weights"])


def _meta_checksum(meta: dict) -> str:
    return json_digest({k: meta[k] for k in ("laws", "weights")})
