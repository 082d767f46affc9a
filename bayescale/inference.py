"""Law + data -> NumPyro model -> NUTS -> InferenceData."""
from __future__ import annotations

import json
import os
import platform
import time
import warnings
from dataclasses import dataclass, field

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions.transforms import biject_to
from numpyro.handlers import mask as mask_handler
from numpyro.infer import log_likelihood
from tqdm.auto import tqdm

from . import __version__
from .data import GROUP_COLUMNS, Dataset, check_group_sizes, validate
from .errors import BayescaleError, BayescaleWarning
from .models import Law, get_law
from .nuts import CompiledNUTS, compile_nuts, run_chains, worker_count
from .priors import describe, parse

DENSE_MASS_MAX_PARAMS = 60
CENTRED_MIN_POINTS = 8  # "auto": groups this well observed are sampled centred
MASK = "__mask__"       # aux key of the 0/1 row mask of padded data (see bucket_size)


def cache_dir_from_env() -> str | None:
    """$BAYESCALE_JAX_CACHE (default ~/.cache/bayescale/jax), or None when it is "0"."""
    path = os.environ.get("BAYESCALE_JAX_CACHE", os.path.join("~", ".cache", "bayescale", "jax"))
    return None if path.strip() == "0" else os.path.expanduser(path)


