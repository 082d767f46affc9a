"""Fit: the posterior of one law on one table, with summary, predict, allocation and save/load."""
from __future__ import annotations

import json
import platform
import threading
import warnings
from pathlib import Path

import arviz as az
from arviz.data.base import make_attrs
import jax
import numpyro
import numpy as np
import pandas as pd
import xarray as xr
from . import __version__, discrepancy, group_offset
from .models import coordinates as law_coordinates
from . import predict as predictive
from .data import GROUP_COLUMNS, Dataset
from .design import centre, extra_columns
from .errors import BayescaleError, UnreliableSampling, UnreliableSamplingError
from .files import check_fit_name, write_atomically
from .integrity import stamp, verify
from .spec import ModelSpec
from .predict import check_levels, check_quantiles, label_draws, label_offset, shifted, stacked, summary_frame

QUANTILES = (0.025, 0.05, 0.5, 0.95, 0.975)
RHAT_MAX, ESS_MIN = 1.01, 400
# The posterior_predictive group holds two float32 variables of chains x draws x rows each; above
# this many cells (400 MB for the two, e.g. 4,000 draws x 12,500 rows) a fit leaves it out and says
# so in its notes: a 200,000-row table at 4,000 draws would need 6.4 GB in memory and on disk.
PREDICTIVE_MAX_CELLS = 50_000_000
PREDICTIVE_BLOCK_CELLS = 1 << 20   # draws x rows drawn at once (float64 intermediates stay ~10 MB each)
PREDICTIVE_STREAM = 0x70707063     # the predictive's random stream: apart from predict(seed=...)'s


def latent_names(spec: ModelSpec, posterior: xr.Dataset) -> list[str]:
    """The sampled variables of a posterior (fixed parameters and derived quantities left out)."""
    names = [k for k in spec.law.all_params()
             if k in posterior and type(spec.priors[k]).__name__ != "Delta"]
    for k in spec.pooled:
        names += [f"{k}_tau", f"{k}_{'u' if k in spec.centred else 'z'}"]
    if spec.discrepancy is not None:
        names += [discrepancy.SCALE] + ([discrepancy.STEPS] if spec.discrepancy.size else [])
    for term in spec.offsets:
        names += [term.scale_name, term.steps_name]
    return names


