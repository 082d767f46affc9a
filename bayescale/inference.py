"""Law + data -> NumPyro model -> NUTS -> InferenceData."""
from __future__ import annotations

import functools
import json
import os
import time
import threading
from concurrent.futures import Future
import warnings
from dataclasses import dataclass

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions.transforms import biject_to
from numpyro.handlers import mask as mask_handler

from . import __version__
from .data import Dataset
from .design import centre, extra_columns
from .discrepancy import sample_term, walk_inputs
from .group_offset import sample_term as offset_term
from .checks import check_flag, check_seed, check_target_accept
from .errors import (BayescaleError, BayescaleWarning, UnreliableSamplingError, caller_stacklevel,
                     warnings_labelled)
from .progress import bar as progress_bar, note as progress_note, resolve as resolve_progress
from .results import ESS_MIN, RHAT_MAX, Fit, fit_config, inference_data, latent_names, sampling_diagnostics  # noqa: F401  (inference_data, fit_config: used by batch)
from .models import get_law
from .stacking import StackedFit
from .spec import CENTRED_MIN_POINTS, ModelSpec, build, choose_centring  # noqa: F401  (re-exported)
from .runtime import cache_dir_from_env, enable_compilation_cache, ensure_configured  # noqa: F401  (re-exported)
from .samplers.cache import PROGRAMS, _TRACES, trace_count  # noqa: F401  (trace_count: re-exported)
from .samplers.nuts import CompiledNUTS, Settings, compile_nuts, neck_floors, run_chains, use_warm_start, worker_count
from .samplers.precision import cast_arguments, precision, use_x64
from .priors import median as prior_median

DENSE_MASS_MAX_PARAMS = 60
MASK = "__mask__"       # aux key of the 0/1 row mask of padded data (see bucket_size)