def enable_compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache (unless the user configured one already).

    Directory: $BAYESCALE_JAX_CACHE, default ~/.cache/bayescale/jax; "0" disables it.
    Returns the directory in use, or None.
    """
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    path = cache_dir_from_env()
    if path is None:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path


enable_compilation_cache()


def bucket_size(n: int) -> int:
    """Rows a data set of ``n`` points is padded to: n rounded up to a multiple of 2^(k-3) with
    2^k <= n, so at most 12.5% padding and e.g. 230 and 240 points share one compiled program."""
    step = 1 << max(int(n).bit_length() - 4, 0)
    return -(-int(n) // step) * step


@dataclass
class ModelSpec:
    """Everything that defines the NumPyro model, apart from the data arrays."""

    law: Law
    pooled: dict[str, str]                    # parameter -> grouping column
    priors: dict[str, dist.Distribution]      # parameter (and "<p>_tau") -> prior
    coords: dict[str, list[str]]              # grouping column -> labels (pooled ones only)
    logref: dict[str, float]                  # input -> log reference scale
    notes: list[str] = field(default_factory=list)
    centred: tuple[str, ...] = ()             # pooled parameters sampled centred (see choose_centring)

    def key(self) -> tuple:
        return (
            self.law.spec,
            tuple(sorted(self.pooled.items())),
            tuple(sorted((k, describe(v)) for k, v in self.priors.items())),
            tuple(sorted((g, len(v)) for g, v in self.coords.items())),
            tuple(sorted(self.centred)),
        )

    def to_json(self) -> dict:
        return {
            "law": self.law.spec,
            "pooled": self.pooled,
            "priors": {k: describe(v, digits=15) for k, v in self.priors.items()},
            "coords": self.coords,
            "logref": self.logref,
            "centred": list(self.centred),
        }

    @classmethod
    def from_json(cls, d: dict) -> "ModelSpec":
        return cls(
            law=get_law(d["law"]),
            pooled=dict(d["pooled"]),
            priors={k: parse(v) for k, v in d["priors"].items()},
            coords={k: list(v) for k, v in d["coords"].items()},
            logref={k: float(v) for k, v in d["logref"].items()},
            centred=tuple(d.get("centred", ())),
        )


# ---- building the spec ----------------------------------------------------------------------

def resolve_pool(law: Law, pool, data: Dataset) -> tuple[dict[str, str], list[str]]:
    """Which parameters vary by which grouping; groupings with one level collapse to shared."""
    params = law.all_params()
    defaults = {k: v.pool for k, v in params.items() if v.pool}
    if pool is None:
        requested = defaults
    elif isinstance(pool, str) and pool.lower() == "none":
        requested = {k: v for k, v in defaults.items() if k in law.noise_params()}
    elif isinstance(pool, dict):
        unknown = [k for k in pool if k not in params]
        if unknown:
            raise BayescaleError(
                f"cannot pool {unknown}: law {law.spec!r} has parameters {list(params)}"
            )
        requested = {k: v for k, v in defaults.items() if k in law.noise_params()}
        requested.update(pool)
        requested = {k: v for k, v in requested.items() if v}
    else:
        raise BayescaleError(
            f"pool must be None (the law's defaults), 'none' or a dict like {{'alpha': 'family'}}, got {pool!r}"
        )
    bad = {k: g for k, g in requested.items() if g not in GROUP_COLUMNS}
    if bad:
        raise BayescaleError(f"cannot pool {bad}: groupings are {list(GROUP_COLUMNS)}")
    pooled, notes = {}, []
    for name, g in requested.items():
        if len(data.coords[g]) > 1:
            pooled[name] = g
        elif pool is not None and name not in law.noise_params():
            notes.append(f"'{name}' pooled over '{g}', but the data have one {g}; it is shared")
    return pooled, notes


def resolve_priors(law: Law, priors: dict | None, pooled: dict[str, str]) -> dict:
    params = law.all_params()
    out = {k: v.prior for k, v in params.items()}
    for k in pooled:
        out[f"{k}_tau"] = dist.HalfNormal(params[k].group_scale)
    if priors is not None and not isinstance(priors, dict):
        raise BayescaleError(f"priors must be a dict like {{'alpha': 'Normal(0.3, 0.1)'}}, got {priors!r}")
    for k, v in (priors or {}).items():
        if k not in out:
            raise BayescaleError(
                f"no parameter {k!r} to set a prior on; law {law.spec!r} with this pooling has {sorted(out)}"
            )
        if isinstance(v, str):
            v = parse(v)
        if not isinstance(v, dist.Distribution):
            raise BayescaleError(f"prior for {k!r} must be a numpyro distribution or text, got {v!r}")
        text = describe(v)
        try:
            parse(text)  # the prior must be recordable in the saved fit
        except BayescaleError as exc:
            raise BayescaleError(f"prior for {k!r}: {exc}") from exc
        _check_support(k, v, out[k])
        out[k] = v
    return out


def _check_support(name: str, prior: dist.Distribution, default: dist.Distribution) -> None:
    """A user prior must put its mass where the parameter is defined (e.g. E > 0)."""
    if isinstance(prior, dist.Delta):
        values = np.asarray(prior.v)
    else:
        values = np.asarray(prior.sample(jax.random.PRNGKey(0), (256,)))
    inside = np.asarray(default.support(values))
    if not np.all(inside):
        raise BayescaleError(
            f"prior {describe(prior)} for {name!r} puts mass outside the parameter's domain "
            f"({default.support}); the default prior is {describe(default)}. Choose a prior on that domain "
            "(e.g. LogNormal or HalfNormal for positive parameters)"
        )


def reference_scales(law: Law, inputs: dict[str, np.ndarray]) -> dict[str, float]:
    """Each input's reference: the mean of log(input), or of the input itself for linear inputs."""
    return {k: float(np.mean(inputs[k] if k in law.linear_inputs else np.log(inputs[k])))
            for k in law.inputs}


def centred_inputs(law: Law, inputs: dict[str, np.ndarray], logref: dict[str, float]) -> dict:
    return {k: jnp.asarray((inputs[k] if k in law.linear_inputs else np.log(inputs[k])) - logref[k],
                           dtype=jnp.float32) for k in law.inputs}


def extra_columns(law: Law, frame) -> dict[str, np.ndarray]:
    """The per-row columns the law's likelihood needs (``law.extras``), float64."""
    return {k: frame[k].to_numpy(np.float64) for k in law.extras}


# ---- the NumPyro model ------------------------------------------------------------------------

_TRACES: dict[str, int] = {}


def trace_count(law: str | None = None) -> int:
    """How often a model was traced with abstract data (for ``law``'s spec, or all laws): once per
    program JAX compiles, so a fit that reuses a compiled sampler leaves it unchanged. (NumPyro's
    per-run initialisation also runs the model, on concrete data; that is not counted.)"""
    return _TRACES.get(law, 0) if law else sum(_TRACES.values())