def rhat_and_ess(post: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    """ArviZ's rank-normalised r_hat and bulk ESS. r_hat needs two chains: with one it is NaN
    (ArviZ would log a shape warning before saying so)."""
    ess = az.ess(post, method="bulk")
    if post.sizes["chain"] < 2:
        return post.isel(chain=0, draw=0, drop=True).astype(np.float64) * np.nan, ess
    return az.rhat(post), ess


def sampling_diagnostics(idata: az.InferenceData, names: list[str]) -> dict:
    """Max rank-normalised split r_hat and min bulk ESS over ``names``, divergences and mean
    leapfrog steps per draw."""
    post = idata.posterior[names]
    rhat, ess = rhat_and_ess(post)
    stats = idata.sample_stats
    return {
        "max_rhat": float(max(float(rhat[v].max()) for v in rhat.data_vars)),
        "min_ess_bulk": float(min(float(ess[v].min()) for v in ess.data_vars)),
        "divergences": int(stats["diverging"].sum()),
        "mean_steps_per_draw": float(stats["n_steps"].mean()),
    }


# what to do when the sampling checks fail: said by the fit's warning and wherever its numbers are shown
SAMPLING_REMEDY = "Run more warmup/draws, raise target_accept (CLI --target-accept), or simplify the pooling"


REFERENCE_SYMBOL = {"params": "N0", "tokens": "D0", "compute": "C0"}   # the reference scales as formulas write them
MIN_GRID = 101   # search points per iso-FLOP line: e^±10 at steps of 0.2 in log N, refined by a parabola


class Fit:
    """A fitted law. ``fit.idata`` is the ArviZ InferenceData (labelled dims), ``fit.posterior`` its
    posterior group."""

    def __init__(self, idata: az.InferenceData):
        if "posterior" not in idata.groups() or "bayescale" not in idata.posterior.attrs:
            raise BayescaleError("this InferenceData was not written by bayescale (no 'bayescale' attrs)")
        self._idata = idata
        self._predictive_pending = False
        self._predictive_lock = threading.Lock()
        self.config = json.loads(idata.posterior.attrs["bayescale"])
        self.spec = ModelSpec.from_json(self.config)
        self.law = self.spec.law
        missing = [k for k in self.law.params if k not in idata.posterior]
        if missing:   # saved before the law gained a parameter (accuracy-sigmoid's floor, from 0.2.0)
            saved = self.config.get("versions", {}).get("bayescale", "an unknown version")
            raise BayescaleError(
                f"this fit has no draws of {missing}, parameter(s) of law {self.law.spec!r} in bayescale "
                f"{__version__}; it was saved by bayescale {saved}, whose law differed. Refit the table with "
                "this version (or predict with the version that saved it)"
                + ("; priors={'floor': 'Delta(0.0)'} refits the 0.1.0 law, which had no floor"
                   if missing == ["floor"] and self.law.name == "accuracy-sigmoid" else ""))
        if "_derived" not in idata.posterior.attrs:
            self._add_derived()

    def __getstate__(self) -> dict:   # copies and pickles get a lock of their own
        return {k: v for k, v in self.__dict__.items() if k != "_predictive_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _predictive_lock=threading.Lock())

    # ---- views ----------------------------------------------------------------------------
    @property
    def idata(self) -> az.InferenceData:
        """The whole ArviZ InferenceData: posterior, sample_stats, log_likelihood, observed_data,
        constant_data and posterior_predictive. A fit drawn with its posterior predictive deferred
        (see :meth:`add_posterior_predictive`) draws it here, on first access."""
        if self._predictive_pending:
            with self._predictive_lock:   # two threads touching a fit at once draw it once
                if self._predictive_pending:
                    self._idata.add_groups(posterior_predictive=self.posterior_predictive())
                    self._predictive_pending = False
        return self._idata

    def group(self, name: str) -> xr.Dataset:
        """One group of ``idata`` (e.g. "constant_data", "sample_stats"), without drawing a
        deferred posterior predictive."""
        return self.idata[name] if name == "posterior_predictive" else self._idata[name]

    @property
    def posterior(self) -> xr.Dataset:
        """The posterior group (draws of every sampled and derived variable); ``idata`` is the whole
        ArviZ InferenceData."""
        return self._idata.posterior

    @property
    def law_spec(self) -> str:
        return self.law.spec

    @property
    def response(self) -> str:
        return self.law.response

    @property
    def logref(self) -> dict[str, float]:
        """log of each input's reference scale (N0, D0, ...), or the reference itself for linear inputs."""
        return self.spec.logref

    @property
    def reference_scales(self) -> dict[str, float]:
        """Each input's reference scale in its own units (N0 in parameters, D0 in tokens, ...; a
        linear input's reference as it is): the law is written about them (``A·(N/N0)^-alpha``),
        so ``log_A0`` is the N-term's log there, and a prior on it depends on them."""
        return {k: (float(v) if k in self.law.linear_inputs else float(np.exp(v))) for k, v in self.logref.items()}

    @property
    def pooled(self) -> dict[str, str]:
        return self.spec.pooled

    @property
    def has_discrepancy(self) -> bool:
        return self.spec.discrepancy is not None

    @property
    def ranges(self) -> dict[str, list[float]]:
        """The fitted runs' range along each axis of :func:`bayescale.discrepancy.coordinates`
        (compute and tokens per parameter for laws in N and D), centred, natural-log units."""
        if self.spec.ranges is None:   # fits saved before ranges were recorded: from their data
            x = centre(self.law, {k: self._idata.constant_data[k].values for k in self.law.inputs}, self.logref)
            self.spec.ranges = {k: [float(v.min()), float(v.max())]
                                for k, v in discrepancy.coordinates(self.law.inputs, x).items()}
        return self.spec.ranges

    @property
    def group_ranges(self) -> dict | None:
        """Per grouping and label, that group's own runs' range along each axis of :attr:`ranges`
        (None for fits saved before it was recorded)."""
        return self.spec.group_ranges

    @property
    def n_draws(self) -> int:
        post = self._idata.posterior
        return post.sizes["chain"] * post.sizes["draw"]

    @property
    def notes(self) -> list[str]:
        return list(self.config.get("notes", []))

    def __repr__(self) -> str:
        d = self.diagnostics
        return (f"<bayescale.Fit law={self.law.spec} n_obs={self.config['n_obs']} pooled={self.spec.pooled} "
                f"max_rhat={d['max_rhat']:.3f} min_ess_bulk={d['min_ess_bulk']:.0f} divergences={d['divergences']}>")

    def _group_value_name(self, name: str) -> str:
        g = self.spec.pooled.get(name)
        return name if g is None else f"{name}_by_{g}"

    def _add_derived(self) -> None:
        post = self._idata.posterior
        law_params = list(self.law.params)
        population = {k: post[k] for k in law_params}
        by_group = {k: post[self._group_value_name(k)] for k in law_params}
        new = {}
        for name, value in self.law.derived(population, self.spec.logref).items():
            new[name] = value
        if self.spec.pooled:
            for name, value in self.law.derived(by_group, self.spec.logref).items():
                extra = [d for d in value.dims if d not in ("chain", "draw")]
                if extra:
                    new[f"{name}_by_{'_'.join(extra)}"] = value
        for name, value in new.items():
            post[name] = value.astype(np.float64)
        post.attrs["_derived"] = json.dumps(sorted(new))

    @property
    def derived_names(self) -> list[str]:
        return json.loads(self._idata.posterior.attrs["_derived"])

    def latent_names(self) -> list[str]:
        return latent_names(self.spec, self._idata.posterior)

    @property
    def diagnostics(self) -> dict:
        return sampling_diagnostics(self._idata, self.latent_names())

    def sampling_problems(self) -> list[str]:
        """What the convergence diagnostics flag (empty when r_hat, bulk ESS and divergences pass)."""
        d = self.diagnostics
        problems = []
        if not np.isfinite(d["max_rhat"]):
            problems.append("r_hat not computable with one chain")
        elif d["max_rhat"] > RHAT_MAX:
            problems.append(f"max r_hat {d['max_rhat']:.3f} > {RHAT_MAX}")
        if d["min_ess_bulk"] < ESS_MIN:
            problems.append(f"min bulk ESS {d['min_ess_bulk']:.0f} < {ESS_MIN}")
        if d["divergences"]:
            problems.append(f"{d['divergences']} divergent transitions")
        return problems

    def warn_diagnostics(self, strict: bool = False) -> None:
        """Warn (or with ``strict``, raise :class:`UnreliableSamplingError`) when the diagnostics fail;
        either carries this fit as ``.fit``."""
        problems = self.sampling_problems()
        if not problems:
            return
        stats = self.config.get("stats", {})
        if stats.get("draws_per_chain", 0) > stats.get("draws_requested", stats.get("draws_per_chain", 0)):
            problems.append(f"after continuing the chains to {stats['draws_per_chain']} draws each")
        message = "sampling looks unreliable: " + "; ".join(problems) + f". {SAMPLING_REMEDY}."
        if strict:
            raise UnreliableSamplingError(message, fit=self)
        warnings.warn(UnreliableSampling(message, fit=self), stacklevel=3)

    # ---- summary ----------------------------------------------------------------------------------
    def summary_names(self) -> list[str]:
        names = []
        for k in self.law.all_params():
            names.append(k)
            if k in self.spec.pooled:
                names += [self._group_value_name(k), f"{k}_tau"]
        if self.spec.discrepancy is not None:
            names.append(discrepancy.SCALE)
        for term in self.spec.offsets:
            names += [term.scale_name, term.value_name]
        return names + self.derived_names

    def summary(self, quantiles=QUANTILES) -> pd.DataFrame:
        """Mean, sd, quantiles, r_hat and bulk ESS, indexed 'alpha', 'alpha[<group>]', 'A', ..."""
        quantiles = check_quantiles(quantiles)
        post = self._idata.posterior[self.summary_names()]
        rhat, ess = rhat_and_ess(post)
        rows = {}
        for name in post.data_vars:
            da = post[name]
            base = name.split("_by_")[0]
            extra = [d for d in da.dims if d not in ("chain", "draw")]
            flat = da.stack(sample=("chain", "draw")).transpose(*extra, "sample")
            labels = [()] if not extra else list(np.ndindex(*[da.sizes[d] for d in extra]))
            for pos in labels:
                values = np.asarray(flat.values[pos] if pos else flat.values, dtype=np.float64)
                key = base if not extra else base + "[" + ", ".join(
                    str(da[d].values[i]) for d, i in zip(extra, pos)) + "]"
                row = {"mean": values.mean(), "sd": values.std(ddof=1)}
                for q, v in zip(quantiles, np.quantile(values, quantiles)):
                    row[f"{q * 100:g}%"] = v
                row["r_hat"] = float(rhat[name].values[pos] if pos else rhat[name].values)
                row["ess_bulk"] = float(ess[name].values[pos] if pos else ess[name].values)
                rows[key] = row
        return pd.DataFrame.from_dict(rows, orient="index")

    # ---- prediction (bayescale.predict) ------------------------------------------------------
    def draws(self, name: str) -> np.ndarray:
        """Posterior draws of one variable, chains stacked: (samples, ...), float64."""
        return stacked(self._idata.posterior, name)

    def param_draws(self, frame: pd.DataFrame, rng: np.random.Generator, notes: list[str],
                    typical: bool = False) -> dict[str, np.ndarray]:
        """Per-row parameter draws (samples x rows); see :func:`bayescale.predict.group_parameter_draws`."""
        return predictive.group_parameter_draws(self, frame, rng, notes, typical)

    def discrepancy_draws(self, x: dict, n: int, rng, frame: pd.DataFrame, notes: list[str]) -> np.ndarray | None:
        """Draws (n x rows) of the model-discrepancy term at centred inputs ``x``, or None when the
        fit has none. With a walk per group, each row of ``frame`` follows its group's walk; a group
        the fit has not seen gets a walk drawn from the prior, with the fitted scale."""
        disc = self.spec.discrepancy
        if disc is None:
            return None
        scale = self.draws(discrepancy.SCALE)[:n]
        if disc.size:
            steps = self.draws(discrepancy.STEPS)[:n]
        else:       # no fitted knots: no increments were sampled
            steps = np.zeros((len(scale), 0) if not disc.group else (len(scale), disc.n_groups, 0))
        if not disc.group:
            return discrepancy.predict_term(disc, scale, steps, x, rng)
        labels = frame[disc.group].astype(str).tolist() if disc.group in frame else [""] * len(frame)
        columns, unseen = predictive.label_indices(self.spec.coords[disc.group], labels)
        if unseen:
            steps = np.concatenate([steps, rng.standard_normal((len(steps), len(unseen), steps.shape[2]))], axis=1)
            notes.append(predictive.unseen_labels_note(disc.group, unseen, "their discrepancy walk is drawn from "
                                                       "its prior, with the fitted scale"))
        return discrepancy.predict_term(disc, scale, steps, x, rng, columns)

    def offset_draws(self, frame: pd.DataFrame, n: int, rng, notes: list[str]) -> np.ndarray | None:
        """Draws (n x rows) of the group offsets, summed over the terms, at the rows of ``frame`` (a
        new draw from a term's spread for a group the fit has not seen), or None when the fit has none."""
        if not self.spec.offsets:
            return None
        return sum(group_offset.predict_term(t, self.spec.coords[t.dim], self.draws(t.value_name)[:n],
                                             self.draws(t.scale_name)[:n], frame, rng, notes)
                   for t in self.spec.offsets)

    def fitted_rows(self) -> pd.DataFrame:
        """The fitted runs as a table (inputs, per-row columns, group labels), from constant_data."""
        names = [*self.law.inputs, *self.law.extras, *GROUP_COLUMNS]
        const = self._idata.constant_data if "constant_data" in self._idata.groups() else {}
        missing = [k for k in names if k not in const]
        if missing:
            raise BayescaleError(f"this fit does not record its fitted rows (constant_data lacks {missing}), "
                                 "so it cannot draw new observations at them")
        return pd.DataFrame({k: const[k].values for k in names})

    def posterior_predictive(self, seed: int | None = None) -> xr.Dataset:
        """New measurements at the fitted runs, one per posterior draw (chain, draw, obs; float32),
        drawn as :meth:`predict` draws ``kind="observation"``: ``y`` on the likelihood's scale
        (that of ``observed_data.y`` and ``log_likelihood.y``, e.g. log loss) and the response on
        its own scale (e.g. ``loss``), each labelled by its ``scale`` attribute. ``seed`` defaults
        to the fit's; the same seed gives the same draws."""
        seed = int(self.config.get("seed", 0)) if seed is None else int(seed)
        frame = self.fitted_rows()
        law, obs = self.law, self.law.observation
        post = self._idata.posterior
        n, rows = self.n_draws, len(frame)
        site = np.empty((n, rows), np.float32)
        response = np.empty((n, rows), np.float32)
        rng = np.random.default_rng([seed, PREDICTIVE_STREAM])
        step = max(1, PREDICTIVE_BLOCK_CELLS // n)
        for start in range(0, rows, step):   # in blocks of rows: float64 intermediates stay small
            part = frame.iloc[start:start + step].reset_index(drop=True)
            # notes come only from unseen groups, and every fitted row's group is in the fit
            draws = predictive.response_draws(self, part, "observation", rng, [])
            response[:, start:start + step] = draws
            site[:, start:start + step] = obs.site_value(draws, extra_columns(part, law.extras))
        shape = (post.sizes["chain"], post.sizes["draw"], rows)
        coords = {"chain": post["chain"].values, "draw": post["draw"].values, "obs": np.arange(rows)}
        dims = ("chain", "draw", "obs")
        ds = xr.Dataset({"y": (dims, site.reshape(shape)), law.response: (dims, response.reshape(shape))},
                        coords=coords, attrs={"seed": seed})
        label_scales(ds, law)
        return ds

    def add_posterior_predictive(self, deferred: bool = False) -> None:
        """Add the posterior_predictive group (see :meth:`posterior_predictive`) to ``idata``, or
        for a table too large for it (PREDICTIVE_MAX_CELLS) a note saying how to draw it. Fits
        made by :func:`bayescale.fit` and :func:`bayescale.fit_many` have had it called with
        ``deferred=True``: the group is drawn on the first access to ``fit.idata`` (saving, ArviZ
        plots), with the fit's seed, so the draws are the same as drawn now; a sweep that only
        reads the posterior, predictions or diagnostics never pays for it (2,000 draws x 240 rows
        take about as long as the batched sampler's share of a fit). For a fit saved before the
        group existed, call it and save again."""
        if self._predictive_pending or "posterior_predictive" in self._idata.groups():
            return
        cells = self.n_draws * int(self.config["n_obs"])
        if cells > PREDICTIVE_MAX_CELLS:
            self._add_note(
                f"posterior_predictive left out: {self.n_draws} draws x {self.config['n_obs']} rows would take "
                f"{8 * cells / 1e9:.1f} GB; fit.posterior_predictive() draws it, or fit.predict(rows, "
                "return_draws=True) for chosen rows")
            return
        if deferred:
            self._predictive_pending = True
            return
        self._idata.add_groups(posterior_predictive=self.posterior_predictive())

    def _add_note(self, note: str) -> None:
        """Record a note in the fit's saved configuration (``fit.notes``)."""
        self.config["notes"] = [*self.config.get("notes", []), note]
        self._idata.posterior.attrs["bayescale"] = json.dumps(self.config)

    def new_observations(self, rng, mu, values, aux) -> np.ndarray:
        """New measurements at curve draws ``mu``, from the law's observation model."""
        return self.law.observation.sample(rng, mu, values, aux)

    def predict(self, df: pd.DataFrame, levels=(0.5, 0.9), kind: str = "observation", *, seed: int = 0,
                columns: dict | None = None, return_draws: bool = False):
        """Credible intervals at new points: ``df``'s columns plus mean, median, lower_50, upper_50, ...

        ``kind="observation"`` (default) is what a new run will measure: the expected response with
        the model discrepancy and the observation noise, plus the shares of its squared 90 % width from each
        (``share_parameters``, ``share_discrepancy``, ``share_noise``). ``kind="mean"`` is the
        expected response: the law's curve (with the model discrepancy, if the fit has one), or for
        laws with a chance floor (``accuracy-sigmoid``) the expected accuracy
        chance + (1 - chance)·curve, which needs column ``chance``; ``kind="curve"`` is the law's
        curve alone. ``decades_beyond_data`` says how far each row lies outside the fitted runs.
        With ``return_draws=True`` also returns the draws as an xarray DataArray (sample, row).
        The rows' draws are joint (one random stream, so a walk's bend is shared along its path and
        differences between rows keep their correlation): a row predicted alone and among others
        differs by Monte-Carlo error (a few thousandths of a loss at the defaults), not more.
        """
        return predictive.predict(self, df, levels, kind, seed=seed, columns=columns, return_draws=return_draws)

    # ---- compute-optimal allocation --------------------------------------------------------------
    def optimal_allocation(self, compute, levels=(0.5, 0.9), *, grid: int = 801, seed: int = 0,
                           **labels) -> pd.DataFrame:
        """N*(C), D*(C) and L*(C) minimising the law under C = 6·N·D, with credible intervals.

        Group labels (``family="x"``) select group values; without them the population's typical
        values are used (``seed``: the draw of a group the fit has not seen)."""
        levels = check_levels(levels)
        draws, notes = self.allocation_draws(compute, grid=grid, seed=seed, **labels)
        out = pd.DataFrame([{"compute": c, **summary_frame(d, levels)} for c, d in draws.items()])
        out.attrs["notes"] = notes
        return out

    def allocation_draws(self, compute, *, grid: int = 801, seed: int = 0, **labels) -> tuple[dict, list[str]]:
        """Per budget, draws of N*, D*, the loss there and D*/N* ({budget: {name: draws}}), and notes."""
        if not self.law.has_allocation:
            raise BayescaleError(
                f"law {self.law.spec!r} has inputs {list(self.law.inputs)}; compute-optimal allocation "
                "needs a law in params and tokens, e.g. 'chinchilla' or 'kaplan-nd'"
            )
        try:
            budgets = np.atleast_1d(np.asarray(compute, dtype=np.float64))
        except (TypeError, ValueError):
            raise BayescaleError(f"compute budgets must be positive finite FLOPs such as [1e22, 1e23], "
                                 f"got {compute!r}") from None
        if budgets.ndim != 1 or not np.all(np.isfinite(budgets)) or np.any(budgets <= 0):
            raise BayescaleError(f"compute budgets must be positive finite FLOPs, got {compute!r}")
        if len(np.unique(budgets)) != len(budgets):   # one row per budget: a repeat would drop a row
            raise BayescaleError(f"compute budgets must differ, got {list(budgets)}: give each budget once")
        if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < MIN_GRID:
            raise BayescaleError(f"grid must be a whole number of search points >= {MIN_GRID} along each budget's "
                                 f"iso-FLOP line (default 801), got {grid!r}")
        values, notes = label_draws(self, labels, seed)
        offset = label_offset(self, labels, notes, seed)   # a monotone shift: it moves L*, not N* or D*
        u = np.linspace(-10.0, 10.0, grid)
        out = {}
        edge_hits = 0
        for c in budgets:
            log_n = 0.5 * np.log(c / 6.0) + u   # along the iso-FLOP line 6ND = c
            loss = predictive.curve_at_sizes(self, log_n[None, :], np.log(c / 6.0) - log_n[None, :], values)
            loss = np.where(np.isfinite(loss), loss, np.inf)
            k = np.argmin(loss, axis=1)
            edge_hits += int(np.sum((k == 0) | (k == grid - 1)))
            kk = np.clip(k, 1, grid - 2)
            rr = np.arange(len(k))
            l0, l1, l2 = loss[rr, kk - 1], loss[rr, kk], loss[rr, kk + 1]
            denom = l0 - 2 * l1 + l2
            shift = np.where(denom > 0, 0.5 * (l0 - l2) / np.where(denom > 0, denom, 1.0), 0.0)
            best_u = u[kk] + np.clip(shift, -1, 1) * (u[1] - u[0])
            n_opt = np.exp(0.5 * np.log(c / 6.0) + best_u)
            d_opt = c / (6.0 * n_opt)
            l_opt = shifted(self, predictive.curve_at_sizes(self, np.log(n_opt)[:, None], np.log(d_opt)[:, None],
                                                            values)[:, 0], offset)
            out[float(c)] = {"params": n_opt, "tokens": d_opt, "loss": l_opt, "tokens_per_param": d_opt / n_opt}
        if edge_hits:
            notes.append(f"{edge_hits} draw(s) put the optimum at the edge of the search range "
                         "(tokens per parameter beyond e^±20): that law draw has no interior optimum")
        notes += self._budget_notes(budgets)
        return out, notes

    def _budget_notes(self, budgets: np.ndarray) -> list[str]:
        """What the loss column is, and how far the budgets lie from the fitted runs' compute."""
        const = getattr(self._idata, "constant_data", None)   # every fit has it; hand-built ones may not
        notes = ["loss is the law's expected loss at N* and D* (its curve, with the parameters' uncertainty only); "
                 "a new run's measured loss there varies more (model discrepancy and noise), as predict at "
                 "params=N*, tokens=D* gives it"]
        if const is None:
            return notes
        if {"params", "tokens"} <= set(const):
            fitted = 6.0 * const["params"].values * const["tokens"].values
        elif "compute" in const:
            fitted = const["compute"].values
        else:
            return notes
        lo, hi = float(np.min(fitted)), float(np.max(fitted))
        far = np.maximum(np.log10(budgets / hi), np.log10(lo / budgets))
        if np.any(far > 0.5):
            notes.append(f"{int(np.sum(far > 0.5))} budget(s) lie beyond the fitted runs' compute (6ND from "
                         f"{lo:.3g} to {hi:.3g} FLOP; up to {far.max():.1f} decades away): N* and D* extrapolate "
                         "the law's curve that far")
        return notes

    # ---- persistence --------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the fit as netCDF, atomically (temporary file + rename), with a checksum of every
        array and of the metadata, which :func:`bayescale.load` verifies."""
        check_fit_name(path)
        with stamp(self.idata):
            return write_atomically(path, self.idata.to_netcdf)

    # ---- derived quantities: asymptote and tokens for a target loss -------------------------------
    def min_loss(self, levels=(0.5, 0.9), *, seed: int = 0, **labels) -> pd.DataFrame:
        """The lowest loss the law can reach (its asymptote E as the inputs grow), with intervals."""
        levels = check_levels(levels)
        floor, notes = self.min_loss_draws(seed=seed, **labels)
        out = pd.DataFrame([summary_frame({"loss": floor}, levels)])
        out.attrs["notes"] = notes
        return out

    def min_loss_draws(self, *, seed: int = 0, **labels) -> tuple[np.ndarray, list[str]]:
        """Draws of the asymptote E (for ``labels``' group) and notes."""
        if self.law.response != "loss":
            raise BayescaleError(
                f"min_loss is the lowest loss a loss law reaches; law {self.law.spec!r} predicts "
                f"{self.law.response!r}, not a loss: fit a loss law (e.g. 'chinchilla') for it, or predict "
                f"this law's {self.law.response} at large inputs")
        if "E" not in self.law.params:
            raise BayescaleError(
                f"law {self.law.spec!r} has no irreducible-loss term E: its loss falls towards 0 as "
                "the inputs grow, so there is no minimum loss to report; fit a law with E, e.g. "
                "'chinchilla', 'farseer' or 'power'")
        values, notes = label_draws(self, labels, seed)
        offset = label_offset(self, labels, notes, seed)
        if self.law.name == "bnsl":
            final = values["alpha"] + sum(values[k] for k in values if k.startswith("delta_"))
            share = float(np.mean(final <= 0))
            if share > 0:
                notes.append(f"{share:.1%} of draws have a last segment whose loss rises with the input: "
                             "there E is a lower bound that the curve does not approach")
        return shifted(self, np.asarray(values["E"], dtype=np.float64)[:, 0], offset), notes

    def tokens_for_loss(self, target, params, levels=(0.5, 0.9), *, seed: int = 0, **labels) -> pd.DataFrame:
        """Training tokens D a model of ``params`` parameters needs to reach loss ``target``.

        Per posterior draw, solves L(N, D) = target in D (the law's loss falls with D at fixed N);
        draws whose loss at N never gets down to the target count as unreachable (D = inf) and
        ``p_reachable`` gives their complement. Raises when the target lies below the median
        asymptote L(N, D -> inf)."""
        levels = check_levels(levels)
        draws, floors, notes = self.tokens_draws(target, params, seed=seed, **labels)
        return tokens_table(draws, floors, levels, notes)

    def tokens_draws(self, target, params, *, seed: int = 0, **labels) -> tuple[dict, dict, list[str]]:
        """Draws of log D solving L(N, D) = target ({(N, target): draws}, inf where a draw never
        gets there), the loss floor L(N, D -> inf) per N ({N: draws}) and notes."""
        usable = {"params", "tokens", "compute", "multiplier"}
        if not set(self.law.inputs) <= usable or not set(self.law.inputs) & {"tokens", "compute", "multiplier"}:
            raise BayescaleError(
                f"law {self.law.spec!r} has inputs {list(self.law.inputs)}; tokens for a target loss need "
                "a law whose loss depends on tokens (through tokens, compute or multiplier), e.g. "
                "'chinchilla', 'farseer' or 'overtrain'")
        targets = np.atleast_1d(np.asarray(target, dtype=np.float64))
        sizes = np.atleast_1d(np.asarray(params, dtype=np.float64))
        if not (np.all(np.isfinite(targets)) and np.all(targets > 0)):
            raise BayescaleError(f"target loss must be positive and finite, got {target!r}")
        if not (np.all(np.isfinite(sizes)) and np.all(sizes > 0)):
            raise BayescaleError(f"params must be positive parameter counts, got {params!r}")
        values, notes = label_draws(self, labels, seed)
        offset = label_offset(self, labels, notes, seed)
        ref = self.spec.logref  # a rough centre for the search in log D: D0, or from C0 (and M0)
        if "tokens" in ref:
            ref_d = ref["tokens"]
        elif "multiplier" in ref:
            ref_d = 0.5 * (ref["compute"] - np.log(6.0) + ref["multiplier"])
        else:
            ref_d = ref["compute"] - np.log(6.0) - ref.get("params", 0.5 * (ref["compute"] - np.log(6.0)))
        draws, floors = {}, {}
        for n in sizes:
            log_n = np.log(n)
            floor = shifted(self, predictive.curve_at_sizes(self, log_n, ref_d + 200.0, values).reshape(-1),
                            offset)   # D -> inf
            floors[float(n)] = floor
            for t in targets:
                lo_d = np.full(floor.shape, ref_d - 30.0)
                hi_d = np.full(floor.shape, ref_d + 200.0)
                for _ in range(80):  # bisection in log D; loss falls with D
                    mid = 0.5 * (lo_d + hi_d)
                    above = shifted(self, predictive.curve_at_sizes(self, log_n, mid[:, None], values).reshape(-1),
                                    offset) > t
                    lo_d, hi_d = np.where(above, mid, lo_d), np.where(above, hi_d, mid)
                draws[(float(n), float(t))] = np.where(floor < t, 0.5 * (lo_d + hi_d), np.inf)
        return draws, floors, notes


def tokens_table(draws: dict, floors: dict, levels, notes: list[str]) -> pd.DataFrame:
    """The table of :meth:`Fit.tokens_for_loss` from :meth:`Fit.tokens_draws`' draws (one fit's,
    or a mixture's): an error where the target lies below the median floor."""
    rows = []
    for (n, t), log_d in draws.items():
        floor = floors[n]
        if t <= np.median(floor):
            lo, hi = np.quantile(floor, [0.05, 0.95])
            raise BayescaleError(
                f"target loss {t:g} is below what a {n:.3g}-parameter model reaches with unlimited "
                f"tokens under this fit (median {np.median(floor):.4g}, 90% [{lo:.4g}, {hi:.4g}]); "
                "choose a higher target or a larger model")
        d = np.exp(log_d)
        rows.append({"params": n, "target_loss": t, "p_reachable": float(np.isfinite(log_d).mean()),
                     **summary_frame({"tokens": d, "compute": 6.0 * n * d, "tokens_per_param": d / n}, levels)})
    out = pd.DataFrame(rows)
    notes = list(notes)
    if (out["p_reachable"] < 1).any():
        notes.append("some draws never reach the target at that size (tokens = inf in those draws); "
                     "the upper interval ends and the mean may be infinite")
    out.attrs["notes"] = notes
    return out


# ---- building a Fit's record from draws (single and batched fits) ---------------------------------

def inference_data(spec: ModelSpec, data: Dataset, samples: dict, sample_stats: dict,
                   loglik: np.ndarray) -> az.InferenceData:
    """Labelled InferenceData from (chain, draw, ...) arrays: posterior sites, sample stats
    (diverging, n_steps, acceptance_rate, lp, energy), the pointwise log likelihood of the data
    rows, and the observed data: ``y`` on the likelihood's scale and the response on its own
    (see :func:`label_scales`)."""
    law = spec.law
    aux_np = extra_columns(data.frame, law.extras)
    constant = {k: data.inputs[k] for k in law.inputs}
    constant.update(aux_np)
    for g in GROUP_COLUMNS:
        constant[g] = np.asarray(data.frame[g].to_numpy(), dtype=str)
    constant[law.response] = data.response
    observed = {"y": law.observation.site_value(data.response, aux_np),
                law.response: np.asarray(data.response, dtype=np.float64)}
    coords = {**{g: spec.coords[g] for g in spec.coords}, "obs": np.arange(data.n),
              **({} if spec.discrepancy is None else {discrepancy.KNOT_DIM: spec.discrepancy.labels()}),
              **({law_coordinates.DIM: law.coordinates.labels()} if spec.law_coordinates else {})}
    dims = {**_dims(spec), **{k: ["obs"] for k in {*constant, *observed}}}
    idata = az.InferenceData(
        posterior=_labelled(samples, dims, coords, drawn=True),
        sample_stats=_labelled(sample_stats, dims, coords, drawn=True),
        log_likelihood=_labelled({"y": loglik}, dims, coords, drawn=True),
        observed_data=_labelled(observed, dims, coords, drawn=False),
        constant_data=_labelled(constant, dims, coords, drawn=False),
    )
    label_scales(idata.observed_data, law)
    return idata


def _labelled(arrays: dict, dims: dict, coords: dict, drawn: bool) -> xr.Dataset:
    """One InferenceData group, labelled as ``az.from_dict`` labels it (leading chain and draw
    when ``drawn``, ``<name>_dim_<i>`` for unnamed dims, every dim with a coordinate), but built as
    one Dataset: from_dict aligns each variable on its own, a fifth of a batched fit's time."""
    lead = ["chain", "draw"] if drawn else []
    variables, index = {}, {}
    for name, value in arrays.items():
        value = np.asarray(value)
        trailing = value.shape[len(lead):]
        names = list(dims.get(name) or [f"{name}_dim_{i}" for i in range(len(trailing))])
        for dim, size in zip(lead + names, value.shape):
            index.setdefault(dim, np.asarray(coords[dim]) if dim in coords else np.arange(size))
        variables[name] = (lead + names, value)
    return xr.Dataset(variables, coords=index, attrs=make_attrs())


def label_scales(group: xr.Dataset, law) -> None:
    """Name the scale of ``y`` (the likelihood's site, e.g. log loss: what log_likelihood and LOO
    use) and of the response variable (its own scale, e.g. loss) in their ``scale`` attributes."""
    site = law.observation.site_label(law.response)
    group["y"].attrs.update(scale=site, description=(
        f"the likelihood's observed site, on the scale {site}; log_likelihood.y is its log density; "
        f"'{law.response}' is the response on its own scale"))
    group[law.response].attrs.update(scale=law.response, description=(
        f"the response {law.response} on its own scale; 'y' holds it on the likelihood's scale ({site})"))


def fit_config(spec: ModelSpec, data: Dataset, *, seed, chains, warmup, draws, target_accept,
               stats, columns=None, max_draws=None, duplicates=None) -> dict:
    """The JSON record a Fit carries in ``posterior.attrs["bayescale"]``."""
    return {
        **spec.to_json(),
        "data_hash": data.data_hash(),
        "n_obs": data.n,
        "columns": columns or {},
        "duplicates": duplicates,   # how repeated rows were read: the data hash is of the rows kept
        "seed": int(seed), "chains": chains, "warmup": warmup, "draws": draws,
        "max_draws": draws if max_draws is None else max_draws,
        "target_accept": target_accept,
        "notes": spec.notes,
        "versions": versions(),
        "device": str(jax.devices()[0].platform),
        "stats": stats,
    }


def _dims(spec: ModelSpec) -> dict[str, list[str]]:
    dims = {"y": ["obs"]}
    for name, g in spec.pooled.items():
        dims[f"{name}_{'u' if name in spec.centred else 'z'}"] = [g]
        dims[f"{name}_by_{g}"] = [g]
    if spec.discrepancy is not None and spec.discrepancy.size:
        dims[discrepancy.STEPS] = ([spec.discrepancy.group] if spec.discrepancy.group else []) + [discrepancy.KNOT_DIM]
    if spec.law_coordinates:
        dims[law_coordinates.SITE] = [law_coordinates.DIM]
    for term in spec.offsets:
        dims[term.steps_name] = [term.dim]
        dims[term.value_name] = [term.dim]
    return dims


def versions() -> dict[str, str]:
    return {
        "bayescale": __version__, "numpyro": numpyro.__version__, "jax": jax.__version__,
        "arviz": az.__version__, "numpy": np.__version__, "pandas": pd.__version__,
        "xarray": xr.__version__, "python": platform.python_version(),
    }


def load_idata(path, prefix: str = "") -> az.InferenceData:
    """The InferenceData saved at ``path`` (for a stacked fit, the groups under ``prefix``)."""
    if not prefix:
        idata = az.from_netcdf(path)
        idata = az.InferenceData(**{g: getattr(idata, g).load() for g in idata.groups()})
    else:
        tree = xr.open_datatree(path, engine="h5netcdf")
        try:
            node = tree[prefix.rstrip("/")]
            idata = az.InferenceData(**{name: child.to_dataset().load() for name, child in node.children.items()})
        finally:
            tree.close()
    verify(idata, path)
    return idata
