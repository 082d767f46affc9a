"""Fit: the posterior of one law on one table, with summary, predict, allocation and save/load."""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from numpyro.distributions.transforms import biject_to

from .data import GROUP_COLUMNS, validate
from .errors import BayescaleError, BayescaleWarning
from .inference import ModelSpec

QUANTILES = (0.025, 0.05, 0.5, 0.95, 0.975)
RHAT_MAX, ESS_MIN = 1.01, 400


def level_name(level: float) -> str:
    return f"{level * 100:g}"


def _check_levels(levels) -> tuple[float, ...]:
    levels = tuple(float(v) for v in np.atleast_1d(levels))
    bad = [v for v in levels if not 0 < v < 1]
    if bad:
        raise BayescaleError(f"interval levels must lie strictly between 0 and 1, got {bad}; e.g. levels=(0.5, 0.9)")
    return levels


def mean_extras(law) -> tuple[str, ...]:
    """Per-row columns the law needs to turn its curve into the expected response (``to_rate``)."""
    return tuple(getattr(law, "rate_extras", ()))


def expected_response(law, mu: np.ndarray, aux: dict) -> np.ndarray:
    """The expected response from the law's curve ``mu``: ``law.to_rate`` where the law has one
    (e.g. accuracy = chance + (1 - chance)·curve), else the curve itself."""
    to_rate = getattr(law, "to_rate", None)
    return np.asarray(to_rate(mu, aux, xp=np) if to_rate else mu, dtype=np.float64)


def require_mean_extras(law, df: pd.DataFrame, columns: dict | None = None) -> None:
    """A clear error when the table lacks the columns ``kind="mean"`` needs (see :func:`mean_extras`)."""
    from .data import apply_column_map

    missing = [c for c in mean_extras(law) if c not in apply_column_map(df, columns).columns]
    if missing:
        hint = " ('chance' = 1 / number of choices, 0 for free-form answers)" if "chance" in missing else ""
        raise BayescaleError(
            f"law {law.spec!r} ({law.formula}): the expected {law.response} (kind='mean') needs the per-row "
            f"column(s) {missing}, which the prediction table lacks (it has {list(df.columns)}); add them"
            f"{hint}, or use kind='curve' for the law's curve without them")


def interval_columns(draws: np.ndarray, levels, prefix: str = "") -> dict[str, np.ndarray]:
    """mean, median and central intervals over axis 0 of ``draws``."""
    out = {f"{prefix}mean": draws.mean(axis=0), f"{prefix}median": np.median(draws, axis=0)}
    for level in levels:
        lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
        out[f"{prefix}lower_{level_name(level)}"] = lo
        out[f"{prefix}upper_{level_name(level)}"] = hi
    return out