def make_model(spec: ModelSpec):
    """The NumPyro model ``model(x, idx, y=None, aux=None)``; rows where ``aux["__mask__"]`` is 0
    (padding, see :func:`bucket_size`) add nothing to the likelihood."""
    law = spec.law

    def model(x, idx, y=None, aux=None):
        if isinstance(next(iter(x.values())), jax.core.Tracer):
            _TRACES[law.spec] = _TRACES.get(law.spec, 0) + 1
        aux = dict(aux or {})
        row_mask = aux.pop(MASK, None)
        values = {}
        for name in law.all_params():
            prior = spec.priors[name]
            if isinstance(prior, dist.Delta):
                pop = numpyro.deterministic(name, prior.v)
            else:
                pop = numpyro.sample(name, prior)
            g = spec.pooled.get(name)
            if g is None:
                values[name] = pop
                continue
            tau = numpyro.sample(f"{name}_tau", spec.priors[f"{name}_tau"])
            t = biject_to(prior.support)
            with numpyro.plate(g, len(spec.coords[g])):
                if name in spec.centred:   # groups with much data: sample their values directly
                    u = numpyro.sample(f"{name}_u", dist.Normal(t.inv(pop), tau))
                else:                      # non-centred offsets, for weakly informed groups
                    u = t.inv(pop) + tau * numpyro.sample(f"{name}_z", dist.Normal(0.0, 1.0))
            by_group = numpyro.deterministic(f"{name}_by_{g}", t(u))
            values[name] = by_group[idx[g]]
        mu = law.mean(x, values)
        n = next(iter(x.values())).shape[0]
        with numpyro.plate("obs", n):
            if row_mask is None:
                law.observe(mu, values, y, aux)
            else:
                with mask_handler(mask=row_mask > 0):
                    law.observe(mu, values, y, aux)

    return model


@dataclass
class _Sampler:
    """A compiled NUTS sampler and log-likelihood for one model and data shape."""
    nuts: CompiledNUTS
    loglik: object


_SAMPLER_CACHE: dict[tuple, _Sampler] = {}
SAMPLER_CACHE_SIZE = 32


def _get_sampler(spec: ModelSpec, args: tuple, warmup, dense, target_accept) -> _Sampler:
    # One compiled sampler per model and data shape; padded point counts share it (bucket_size).
    shapes = jax.tree.map(lambda a: (a.shape, str(a.dtype)), args)
    key = (spec.key(), json.dumps(shapes, sort_keys=True, default=str), warmup, dense, target_accept)
    if key not in _SAMPLER_CACHE:
        if len(_SAMPLER_CACHE) >= SAMPLER_CACHE_SIZE:
            _SAMPLER_CACHE.pop(next(iter(_SAMPLER_CACHE)))
        model = make_model(spec)
        compiled = compile_nuts(model, args, warmup=warmup, dense=dense, target_accept=target_accept)
        # pointwise log-likelihood, jitted once per cached sampler (same shapes: no re-trace)
        loglik = jax.jit(lambda s, x, idx, y, aux: log_likelihood(model, s, x, idx, y, aux)["y"])
        _SAMPLER_CACHE[key] = _Sampler(compiled, loglik)
    return _SAMPLER_CACHE[key]


def _pad(a, size: int):
    """Pad axis 0 to ``size`` by repeating the last row (valid values, so no NaN gradients)."""
    a = np.asarray(a)
    return np.concatenate([a, np.repeat(a[-1:], size - len(a), axis=0)]) if size > len(a) else a


def _dims(spec: ModelSpec) -> dict[str, list[str]]:
    dims = {"y": ["obs"]}
    for name, g in spec.pooled.items():
        dims[f"{name}_{'u' if name in spec.centred else 'z'}"] = [g]
        dims[f"{name}_by_{g}"] = [g]
    return dims


def versions() -> dict[str, str]:
    import pandas
    import xarray

    return {
        "bayescale": __version__, "numpyro": numpyro.__version__, "jax": jax.__version__,
        "arviz": az.__version__, "numpy": np.__version__, "pandas": pandas.__version__,
        "xarray": xarray.__version__, "python": platform.python_version(),
    }