def bucket_size(n: int) -> int:
    """Rows a data set of ``n`` points is padded to: n rounded up to a multiple of 2^(k-3) with
    2^k <= n, so at most 12.5% padding and e.g. 230 and 240 points share one compiled program."""
    step = 1 << max(int(n).bit_length() - 4, 0)
    return -(-int(n) // step) * step


# ---- the NumPyro model ------------------------------------------------------------------------

def make_model(spec: ModelSpec, natural: bool = False):
    """The NumPyro model ``model(x, idx, y=None, aux=None, walk=None)``; rows where
    ``aux["__mask__"]`` is 0 (padding, see :func:`bucket_size`) add nothing to the likelihood;
    ``walk`` holds the discrepancy walk's data (:func:`bayescale.discrepancy.walk_inputs`).
    Where ``spec.law_coordinates``, the law's parameters are sampled in the coordinates of
    :mod:`bayescale.models.coordinates` (the same model); ``natural=True`` samples them directly,
    which simulating from the prior needs."""
    law = spec.law
    reparam = law.coordinates if spec.law_coordinates and not natural else None

    def model(x, idx, y=None, aux=None, walk=None):
        if isinstance(next(iter(x.values())), jax.core.Tracer):
            _TRACES[law.spec] = _TRACES.get(law.spec, 0) + 1
        aux = dict(aux or {})
        row_mask = aux.pop(MASK, None)
        values = {} if reparam is None else reparam.sample(numpyro, spec.priors)
        for name in law.all_params():
            if name in values:
                continue
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
        shift = 0.0   # what the law misses, on the observation's link scale
        if spec.discrepancy is not None:
            if not walk:
                raise BayescaleError("this model has a discrepancy walk: give its data (walk_inputs)")
            shift = shift + sample_term(spec.discrepancy, walk)
        for term in spec.offsets:
            shift = shift + offset_term(term, len(spec.coords[term.dim]), idx[term.dim])
        if spec.discrepancy is not None or spec.offsets:
            obs = law.observation
            mu = obs.inverse_link(obs.link(mu, jnp) + shift, jnp)
        n = next(iter(x.values())).shape[0]
        with numpyro.plate("obs", n):
            if row_mask is None:
                law.observation.observe(mu, values, y, aux)
            else:
                with mask_handler(mask=row_mask > 0):
                    law.observation.observe(mu, values, y, aux)

    return model


@dataclass
class _Sampler:
    """A compiled NUTS sampler and its compiled outputs (constrained draws and pointwise
    log likelihood) for one model, data shape, float type and number of draws."""
    nuts: CompiledNUTS
    outputs: object


_SAMPLER_CACHE = PROGRAMS   # the one bounded compile cache (bayescale.clear_caches empties it)


class _Deferred:
    """A program built in a background thread while the chains sample (they need it only after
    their last draw; building it first delayed the start of sampling by 0.4-1.0 s of a first
    fit). Calling it waits for the build; a build's error is raised in the caller's thread.

    One daemon thread per build, started by the fit that needs it: nothing survives a fork
    half-alive (a process-wide executor's thread would not exist in a forked child, and its
    work would never run), and interpreter exit does not wait for a build."""

    def __init__(self, build):
        self._future = Future()

        def run():
            try:
                self._future.set_result(build())
            except BaseException as exc:   # noqa: BLE001  (raised again where the program is called)
                self._future.set_exception(exc)

        threading.Thread(target=run, name="bayescale-compile", daemon=True).start()

    def __call__(self, *args):
        return self._future.result()(*args)


def _get_sampler(spec: ModelSpec, args: tuple, settings: Settings, x64: bool, draws: int,
                 on_compile=None) -> _Sampler:
    # One compiled sampler per model, data shape and float type; padded point counts share it
    # (bucket_size). Built at most once, under the tracing lock, however many threads ask.
    # ``on_compile`` is called only when it is really built (a cold start takes seconds).
    shapes = jax.tree.map(lambda a: (a.shape, str(a.dtype)), args)
    key = ("nuts", spec.key(), json.dumps(shapes, sort_keys=True, default=str), settings, x64)

    def build():
        if on_compile is not None:
            on_compile()
        return compile_nuts(make_model(spec), args, settings, x64=x64)

    nuts = PROGRAMS.get(key, build)
    outputs_key = key + ("outputs", draws)
    found, outputs = PROGRAMS.peek(outputs_key)
    if found:   # compiled already: no thread
        return _Sampler(nuts, outputs)
    return _Sampler(nuts, _Deferred(lambda: PROGRAMS.get(outputs_key, lambda: nuts.compile_outputs(args, draws))))


def _pad(a, size: int):
    """Pad axis 0 to ``size`` by repeating the last row (valid values, so no NaN gradients)."""
    a = np.asarray(a)
    return np.concatenate([a, np.repeat(a[-1:], size - len(a), axis=0)]) if size > len(a) else a


def model_arguments(spec: ModelSpec, data: Dataset) -> tuple:
    """``(x, idx, y, aux, walk)`` for the model as NumPy arrays (float64, group indices int32),
    rows padded to :func:`bucket_size` and masked; the sampler casts them to its float type.
    ``walk`` is empty for the law alone."""
    size = bucket_size(data.n)
    centred = centre(spec.law, data.inputs, spec.logref)
    x = {k: _pad(v, size) for k, v in centred.items()}
    idx = {g: _pad(data.group_index[g], size).astype(np.int32) for g in spec.coords}
    aux_np = extra_columns(data.frame, spec.law.extras)
    aux = {k: _pad(v, size).astype(np.float64) for k, v in aux_np.items()}
    aux[MASK] = (np.arange(size) < data.n).astype(np.float64)  # always: one pytree shape
    y = _pad(spec.law.observation.site_value(data.response, aux_np), size).astype(np.float64)
    walk = {}
    if spec.discrepancy is not None:
        walk = {k: _pad(v, size) for k, v in walk_inputs(spec.discrepancy, centred, data.group_index).items()}
    return x, idx, y, aux, walk


def sample_posterior(
    spec: ModelSpec, data: Dataset, *, seed=0, chains=4, warmup=1000, draws=1000,
    progress=None, target_accept=0.8, dense_mass=None, max_draws=None, more_draws=None, started=None,
    gradient_metric: bool = False,
) -> tuple[az.InferenceData, dict]:
    """Run NUTS and return labelled InferenceData plus timing / step statistics.

    With ``more_draws`` (a function of the InferenceData so far), the chains continue for another
    ``draws`` draws each while it returns True, up to ``max_draws`` draws per chain in all.
    ``started`` (a ``time.perf_counter()`` value): when the caller began, for ``prepare_seconds``,
    the wait before the chains start. ``gradient_metric``: each warmup window's metric from its
    draws and its gradients (dense: :func:`bayescale.samplers.adaptation.gradient_informed_covariance`;
    diagonal: :func:`~bayescale.samplers.adaptation.gradient_scaled_variance`), measured by
    benchmarks/metric_probe.py."""
    for name, value in (("chains", chains), ("warmup", warmup), ("draws", draws)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise BayescaleError(f"{name} must be a positive integer, got {value!r}")
    t_prepare = time.perf_counter() if started is None else started
    ensure_configured()
    x64 = use_x64(data.n)
    with precision(x64):   # float64 (or float32) device arrays, whatever model_arguments built
        args = jax.device_put(cast_arguments(model_arguments(spec, data), x64))
    n_latent = _count_latent(spec)
    dense = n_latent <= DENSE_MASS_MAX_PARAMS if dense_mass is None else bool(dense_mass)
    warm_start = use_warm_start(data.n, n_latent)
    floors = neck_floors({f"{k}_tau": prior_median(spec.priors[f"{k}_tau"]) for k in spec.centred
                          if not isinstance(spec.priors[f"{k}_tau"], dist.Delta)}) if warm_start else ()
    settings = Settings(warmup=int(warmup), dense=dense, target_accept=float(target_accept),
                        warm_start=warm_start, neck_floors=floors, gradient_metric=bool(gradient_metric))
    progress = resolve_progress(progress)
    announce = functools.partial(progress_note, f"compiling the sampler for {spec.law.spec} (first fit of this "
                                       "shape; later fits reuse it)") if progress else None
    sampler = _get_sampler(spec, args, settings, x64, int(draws), on_compile=announce)
    max_draws = int(draws) if max_draws is None else max(int(max_draws), int(draws))
    blocks, states, restarts = [], None, []
    t0 = time.perf_counter()
    with progress_bar(total=chains * (warmup + draws), desc=f"NUTS {chains} chains", unit="it",
                      disable=not progress, leave=False) as bar:
        while True:
            *block, states = run_chains(sampler.nuts, args, seed=seed, chains=chains, draws=draws,
                                        outputs=sampler.outputs, on_progress=bar.update, resume=states,
                                        restarts=restarts if states is None else None)
            blocks.append(block)
            (samples, loglik), extra = jax.tree.map(lambda *a: np.concatenate(a, axis=1), *blocks)
            loglik = np.ascontiguousarray(loglik[..., :data.n])
            idata = inference_data(spec, data, samples, {
                "diverging": extra["diverging"].astype(bool), "n_steps": extra["num_steps"],
                "acceptance_rate": extra["accept_prob"], "lp": -extra["potential_energy"],
                "energy": extra["energy"],
            }, loglik)
            if (len(blocks) + 1) * draws > max_draws or more_draws is None or not more_draws(idata):
                break
            bar.total += chains * draws
            bar.refresh()
    elapsed = time.perf_counter() - t0
    stats = {
        "sampling_seconds": elapsed,
        "prepare_seconds": t0 - t_prepare,   # checks, arguments, compiled sampler: the wait before the chains start
        "mean_steps_per_draw": float(extra["num_steps"].mean()),
        "dense_mass": dense,
        "gradient_metric": bool(gradient_metric),
        "covariance_shrinkage": "relative",
        "float64": x64,
        "warm_start": settings.warm_start,
        "chain_threads": worker_count(chains),
        "n_latent": n_latent,
        "draws_requested": int(draws),
        "draws_per_chain": len(blocks) * int(draws),
        # per chain: how often it started again, stuck at the end of warmup (samplers.nuts.STUCK_SHARE)
        "warmup_restarts": [int(r) for r in restarts],
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


def default_target_accept(spec: ModelSpec) -> float:
    """NUTS's target acceptance at the defaults. A scale times standard-normal offsets makes a
    funnel, so smaller steps there: 0.95 for pooled law parameters and group offsets. With the
    discrepancy walk the law's curvature trades against the walk's, more freely the larger its scale: on 160-run
    Chinchilla simulations (law coordinates) 0.95 left 0-12 divergences in 4,000 draws in 6 seeds
    at 40-56 leapfrog steps per draw, 0.99 none at 72-110 (the natural coordinates took 100-218
    at 0.95). The law alone: 0.8."""
    if spec.discrepancy is not None:
        return 0.99
    funnel = bool(spec.offsets) or any(k in spec.law.params for k in spec.pooled)
    return 0.95 if funnel else 0.8


DEFAULT_DRAWS, EXTEND_FACTOR = 1000, 4
EXTEND_RHAT_MAX = 1.05      # beyond it chains disagree; more draws seldom fix that, so warn at once
EXTEND_LOGLIK_CELLS = 2.5e8  # chains x draws x rows of float32 pointwise log likelihood (1 GB)


def check_draws(draws, max_draws, chains: int, n_rows: int) -> tuple[int, int]:
    """``(draws, max_draws)`` as ints. ``draws`` None: DEFAULT_DRAWS, and ``max_draws`` None then
    EXTEND_FACTOR times that; an explicit ``draws`` is kept exactly unless ``max_draws`` is given.
    ``max_draws`` below ``draws`` is an error; it is capped by the pointwise log likelihood's memory,
    never below ``draws``."""
    default_draws = draws is None
    if draws is None:
        draws, default_max = DEFAULT_DRAWS, EXTEND_FACTOR * DEFAULT_DRAWS
    else:
        default_max = draws
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise BayescaleError(f"draws must be a positive integer, got {draws!r}")
    if max_draws is None:
        max_draws = default_max
    elif isinstance(max_draws, bool) or not isinstance(max_draws, (int, np.integer)) or max_draws < 1:
        raise BayescaleError(f"max_draws must be a positive integer (or None: see draws), got {max_draws!r}")
    elif max_draws < draws:
        raise BayescaleError(f"max_draws ({max_draws}) is below draws ({draws} per chain{', the default' if default_draws else ''}): "
                             f"give max_draws of at least {draws}, or fewer draws (draws={max_draws}; CLI --draws {max_draws})")
    memory = int(EXTEND_LOGLIK_CELLS // max(int(chains) * int(n_rows), 1))
    return int(draws), max(int(draws), min(int(max_draws), memory))


def more_draws_help(spec: ModelSpec, max_draws: int):
    """Whether to continue the chains: the diagnostics miss r_hat <= 1.01 or bulk ESS >= 400, but
    with no divergence (more draws do not remove a bias), r_hat <= 1.05 (the chains roughly agree)
    and a bulk ESS that, growing with the draws, would pass by ``max_draws``. On 4 x 1,000 draws,
    r_hat's own noise at a bulk ESS of ~500 reaches 1.01 (a well-specified 160-run simulation had
    r_hat 1.0104 with ESS 436 and no divergence); a longer chain settles it."""
    def judge(idata) -> bool:
        d = sampling_diagnostics(idata, latent_names(spec, idata.posterior))
        if d["divergences"] or not np.isfinite(d["max_rhat"]):
            return False
        if d["max_rhat"] <= RHAT_MAX and d["min_ess_bulk"] >= ESS_MIN:
            return False
        drawn = idata.posterior.sizes["draw"]
        return d["max_rhat"] <= EXTEND_RHAT_MAX and d["min_ess_bulk"] * max_draws / drawn >= ESS_MIN
    return judge


def _pool_per_law(pool, laws) -> dict:
    """A stack's pooling per law: ``{law: {...}}`` as given, or one dict such as
    ``{"log_A0": "family"}`` applied to each law that has the parameter (the laws name their
    parameters differently), or both: ``{"log_A0": "family", "farseer": {"log_u": "family"}}``
    (a law's own entries on top of the shared ones). A name no law has is an error, and a law
    that lacks one, and has no entries of its own, is told."""
    return _per_law(pool, laws, "pool", lambda law: set(law.all_params()), "pooling")


def _priors_per_law(priors, laws) -> dict:
    """A stack's priors per law, read as :func:`_pool_per_law` reads pools: a shared name goes to
    each law that has the parameter (or its group spread, NAME_tau), a law's name to its own."""
    def names(law):
        params = set(law.all_params())
        return params | {f"{k}_tau" for k in params}
    return _per_law(priors, laws, "priors", names, "priors")


def _per_law(setting, laws, what: str, known, default: str) -> dict:
    names = [str(one) for one in laws]
    if not isinstance(setting, dict) or not setting:
        return {name: setting for name in names}
    own = {k: v for k, v in setting.items() if k in names}
    shared = {k: v for k, v in setting.items() if k not in names}
    if not shared:
        return {name: own.get(name) for name in names}
    bad = [k for k, v in own.items() if v is not None and not isinstance(v, dict)]
    if bad:
        example = "{'E': 'dataset'}" if what == "pool" else "{'alpha': 'Normal(0.3, 0.1)'}"
        raise BayescaleError(f"{what}[{bad[0]!r}] must be a dict of that law's {default} such as {example}, "
                             f"got {own[bad[0]]!r}")
    params = {name: known(get_law(name)) for name in names}
    unknown = [k for k in shared if not any(k in p for p in params.values())]
    if unknown:
        verb = "cannot pool" if what == "pool" else "cannot set a prior on"
        raise BayescaleError(f"{verb} {unknown}: none of the laws {names} has such a parameter "
                             f"({'; '.join(f'{n}: {sorted(p)}' for n, p in params.items())})")
    out = {}
    for name in names:
        mine = {k: g for k, g in shared.items() if k in params[name]}
        skipped = [k for k in shared if k not in mine]
        if skipped and name not in own:
            # none of the names applies: the law's own defaults (its counterpart of the parameter,
            # e.g. farseer's log_u for chinchilla's log_A0), not something unpooled or unset
            warnings.warn(f"law {name!r} has no parameter {skipped}, so it is fitted with "
                          + (f"{what}={mine}" if mine else f"its default {default}")
                          + f" (to choose its own, give {what} per law: {what}={{'{name}': {{...}}, ...}})",
                          BayescaleWarning, stacklevel=caller_stacklevel(os.path.dirname(__file__)))
        out[name] = {**mine, **(own.get(name) or {})} or None
    return out


def _fit_stack(df, laws, options: dict, strict: bool) -> StackedFit:
    """One fit per law, each law's warnings said with its name; with ``strict``, every law is
    fitted first and the error carries the whole stacked fit (to save and inspect)."""
    fits = {}
    pools, priors = options["pool"], options["priors"]   # per law (fit resolved them)
    for one in laws:
        with warnings_labelled(str(one), os.path.dirname(__file__)):
            fits[str(one)] = fit(df, one, strict=False, **{**options, "pool": pools[str(one)],
                                                           "priors": priors[str(one)]})
    stack = StackedFit(fits)
    problems = {name: f.sampling_problems() for name, f in fits.items()}
    failing = {name: found for name, found in problems.items() if found}
    if strict and failing:
        raise UnreliableSamplingError(
            "sampling looks unreliable in " + "; ".join(f"{k}: {', '.join(v)}" for k, v in failing.items())
            + ". Every law was fitted; the stacked fit is kept (.fit) for inspection.", fit=stack)
    return stack


def fit(df, law="chinchilla", pool=None, priors=None, seed=0, chains=4, warmup=1000, draws=None,
        progress=None, *, columns=None, duplicates="error", target_accept=None, dense_mass=None,
        parametrisation="auto", discrepancy="auto", offset=None, discrepancy_by="auto", strict=False,
        max_draws=None):
    """Fit a scaling law to a table of runs with NUTS; returns a :class:`bayescale.Fit`.

    ``law`` is one law ("chinchilla") or several (["chinchilla", "farseer"]): then each is fitted
    and a :class:`bayescale.stacking.StackedFit` predicts with their PSIS-LOO stacking weights.

    ``pool`` None uses the law's default pooling, "none" shares every law parameter, and a dict
    such as ``{"alpha": "family", "E": "dataset"}`` lists exactly which law parameters vary by
    which grouping column. ``priors`` overrides any prior, e.g. ``{"alpha": dist.Normal(0.3, 0.1)}``
    or ``{"alpha": "Normal(0.3, 0.1)"}``. ``discrepancy`` adds a model-discrepancy term whose
    variance grows with the distance from the fitted runs (:mod:`bayescale.discrepancy`): "auto"
    (the default) gives its scale the prior learned across the public studies, a prior such as
    ``"LogNormal(-4, 1)"`` sets it, ``"none"`` fits the law alone. ``discrepancy_by``: "auto" gives
    each group its own walk (one scale) when the law's parameters vary by exactly one grouping and
    every group has 8 distinct runs, "none" one walk for all rows, or a grouping column.
    ``offset="family"`` (or another grouping column, an interaction such as "family*task", or a list
    of them) adds a shift of the curve per group, shared across scales and across the groupings the
    law's parameters vary by (:mod:`bayescale.group_offset`). ``seed`` lies in [0, 2^32).
    ``draws`` None (the default) draws 1,000 per chain and, when the diagnostics miss their targets
    only by what more draws can fix (see :func:`more_draws_help`), continues 1,000 at a time up to
    ``max_draws`` (default 4,000); a number draws exactly that many unless ``max_draws`` is larger.
    The fit records how many were drawn (``fit.config["stats"]["draws_per_chain"]``).
    ``progress`` None (the default) draws the sampling bar on stderr only when it is a terminal;
    True or False forces it.
    When the convergence diagnostics fail, a :class:`bayescale.errors.UnreliableSampling` warning
    carries the fit as ``.fit``; ``strict=True`` raises :class:`bayescale.errors.UnreliableSamplingError`
    (also with ``.fit``) instead.
    """
    seed = check_seed(seed)
    target_accept = check_target_accept(target_accept)
    strict, dense_mass = check_flag(strict, "strict"), check_flag(dense_mass, "dense_mass", none=True)
    progress = resolve_progress(progress)
    if isinstance(law, (list, tuple)):   # law uncertainty: one fit per law, mixed by stacking
        specs = [get_law(one).spec for one in law]   # unknown names fail here, before any fit
        if len(set(specs)) != len(specs) or len(law) < 2:
            raise BayescaleError(f"give two or more different laws to stack, got {list(law)}"
                                 + (f" (they name the laws {specs})" if specs != list(law) else ""))
        pools = _pool_per_law(pool, law)   # one law's parameter may be missing from another
        law_priors = _priors_per_law(priors, law)
        for one in law:   # every law's columns, pooling and priors are checked before the first fit
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BayescaleWarning)   # each fit says its notes itself
                build(df, one, pool=pools[str(one)], priors=law_priors[str(one)], columns=columns, duplicates=duplicates,
                      parametrisation=parametrisation, discrepancy=discrepancy, offset=offset,
                      discrepancy_by=discrepancy_by)
        options = dict(pool=pools, priors=law_priors, seed=seed, chains=chains, warmup=warmup, draws=draws,
                       progress=progress, columns=columns, duplicates=duplicates, target_accept=target_accept,
                       dense_mass=dense_mass, parametrisation=parametrisation, discrepancy=discrepancy,
                       offset=offset, discrepancy_by=discrepancy_by, max_draws=max_draws)
        return _fit_stack(df, law, options, strict)
    started = time.perf_counter()
    spec, data = build(df, law, pool=pool, priors=priors, columns=columns, duplicates=duplicates,
                       parametrisation=parametrisation, discrepancy=discrepancy, offset=offset,
                       discrepancy_by=discrepancy_by)
    if target_accept is None:
        target_accept = default_target_accept(spec)
    for note in spec.notes:
        if note not in data.notes:
            warnings.warn(note, BayescaleWarning, stacklevel=2)
    t0 = time.perf_counter()
    draws, max_draws = check_draws(draws, max_draws, chains, data.n)
    idata, stats = sample_posterior(spec, data, seed=seed, chains=chains, warmup=warmup, draws=draws,
                                    progress=progress, target_accept=target_accept, dense_mass=dense_mass,
                                    max_draws=max_draws, more_draws=more_draws_help(spec, max_draws),
                                    started=started)
    stats["total_seconds"] = time.perf_counter() - t0
    config = fit_config(spec, data, seed=seed, chains=chains, warmup=warmup, draws=draws,
                        target_accept=target_accept, stats=stats, columns=columns, max_draws=max_draws,
                        duplicates=duplicates)
    idata.posterior.attrs["bayescale"] = json.dumps(config)
    idata.posterior.attrs.update(law=spec.law.spec, data_hash=config["data_hash"], seed=int(seed),
                                 bayescale_version=__version__)
    result = Fit(idata)
    result.add_posterior_predictive(deferred=True)
    result.warn_diagnostics(strict=strict)
    return result