class Fit:
    """A fitted law. ``fit.posterior`` is ArviZ InferenceData with labelled dims."""

    def __init__(self, idata: az.InferenceData):
        if "posterior" not in idata.groups() or "bayescale" not in idata.posterior.attrs:
            raise BayescaleError("this InferenceData was not written by bayescale (no 'bayescale' attrs)")
        self.idata = idata
        self.config = json.loads(idata.posterior.attrs["bayescale"])
        self.spec = ModelSpec.from_json(self.config)
        self.law = self.spec.law
        if "_derived" not in idata.posterior.attrs:
            self._add_derived()

    # ---- views ----------------------------------------------------------------------------
    @property
    def posterior(self) -> az.InferenceData:
        return self.idata

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
        post = self.idata.posterior
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
        return json.loads(self.idata.posterior.attrs["_derived"])

    def latent_names(self) -> list[str]:
        post = self.idata.posterior
        names = [k for k in self.law.all_params() if k in post and not self._is_fixed(k)]
        for k in self.spec.pooled:
            names += [f"{k}_tau", f"{k}_{'u' if k in self.spec.centred else 'z'}"]
        return names

    def _is_fixed(self, name: str) -> bool:
        return type(self.spec.priors[name]).__name__ == "Delta"

    # ---- diagnostics -------------------------------------------------------------------------
    @property
    def diagnostics(self) -> dict:
        post = self.idata.posterior[self.latent_names()]
        rhat = az.rhat(post)
        ess = az.ess(post, method="bulk")
        stats = self.idata.sample_stats
        if post.sizes["chain"] < 2:  # r_hat needs two chains
            rhat = rhat.map(lambda v: v * np.nan)
        return {
            "max_rhat": float(max(float(rhat[v].max()) for v in rhat.data_vars)),
            "min_ess_bulk": float(min(float(ess[v].min()) for v in ess.data_vars)),
            "divergences": int(stats["diverging"].sum()),
            "mean_steps_per_draw": float(stats["n_steps"].mean()),
        }

    def warn_diagnostics(self) -> None:
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
        if problems:
            warnings.warn(
                "sampling looks unreliable: " + "; ".join(problems)
                + ". Run more warmup/draws, raise target_accept, or simplify the pooling.",
                BayescaleWarning, stacklevel=3,
            )

    # ---- summary ----------------------------------------------------------------------------------
    def summary_names(self) -> list[str]:
        names = []
        for k in self.law.all_params():
            names.append(k)
            if k in self.spec.pooled:
                names += [self._group_value_name(k), f"{k}_tau"]
        return names + self.derived_names

    def summary(self, quantiles=QUANTILES) -> pd.DataFrame:
        """Mean, sd, quantiles, r_hat and bulk ESS, indexed 'alpha', 'alpha[<group>]', 'A', ..."""
        post = self.idata.posterior[self.summary_names()]
        rhat, ess = az.rhat(post), az.ess(post, method="bulk")
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

    # ---- prediction ------------------------------------------------------------------------------
    def _stacked(self, name: str) -> np.ndarray:
        da = self.idata.posterior[name]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        return np.asarray(da.stack(sample=("chain", "draw")).transpose("sample", *extra).values)

    def param_draws(self, frame: pd.DataFrame, rng: np.random.Generator, notes: list[str],
                    typical: bool = False) -> dict[str, np.ndarray]:
        """Per-row parameter draws (samples x rows). Unseen groups get a new group from the population;
        ``typical`` uses the population value for every row instead."""
        values = {}
        for name in self.law.all_params():
            pop = self._stacked(name)
            g = self.spec.pooled.get(name)
            if g is None or typical:
                values[name] = pop[:, None]
                continue
            table = self._stacked(self._group_value_name(name))
            known = {label: i for i, label in enumerate(self.spec.coords[g])}
            labels = frame[g].astype(str).to_numpy() if g in frame else np.full(len(frame), "")
            unseen = sorted({lab for lab in labels if lab not in known})
            if unseen:
                t = biject_to(self.spec.priors[name].support)
                tau = self._stacked(f"{name}_tau")
                z = rng.standard_normal((len(pop), len(unseen)))
                new = np.asarray(t(np.asarray(t.inv(pop))[:, None] + tau[:, None] * z))
                table = np.concatenate([table, new], axis=1)
                known.update({lab: len(self.spec.coords[g]) + i for i, lab in enumerate(unseen)})
                notes.append(f"{g} label(s) {unseen} not in the fit: '{name}' drawn from the population "
                             f"distribution over {g} labels")
            values[name] = table[:, [known[lab] for lab in labels]]
        return values

    def _mean_draws(self, frame: pd.DataFrame, values: dict) -> np.ndarray:
        from .inference import centred_inputs

        x = centred_inputs(self.law, {k: frame[k].to_numpy(np.float64) for k in self.law.inputs},
                           self.spec.logref)
        x = {k: np.asarray(v)[None, :] for k, v in x.items()}
        mu = np.asarray(self.law.mean(x, values), dtype=np.float64)
        return np.broadcast_to(mu, (self._n_samples(), len(frame)))

    def _n_samples(self) -> int:
        post = self.idata.posterior
        return post.sizes["chain"] * post.sizes["draw"]

    def predict(self, df: pd.DataFrame, levels=(0.5, 0.9), kind: str = "mean", *, seed: int = 0,
                columns: dict | None = None, return_draws: bool = False):
        """Credible intervals at new points: ``df``'s columns plus mean, median, lower_50, upper_50, ...

        ``kind="mean"`` is the expected response: the law's curve, or for laws with a chance floor
        (``accuracy-sigmoid``) the expected accuracy chance + (1 - chance)·curve, which needs column
        ``chance``; ``kind="curve"`` is the law's curve itself (for those laws the normalised share
        above chance); ``kind="observation"`` adds the observation noise to the expected response.
        With ``return_draws=True`` also returns the draws as an xarray DataArray (sample, row).
        """
        if kind not in ("mean", "curve", "observation"):
            raise BayescaleError(f"kind must be 'mean', 'curve' or 'observation', got {kind!r}")
        levels = _check_levels(levels)
        if kind == "mean":
            require_mean_extras(self.law, df, columns)
        extras = {"observation": self.law.extras, "mean": mean_extras(self.law)}.get(kind, ())
        data = validate(df, self.law.inputs, response=None, columns=columns, duplicates="keep",
                        groups=tuple(g for g in GROUP_COLUMNS), extra_numeric=extras,
                        linear_inputs=self.law.linear_inputs)
        frame = data.frame
        notes = list(data.notes)
        rng = np.random.default_rng(seed)
        values = self.param_draws(frame, rng, notes)
        draws = self._mean_draws(frame, values)
        if kind == "observation":
            from .inference import extra_columns

            draws = self.law.sample_observation(rng, draws, values, extra_columns(self.law, frame))
        elif kind == "mean":
            draws = expected_response(self.law, draws, {k: frame[k].to_numpy(np.float64) for k in extras})
        out = df.reset_index(drop=True).copy()
        if "compute" in self.law.inputs and "compute" not in out:
            out["compute"] = frame["compute"]
        for col, v in interval_columns(draws, levels).items():
            out[col] = v
        out.attrs["notes"] = notes
        out.attrs["kind"] = kind
        for note in notes:
            if note not in data.notes:
                warnings.warn(note, BayescaleWarning, stacklevel=2)
        if return_draws:
            da = xr.DataArray(draws, dims=("sample", "row"), name="curve" if kind == "curve" else self.law.response,
                              attrs={"kind": kind, "law": self.law.spec})
            return out, da
        return out

    # ---- compute-optimal allocation --------------------------------------------------------------
    def optimal_allocation(self, compute, levels=(0.5, 0.9), *, grid: int = 801, **labels) -> pd.DataFrame:
        """N*(C), D*(C) and L*(C) minimising the law under C = 6·N·D, with credible intervals.

        Group labels (``family="x"``) select group values; without them the population's typical
        values are used."""
        if not self.law.has_allocation:
            raise BayescaleError(
                f"law {self.law.spec!r} has inputs {list(self.law.inputs)}; compute-optimal allocation "
                "needs a law in params and tokens, e.g. 'chinchilla' or 'kaplan-nd'"
            )
        levels = _check_levels(levels)
        budgets = np.atleast_1d(np.asarray(compute, dtype=np.float64))
        if budgets.ndim != 1 or not np.all(np.isfinite(budgets)) or np.any(budgets <= 0):
            raise BayescaleError(f"compute budgets must be positive finite FLOPs, got {compute!r}")
        bad = [k for k in labels if k not in GROUP_COLUMNS]
        if bad:
            raise BayescaleError(f"unknown label(s) {bad}; use {list(GROUP_COLUMNS)}")
        frame = pd.DataFrame({g: [str(labels[g])] for g in labels})
        notes: list[str] = []
        values = self.param_draws(frame, np.random.default_rng(0), notes, typical=not labels)
        u = np.linspace(-10.0, 10.0, grid)
        rows = []
        edge_hits = 0
        for c in budgets:
            logn = 0.5 * np.log(c / 6.0) + u
            x = {"params": logn - self.spec.logref["params"],
                 "tokens": np.log(c / 6.0) - logn - self.spec.logref["tokens"]}
            x = {k: v[None, :] for k, v in x.items()}
            loss = np.asarray(self.law.mean(x, values), dtype=np.float64)
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
            xo = {"params": np.log(n_opt)[:, None] - self.spec.logref["params"],
                  "tokens": np.log(d_opt)[:, None] - self.spec.logref["tokens"]}
            l_opt = np.asarray(self.law.mean(xo, values), dtype=np.float64)[:, 0]
            row = {"compute": c}
            for name, arr in (("params", n_opt), ("tokens", d_opt), ("loss", l_opt),
                              ("tokens_per_param", d_opt / n_opt)):
                for col, v in interval_columns(arr[:, None], levels, prefix=f"{name}_").items():
                    row[col] = float(v[0])
            rows.append(row)
        out = pd.DataFrame(rows)
        if edge_hits:
            notes.append(f"{edge_hits} draw(s) put the optimum at the edge of the search range "
                         "(tokens per parameter beyond e^±20): that law draw has no interior optimum")
        if not labels and self.spec.pooled:
            notes.append("no group labels given: the population's typical parameter values were used")
        out.attrs["notes"] = notes
        return out

    # ---- persistence --------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the fit as netCDF, atomically (temporary file + rename)."""
        path = Path(path)
        if path.is_dir():
            raise BayescaleError(f"cannot save to {path}: it is a folder; give a file name such as fit.nc")
        folder = path.parent
        if not folder.is_dir():
            raise BayescaleError(f"cannot save to {path}: folder {folder} does not exist")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
            os.close(fd)
        except OSError as exc:
            raise BayescaleError(f"cannot write in {folder}: {exc}") from exc
        try:
            self.idata.to_netcdf(tmp)
            os.replace(tmp, path)
        except OSError as exc:
            raise BayescaleError(f"cannot save to {path}: {exc}") from exc
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path


    # ---- derived quantities: asymptote and tokens for a target loss -------------------------------
    def _label_values(self, labels: dict) -> tuple[dict, list[str]]:
        """Parameter draws (samples x 1) for group labels, or the population's typical values."""
        bad = [k for k in labels if k not in GROUP_COLUMNS]
        if bad:
            raise BayescaleError(f"unknown label(s) {bad}; use {list(GROUP_COLUMNS)}")
        notes: list[str] = []
        frame = pd.DataFrame({g: [str(labels[g])] for g in labels})
        values = self.param_draws(frame, np.random.default_rng(0), notes, typical=not labels)
        if not labels and self.spec.pooled:
            notes.append("no group labels given: the population's typical parameter values were used")
        return values, notes

    def _mean_at_nd(self, log_n, log_d, values) -> np.ndarray:
        """The law's mean at log N, log D (broadcast against the draws), from whichever of params,
        tokens, compute = 6ND and multiplier = D/N the law takes."""
        raw = {"params": log_n, "tokens": log_d, "compute": np.log(6.0) + log_n + log_d,
               "multiplier": log_d - log_n}
        x = {k: np.asarray(raw[k] - self.spec.logref[k], dtype=np.float64) for k in self.law.inputs}
        return np.asarray(self.law.mean(x, values, xp=np), dtype=np.float64)  # numpy: many small calls

    def min_loss(self, levels=(0.5, 0.9), **labels) -> pd.DataFrame:
        """The lowest loss the law can reach (its asymptote E as the inputs grow), with intervals."""
        if "E" not in self.law.params:
            raise BayescaleError(
                f"law {self.law.spec!r} has no irreducible-loss term E: its loss falls towards 0 as "
                "the inputs grow, so there is no minimum loss to report; fit a law with E, e.g. "
                "'chinchilla', 'farseer' or 'power'")
        levels = _check_levels(levels)
        values, notes = self._label_values(labels)
        e = np.asarray(values["E"], dtype=np.float64)[:, :1]
        out = pd.DataFrame({k: v for k, v in interval_columns(e, levels, prefix="loss_").items()})
        if self.law.name == "bnsl":
            final = values["alpha"] + sum(values[k] for k in values if k.startswith("delta_"))
            share = float(np.mean(final <= 0))
            if share > 0:
                notes.append(f"{share:.1%} of draws have a last segment whose loss rises with the input: "
                             "there E is a lower bound that the curve does not approach")
        out.attrs["notes"] = notes
        return out

    def tokens_for_loss(self, target, params, levels=(0.5, 0.9), **labels) -> pd.DataFrame:
        """Training tokens D a model of ``params`` parameters needs to reach loss ``target``.

        Per posterior draw, solves L(N, D) = target in D (the law's loss falls with D at fixed N);
        draws whose loss at N never gets down to the target count as unreachable (D = inf) and
        ``p_reachable`` gives their complement. Raises when the target lies below the median
        asymptote L(N, D -> inf)."""
        usable = {"params", "tokens", "compute", "multiplier"}
        if not set(self.law.inputs) <= usable or not set(self.law.inputs) & {"tokens", "compute", "multiplier"}:
            raise BayescaleError(
                f"law {self.law.spec!r} has inputs {list(self.law.inputs)}; tokens for a target loss need "
                "a law whose loss depends on tokens (through tokens, compute or multiplier), e.g. "
                "'chinchilla', 'farseer' or 'overtrain'")
        levels = _check_levels(levels)
        targets = np.atleast_1d(np.asarray(target, dtype=np.float64))
        sizes = np.atleast_1d(np.asarray(params, dtype=np.float64))
        if not (np.all(np.isfinite(targets)) and np.all(targets > 0)):
            raise BayescaleError(f"target loss must be positive and finite, got {target!r}")
        if not (np.all(np.isfinite(sizes)) and np.all(sizes > 0)):
            raise BayescaleError(f"params must be positive parameter counts, got {params!r}")
        values, notes = self._label_values(labels)
        ref = self.spec.logref  # a rough centre for the search in log D: D0, or from C0 (and M0)
        if "tokens" in ref:
            ref_d = ref["tokens"]
        elif "multiplier" in ref:
            ref_d = 0.5 * (ref["compute"] - np.log(6.0) + ref["multiplier"])
        else:
            ref_d = ref["compute"] - np.log(6.0) - ref.get("params", 0.5 * (ref["compute"] - np.log(6.0)))
        rows = []
        for n in sizes:
            log_n = np.log(n)
            floor = self._mean_at_nd(log_n, ref_d + 200.0, values).reshape(-1)  # D -> inf
            for t in targets:
                if t <= np.median(floor):
                    lo, hi = np.quantile(floor, [0.05, 0.95])
                    raise BayescaleError(
                        f"target loss {t:g} is below what a {n:.3g}-parameter model reaches with unlimited "
                        f"tokens under this fit (median {np.median(floor):.4g}, 90% [{lo:.4g}, {hi:.4g}]); "
                        "choose a higher target or a larger model")
                lo_d = np.full(floor.shape, ref_d - 30.0)
                hi_d = np.full(floor.shape, ref_d + 200.0)
                reachable = floor < t
                for _ in range(80):  # bisection in log D; loss falls with D
                    mid = 0.5 * (lo_d + hi_d)
                    above = self._mean_at_nd(log_n, mid[:, None], values).reshape(-1) > t
                    lo_d, hi_d = np.where(above, mid, lo_d), np.where(above, hi_d, mid)
                log_d = np.where(reachable, 0.5 * (lo_d + hi_d), np.inf)
                d = np.exp(log_d)
                row = {"params": n, "target_loss": t, "p_reachable": float(reachable.mean())}
                for name, arr in (("tokens", d), ("compute", 6.0 * n * d), ("tokens_per_param", d / n)):
                    for col, v in interval_columns(arr[:, None], levels, prefix=f"{name}_").items():
                        row[col] = float(v[0])
                rows.append(row)
        out = pd.DataFrame(rows)
        if (out["p_reachable"] < 1).any():
            notes.append("some draws never reach the target at that size (tokens = inf in those draws); "
                         "the upper interval ends and the mean may be infinite")
        out.attrs["notes"] = notes
        return out

def load(path) -> Fit:
    """Read a fit written by :meth:`Fit.save`."""
    path = Path(path)
    if not path.exists():
        raise BayescaleError(f"no fit file at {path}; write one with fit.save(path) or `bayescale fit --out`")
    try:
        idata = az.from_netcdf(path)
        idata = az.InferenceData(**{g: getattr(idata, g).load() for g in idata.groups()})
    except (OSError, ValueError) as exc:
        raise BayescaleError(f"{path} is not a readable netCDF fit file ({exc})") from exc
    return Fit(idata)