def model_arguments(spec: ModelSpec, data: Dataset) -> tuple:
    """``(x, idx, y, aux)`` for the model, rows padded to :func:`bucket_size` and masked."""
    size = bucket_size(data.n)
    x = {k: jnp.asarray(_pad(v, size)) for k, v in centred_inputs(spec.law, data.inputs, spec.logref).items()}
    idx = {g: jnp.asarray(_pad(data.group_index[g], size)) for g in spec.coords}
    aux_np = extra_columns(spec.law, data.frame)
    aux = {k: jnp.asarray(_pad(v, size), dtype=jnp.float32) for k, v in aux_np.items()}
    aux[MASK] = jnp.asarray(np.arange(size) < data.n, dtype=jnp.float32)  # always: one pytree shape
    y = jnp.asarray(_pad(spec.law.site_value(data.response, aux_np), size), dtype=jnp.float32)
    return x, idx, y, aux


def sample_posterior(
    spec: ModelSpec, data: Dataset, *, seed=0, chains=4, warmup=1000, draws=1000,
    progress=True, target_accept=0.8, dense_mass=None,
) -> tuple[az.InferenceData, dict]:
    """Run NUTS and return labelled InferenceData plus timing / step statistics."""
    for name, value in (("chains", chains), ("warmup", warmup), ("draws", draws)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise BayescaleError(f"{name} must be a positive integer, got {value!r}")
    args = model_arguments(spec, data)
    x, idx, y, aux = args
    n_latent = _count_latent(spec)
    dense = n_latent <= DENSE_MASS_MAX_PARAMS if dense_mass is None else bool(dense_mass)
    sampler = _get_sampler(spec, args, warmup, dense, target_accept)
    t0 = time.perf_counter()
    with tqdm(total=chains * (warmup + draws), desc=f"NUTS {chains} chains", unit="it",
              disable=not progress, leave=False) as bar:
        z, extra = run_chains(sampler.nuts, args, seed=seed, chains=chains, draws=draws,
                              on_progress=bar.update)
    z_flat = jax.tree.map(lambda a: a.reshape((chains * draws,) + a.shape[2:]), z)
    flat = {k: np.asarray(v) for k, v in sampler.nuts.constrain(z_flat, args).items()}
    samples = {k: v.reshape((chains, draws) + v.shape[1:]) for k, v in flat.items()}
    elapsed = time.perf_counter() - t0
    loglik = np.asarray(sampler.loglik(flat, x, idx, y, aux))[:, :data.n].reshape(chains, draws, -1)
    idata = inference_data(spec, data, samples, {
        "diverging": extra["diverging"].astype(bool), "n_steps": extra["num_steps"],
        "acceptance_rate": extra["accept_prob"], "lp": -extra["potential_energy"],
    }, loglik)
    stats = {
        "sampling_seconds": elapsed,
        "mean_steps_per_draw": float(extra["num_steps"].mean()),
        "dense_mass": dense,
        "covariance_shrinkage": "relative",
        "chain_threads": worker_count(chains),
        "n_latent": n_latent,
    }
    return idata, stats


def _count_latent(spec: ModelSpec) -> int:
    n = 0
    for name in spec.law.all_params():
        if not isinstance(spec.priors[name], dist.Delta):
            n += 1
        if name in spec.pooled:
            n += 1 + len(spec.coords[spec.pooled[name]])
    return n


def choose_centring(pooled: dict[str, str], data: Dataset, parametrisation: str = "auto") -> tuple[str, ...]:
    """Centred group values when every group has many points (data dominate, so a non-centred
    form would make its own funnel); non-centred offsets when some group is thin."""
    if parametrisation == "centred":
        return tuple(pooled)
    if parametrisation == "non-centred":
        return ()
    if parametrisation != "auto":
        raise BayescaleError(f"parametrisation must be 'auto', 'centred' or 'non-centred', got {parametrisation!r}")
    return tuple(k for k, g in pooled.items()
                 if np.bincount(data.group_index[g]).min() >= CENTRED_MIN_POINTS)


def build(df, law, *, pool=None, priors=None, columns=None, duplicates="error",
          parametrisation="auto", check_response=True) -> tuple[ModelSpec, Dataset]:
    """Validate the data and resolve law, pooling, priors and reference scales."""
    law = get_law(law)
    data = validate(df, law.inputs, law.response, columns=columns, duplicates=duplicates,
                    min_points=law.n_free, extra_numeric=law.extras, linear_inputs=law.linear_inputs,
                    positive_response=False)
    if check_response:
        law.check_response(data.response, extra_columns(law, data.frame))
    pooled, notes = resolve_pool(law, pool, data)
    check_group_sizes(data, {g: [k for k, v in pooled.items() if v == g and k in law.params]
                             for g in set(pooled.values())})
    spec = ModelSpec(
        law=law, pooled=pooled, priors=resolve_priors(law, priors, pooled),
        coords={g: data.coords[g] for g in sorted(set(pooled.values()))},
        logref=reference_scales(law, data.inputs),
        notes=data.notes + notes,
        centred=choose_centring(pooled, data, parametrisation),
    )
    return spec, data


def fit(df, law="chinchilla", pool=None, priors=None, seed=0, chains=4, warmup=1000, draws=1000,
        progress=True, *, columns=None, duplicates="error", target_accept=None, dense_mass=None,
        parametrisation="auto"):
    """Fit a scaling law to a table of runs with NUTS; returns a :class:`bayescale.Fit`.

    ``pool`` None uses the law's default pooling, "none" shares every law parameter, and a dict
    such as ``{"alpha": "family", "E": "dataset"}`` lists exactly which law parameters vary by
    which grouping column. ``priors`` overrides any prior, e.g. ``{"alpha": dist.Normal(0.3, 0.1)}``
    or ``{"alpha": "Normal(0.3, 0.1)"}``.
    """
    from .results import Fit

    if not isinstance(seed, (int, np.integer)):
        raise BayescaleError(f"seed must be an integer, got {seed!r}")
    spec, data = build(df, law, pool=pool, priors=priors, columns=columns, duplicates=duplicates,
                       parametrisation=parametrisation)
    if target_accept is None:
        target_accept = 0.95 if any(k in spec.law.params for k in spec.pooled) else 0.8
    for note in spec.notes:
        if note not in data.notes:
            warnings.warn(note, BayescaleWarning, stacklevel=2)
    t0 = time.perf_counter()
    idata, stats = sample_posterior(spec, data, seed=seed, chains=chains, warmup=warmup, draws=draws,
                                    progress=progress, target_accept=target_accept, dense_mass=dense_mass)
    stats["total_seconds"] = time.perf_counter() - t0
    config = fit_config(spec, data, seed=seed, chains=chains, warmup=warmup, draws=draws,
                        target_accept=target_accept, stats=stats, columns=columns)
    idata.posterior.attrs["bayescale"] = json.dumps(config)
    idata.posterior.attrs.update(law=spec.law.spec, data_hash=config["data_hash"], seed=int(seed),
                                 bayescale_version=__version__)
    result = Fit(idata)
    result.warn_diagnostics()
    return result


# ---- pieces shared with batched fits (bayescale.batch) ------------------------------------------

def inference_data(spec: ModelSpec, data: Dataset, samples: dict, sample_stats: dict,
                   loglik: np.ndarray) -> az.InferenceData:
    """Labelled InferenceData from (chain, draw, ...) arrays: posterior sites, sample stats
    (diverging, n_steps, acceptance_rate, lp) and the pointwise log likelihood of the data rows."""
    aux_np = extra_columns(spec.law, data.frame)
    constant = {k: data.inputs[k] for k in spec.law.inputs}
    constant.update(aux_np)
    for g in GROUP_COLUMNS:
        constant[g] = np.asarray(data.frame[g].to_numpy(), dtype=str)
    constant[spec.law.response] = data.response
    return az.from_dict(
        posterior=samples,
        sample_stats=sample_stats,
        log_likelihood={"y": loglik},
        observed_data={"y": spec.law.site_value(data.response, aux_np)},
        constant_data=constant,
        coords={**{g: spec.coords[g] for g in spec.coords}, "obs": np.arange(data.n)},
        dims={**_dims(spec), **{k: ["obs"] for k in constant}},
    )


def fit_config(spec: ModelSpec, data: Dataset, *, seed, chains, warmup, draws, target_accept,
               stats, columns=None) -> dict:
    """The JSON record a Fit carries in ``posterior.attrs["bayescale"]``."""
    return {
        **spec.to_json(),
        "data_hash": data.data_hash(),
        "n_obs": data.n,
        "columns": columns or {},
        "seed": int(seed), "chains": chains, "warmup": warmup, "draws": draws,
        "target_accept": target_accept,
        "notes": spec.notes,
        "versions": versions(),
        "device": str(jax.devices()[0].platform),
        "stats": stats,
    }
