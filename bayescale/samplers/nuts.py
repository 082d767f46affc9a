"""Compiled NUTS driver: one XLA program per model and data shape, warmup adaptation of our own,
chains run in threads.

The transitions are NumPyro's multinomial NUTS kernels (``numpyro.infer.hmc.hmc``), initialised
with ``num_warmup=0`` so that the kernel never adapts anything itself. Warmup is done here, in the
same compiled loop, with the pieces of :mod:`bayescale.samplers.adaptation`: after each transition
the step size is updated by dual averaging from its acceptance probability; in Stan's windows the
draws feed a streaming covariance; at each window's end the kernel's ``adapt_state`` gets the new
inverse mass matrix (regularised relative to each coordinate's variance) and its square roots, and
dual averaging restarts at mu = log(10 eps); after warmup the averaged step size is kept.

NumPyro's ``MCMC`` re-runs its initialisation eagerly on every ``run`` (on CPU that compiles dozens
of tiny programs) and its vectorized chains advance in lockstep at the deepest chain's tree depth.
Here the initialisation and a chunk of ``CHUNK`` transitions are each compiled ahead of time, once
per (model, shapes, settings, float type), as functions of the data, so a new dataset of the same
shape runs without tracing. Chains run in a thread pool (JAX releases the GIL while a program
runs), each at its own tree depth; a chain's draws depend only on its key, not on the threads.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer.hmc import hmc
from numpyro.infer.util import ParamInfo, initialize_model, log_likelihood

from ..errors import BayescaleError
from . import adaptation as ad
from .cache import tracing
from .precision import precision

CHUNK = 50          # transitions per call of the compiled program (progress granularity)
INIT_RADIUS = 2.0   # initial unconstrained values ~ Uniform(-2, 2), like NumPyro's init_to_uniform
INIT_TRIES = 100
# A chain that ends warmup with most transitions at the tree-depth cap is stuck: its step size
# collapsed in a narrow region it entered early (seen on 5-point curves: the noise scale near 0,
# log density 100 below the other chains). Warmup draws are discarded, so it restarts from a new
# starting point (a fresh, independent initialisation: the chains' independence, which r_hat
# relies on, is kept), at most RESTARTS times.
STUCK_SHARE = 0.9
RESTARTS = 2
# per transition; "energy" is the Hamiltonian (potential + kinetic) of the draw, for ArviZ's BFMI
FIELDS = ("z", "num_steps", "diverging", "accept_prob", "potential_energy", "energy")
OUTPUT_BLOCK = 1 << 20   # draws x rows evaluated at once by the log-likelihood (memory bound)
# XLA:CPU's default code generator for fusions ("fusion emitters") took twice as long to compile
# the sampler's programs as its older elemental emitters (Epoch's law alone: init 1.4 -> 0.8 s,
# NUTS chunk 2.1 -> 1.2 s), with the same gradient speed on small tables (240-480 rows) but 12-20 %
# slower on Gadre's pooled 104 rows, 2x slower from 2,400 rows, and 7-70 % slower with a
# discrepancy walk, whose fits take hundreds of leapfrog steps per draw. So the older emitters are
# used only where compiling dominates: the law alone (a handful of steps per draw with a dense
# metric) on at most this many rows, on CPU.
FAST_COMPILE_MAX_ROWS = 1024
WARM_START_MIN_ROWS = 2048   # from this many data rows, chains start near the mode (see warm_start)
WARM_START_MAX_LATENT = 60   # the damped Newton steps need the Hessian: latent dimensions up to this


def use_warm_start(n_rows: int, n_latent: int) -> bool:
    """Whether chains start from the mode (see ``warm_start`` in :func:`compile_nuts`).

    Measured on 1%-noise Chinchilla tables (1000 warmup + 1000 draws): from a Uniform(-2, 2) start
    the transient to the narrow posterior cost 2.5-4.2 s of sampling at 2,000 rows (1.1-1.2 s from
    the mode; 4 chains), 5.3-7.7 s at 5,000 (1.9-2.0 s) and, at 20,000 rows in float64 with 2
    chains, 268 s per fit against 40 s (a metric estimated from the transient made later windows
    take 100-900 leapfrog steps per draw). At 240 rows it gained nothing, and the warm start
    costs about 4 s more compilation. A model with centred group values may have no mode at all:
    see :func:`neck_floors`."""
    return int(n_rows) >= WARM_START_MIN_ROWS and int(n_latent) <= WARM_START_MAX_LATENT


NECK_RATIO = 1e-3   # a group spread this far below its prior's median marks Newton's "mode" as the neck


def neck_floors(spreads: dict) -> tuple[tuple[str, float], ...]:
    """For the warm start of a model with centred group values: (site, floor) per group spread
    tau, the floor on its unconstrained value log tau below which Newton's result is taken to be
    the neck, not a mode. ``spreads`` maps each spread's site to its prior's median.

    A centred hierarchy's joint density grows without bound as tau shrinks to 0 with every group
    at the population value. Where the groups differ, Newton from a uniform start finds the local
    mode (a 20,000-row table pooled by family: 24 s and r_hat 1.015 from there, against 310 s and
    r_hat 2.7 from the uniform start); where they barely differ it runs into that neck, and chains
    started there with its Laplace metric never leave (choice-mass pooled by task on 4,200
    Gemstones rows: log_b's spread 5e-6, 1,023 leapfrog steps per draw, r_hat 1e16). Then the
    chains start from the uniform draw instead."""
    return tuple((site, float(np.log(NECK_RATIO * median))) for site, median in sorted(spreads.items()))


def worker_count(chains: int) -> int:
    """Threads for the chains: $BAYESCALE_CHAIN_THREADS, else one per usable core, at most one
    per chain."""
    env = os.environ.get("BAYESCALE_CHAIN_THREADS")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise BayescaleError(f"BAYESCALE_CHAIN_THREADS must be a positive integer, got {env!r}; "
                                 "unset it to use one thread per core")
        cores = int(env)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(chains, cores))


@dataclass(frozen=True)
class Settings:
    warmup: int
    dense: bool
    target_accept: float
    max_tree_depth: int = 10
    relative_shrinkage: bool = True   # False: Stan's / NumPyro's absolute 1e-3·I (tests' control)
    warm_start: bool = False          # Newton to the mode, Laplace start and metric (see init)
    neck_floors: tuple = ()           # ((site, floor of log tau), ...): see neck_floors
    # each window's metric from its draws and its gradients (adaptation.gradient_informed_covariance,
    # or gradient_scaled_variance when diagonal); measured against the defaults by benchmarks/metric_probe.py
    gradient_metric: bool = False


class Adaptation(NamedTuple):
    """Warmup state carried beside NumPyro's HMCState."""
    dual: ad.DualAveraging
    window: ad.Welford
    grads: ad.Welford     # the window's gradients (updated only with Settings.gradient_metric)


@dataclass
class CompiledNUTS:
    """Compiled pieces of one sampler; every function takes the model arguments as data."""
    init: Callable        # (key, args) -> (HMCState, Adaptation)
    chunk: Callable       # (carry, args) -> (carry, fields of CHUNK transitions)
    settings: Settings
    x64: bool
    model: Callable
    postprocess_gen: Callable
    prototype: dict       # a zero unconstrained point (shapes and dtypes)

    @property
    def warmup(self) -> int:
        return self.settings.warmup

    def compile_outputs(self, example_args: tuple, draws: int) -> Callable:
        """Compile ``(z of one chain, args) -> (constrained sites and deterministics, pointwise
        log likelihood of "y" in float32)`` for ``draws`` draws; draws are taken in blocks of
        about OUTPUT_BLOCK / rows, so memory stays bounded on large tables."""
        model, postprocess_gen = self.model, self.postprocess_gen
        rows = max(int(np.size(example_args[2])), 1)
        block = int(max(1, min(draws, OUTPUT_BLOCK // rows)))

        def outputs(z, args):
            constrain = postprocess_gen(*args)

            def one(zi):
                samples = {k: v for k, v in constrain(zi).items() if k != "y"}
                loglik = log_likelihood(model, samples, *args, batch_ndims=0)["y"]
                return samples, loglik.astype(jnp.float32)

            return jax.lax.map(one, z, batch_size=block)

        z_spec = jax.tree.map(lambda v: jax.ShapeDtypeStruct((draws,) + v.shape, v.dtype), self.prototype)
        with tracing(), precision(self.x64):
            return compile_lowered(jax.jit(outputs).lower(z_spec, example_args), compiler_options(example_args))


def compiler_options(example_args: tuple) -> dict | None:
    """XLA options for the programs of ``model(*example_args)``: see FAST_COMPILE_MAX_ROWS."""
    _x, _idx, y, _aux, walk = example_args
    if walk or np.size(y) > FAST_COMPILE_MAX_ROWS or jax.default_backend() != "cpu":
        return None
    return {"xla_cpu_use_fusion_emitters": False}


def init_compiler_options(options: dict | None, settings: Settings) -> dict | None:
    """The init program's options: ``options`` at XLA's lowest backend optimisation level on CPU.

    Without a warm start the init program runs once per chain (a uniform draw, the density and
    its gradient there), so how fast its code runs does not matter, and the lowest level halves
    its compile (Epoch's law alone 1.0 -> 0.45 s, with the discrepancy walk 2.5 -> 1.8 s, cold, in
    single runs). The warm start's damped Newton evaluates Hessians over large tables: it keeps
    full optimisation."""
    if settings.warm_start or jax.default_backend() != "cpu":
        return options
    return dict(options or {}, xla_backend_optimization_level=0)


def compile_lowered(lowered, options: dict | None):
    """``lowered.compile`` with ``options``; without them where this XLA does not know one."""
    if options:
        try:
            return lowered.compile(compiler_options=options)
        except Exception as exc:   # noqa: BLE001  (an XLA without the option: compile as usual)
            if not any(k in str(exc) for k in options):
                raise
    return lowered.compile()


def compile_nuts(model, example_args: tuple, settings: Settings, *, x64: bool = False) -> CompiledNUTS:
    """Trace and compile the sampler for ``model(*args)`` at the shapes of ``example_args`` (which
    must already be of the float type ``x64`` selects)."""
    with tracing(), precision(x64):
        return _compile(model, example_args, settings, x64)


def _compile(model, example_args, settings: Settings, x64: bool) -> CompiledNUTS:
    potential_fn_gen, postprocess_gen, prototype = _model_functions(model, example_args)
    dim = int(ravel_pytree(prototype)[0].shape[0])
    warmup, dense, target = settings.warmup, settings.dense, settings.target_accept
    gradient_metric = settings.gradient_metric
    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")
    collect, ends = ad.window_schedule(warmup)

    def initial_point(key, args):
        """Uniform(-2, 2) unconstrained draws until the density and its gradient are finite;
        returned with both, so the kernel does not evaluate them again."""
        potential = potential_fn_gen(*args)

        def draw(k):
            leaves, tree = jax.tree.flatten(prototype)
            keys = jax.random.split(k, len(leaves))
            z = jax.tree.unflatten(tree, [jax.random.uniform(kk, jnp.shape(v), v.dtype, -INIT_RADIUS,
                                                             INIT_RADIUS)
                                          for kk, v in zip(keys, leaves)])
            pe, grad = jax.value_and_grad(potential)(z)
            return ParamInfo(z, pe, grad), jnp.isfinite(pe) & jnp.all(jnp.isfinite(ravel_pytree(grad)[0]))

        def cond(c):
            i, _, _, ok = c
            return (~ok) & (i < INIT_TRIES)

        def body(c):
            i, k, _, _ = c
            k, sub = jax.random.split(k)
            info, ok = draw(sub)
            return i + 1, k, info, ok

        start = ParamInfo(prototype, jnp.zeros((), jnp.result_type(float)), prototype)
        _, _, info, _ = jax.lax.while_loop(cond, body, (0, key, start, False))
        return info

    def warm_start(key, info, args):
        """From the uniform start, damped Newton to the mode; the chain starts at a draw from the
        Laplace approximation there, with its covariance as the first inverse mass matrix.

        For large tables (see :func:`bayescale.samplers.precision.warm_start`): the posterior is
        then narrow (sd ~1e-3 on the unconstrained scale at 20,000 rows) and far from a
        Uniform(-2, 2) start, and a chain started there with a unit metric spent hundreds of
        iterations at hundreds of leapfrog steps each reaching it, while the first windows
        estimated the metric from that transient and made the next windows as slow."""
        potential = potential_fn_gen(*args)
        flat, unravel = ravel_pytree(info.z)
        flat_potential = lambda f: potential(unravel(f))   # noqa: E731
        mode, u, g, h = ad.damped_newton(flat_potential, flat)
        cov = ad.laplace_covariance(h)
        start = mode + jnp.linalg.cholesky(cov) @ jax.random.normal(key, mode.shape, mode.dtype)
        u_start, g_start = jax.value_and_grad(flat_potential)(start)
        ok = jnp.isfinite(u_start) & jnp.all(jnp.isfinite(g_start))
        z, u, g = (jnp.where(ok, a, b) for a, b in ((start, mode), (u_start, u), (g_start, g)))
        at_mode = unravel(mode)
        neck = jnp.zeros((), bool)
        for site, floor in settings.neck_floors:   # not a mode: back to the uniform start, unit metric
            neck = neck | jnp.any(at_mode[site] < floor)
        z, u, g = (jnp.where(neck, a, b) for a, b in ((flat, z), (info.potential_energy, u),
                                                        (ravel_pytree(info.z_grad)[0], g)))
        cov = jnp.where(neck, jnp.eye(cov.shape[0], dtype=cov.dtype), cov)
        return ParamInfo(unravel(z), u, unravel(g)), cov if dense else jnp.diagonal(cov)

    def init(key, args):
        key_init, key_run = jax.random.split(key)
        info, inverse = initial_point(key_init, args), None
        if settings.warm_start:
            info, inverse = warm_start(jax.random.fold_in(key_init, 1), info, args)
        # num_warmup=0: the kernel's own adapter never runs; warmup is ours (see chunk)
        state = init_kernel(info, 0, inverse_mass_matrix=inverse, dense_mass=dense,
                            target_accept_prob=target, max_tree_depth=settings.max_tree_depth,
                            model_args=args, rng_key=key_run)
        return state, Adaptation(ad.dual_averaging_init(state.adapt_state.step_size),
                                 ad.welford_init(dim, dense), ad.welford_init(dim, dense and gradient_metric))

    collect_j, ends_j = (jnp.asarray(np.append(a, False)) for a in (collect, ends))

    def adapt(state, adaptation):
        """Our warmup update after the transition that produced ``state`` (iteration t)."""
        t = state.i - 1
        dual = ad.dual_averaging_update(adaptation.dual, state.accept_prob, target)
        last = t == warmup - 1
        eps = ad.step_size(jnp.where(last, dual.log_step_avg, dual.log_step))
        pos = jnp.minimum(t, warmup)
        window = ad.welford_update(adaptation.window, ravel_pytree(state.z)[0], collect_j[pos])
        grads = adaptation.grads
        if gradient_metric:
            grads = ad.welford_update(grads, ravel_pytree(state.z_grad)[0], collect_j[pos])

        def window_end(operands):
            window, grads, _, kernel = operands
            if gradient_metric and dense:
                cov = ad.gradient_informed_covariance(window, grads, settings.relative_shrinkage)
            elif gradient_metric:
                cov = ad.gradient_scaled_variance(window, grads, settings.relative_shrinkage)
            else:
                cov = ad.window_covariance(window, settings.relative_shrinkage)
            inverse, sqrt, sqrt_inv = ad.mass_matrix_factors(cov)
            kernel = kernel._replace(inverse_mass_matrix=inverse, mass_matrix_sqrt=sqrt,
                                     mass_matrix_sqrt_inv=sqrt_inv)
            return (ad.welford_init(dim, dense, window.n.dtype),
                    ad.welford_init(dim, dense and gradient_metric, window.n.dtype),
                    ad.dual_averaging_init(eps), kernel)

        window, grads, dual, kernel = jax.lax.cond(ends_j[pos], window_end, lambda o: o,
                                                   (window, grads, dual, state.adapt_state))
        kernel = kernel._replace(step_size=eps)
        return state._replace(adapt_state=kernel), Adaptation(dual, window, grads)

    def chunk(carry, args):
        def step(c, _):
            state, adaptation = c
            state = sample_kernel(state, model_args=args)
            state, adaptation = jax.lax.cond(state.i <= warmup, adapt, lambda s, a: (s, a),
                                             state, adaptation)
            return (state, adaptation), tuple(getattr(state, f) for f in FIELDS)
        return jax.lax.scan(step, carry, None, length=CHUNK)

    options = compiler_options(example_args)
    lowered = jax.jit(init).lower(jax.random.PRNGKey(0), example_args)
    init_compiled = compile_lowered(lowered, init_compiler_options(options, settings))
    chunk_compiled = compile_lowered(jax.jit(chunk).lower(lowered.out_info, example_args), options)
    return CompiledNUTS(init=init_compiled, chunk=chunk_compiled, settings=settings, x64=x64,
                        model=model, postprocess_gen=postprocess_gen, prototype=prototype)


def _model_functions(model, example_args):
    """NumPyro's potential and postprocess function generators and a zero unconstrained point in
    the current float type.

    ``initialize_model`` runs the model eagerly, op by op, which on CPU compiles dozens of tiny
    programs (seconds); here it runs under abstract tracing instead, and only shapes are kept."""
    captured = {}

    def capture(*args):
        info, potential_gen, postprocess_gen, _ = initialize_model(
            jax.random.PRNGKey(0), model, dynamic_args=True, model_args=args)
        captured.update(potential=potential_gen, postprocess=postprocess_gen,
                        shapes={k: jnp.shape(v) for k, v in info.z.items()})
        return 0

    jax.eval_shape(capture, *example_args)
    # the priors' own parameters may be float32 constants: the sampler's point is in the float
    # type of this trace (float64 under precision(True)), whatever the priors were built in
    floating = jnp.result_type(float)
    prototype = {k: jnp.zeros(shape, floating) for k, shape in captured["shapes"].items()}
    return captured["potential"], captured["postprocess"], prototype


def run_chains(sampler: CompiledNUTS, args: tuple, *, seed: int, chains: int, draws: int,
               outputs: Callable | None = None,
               on_progress: Callable[[int], None] | None = None,
               resume: list | None = None, restarts: list | None = None) -> tuple[dict, dict, list]:
    """Run ``chains`` chains; return per-draw arrays, each (chain, draw, ...), and each chain's
    final state.

    Without ``outputs``: (unconstrained draws, fields, states). With ``outputs`` (from
    :meth:`CompiledNUTS.compile_outputs` for ``draws``), each chain's thread also evaluates it:
    ((constrained samples, pointwise log likelihood), fields, states). ``resume`` (the states of
    an earlier call) continues those chains for ``draws`` more draws, without warmup. ``args`` must
    be arrays of the sampler's float type. Transitions run in chunks of ``CHUNK``; the total is
    rounded up to whole chunks and the extra trailing draws are dropped (a thinning that leaves a
    continued chain valid), so every call reuses the one chunk program. A chain stuck at the end
    of warmup (:data:`STUCK_SHARE`) starts again; ``restarts``, a list, receives each chain's
    number of restarts."""
    skip = 0 if resume is not None else sampler.warmup
    total = skip + draws
    n_chunks = -(-total // CHUNK)
    keys = jax.random.split(jax.random.PRNGKey(seed), chains)
    lock = threading.Lock()
    stop = threading.Event()   # set on Ctrl-C: every chain stops at its next chunk

    cap = 2 ** sampler.settings.max_tree_depth - 1
    restarted = [0] * chains

    def stuck(parts) -> bool:
        steps = np.concatenate([p[1] for p in parts])[max(0, skip - CHUNK):skip]
        return bool(np.mean(steps >= cap) >= STUCK_SHARE)

    def one_chain(c: int):
        with precision(sampler.x64):   # thread-local: every chain thread enters it
            for attempt in range(RESTARTS + 1):
                if resume is not None:
                    carry = resume[c]
                else:
                    carry = sampler.init(keys[c] if attempt == 0 else jax.random.fold_in(keys[c], attempt), args)
                if resume is None and not np.isfinite(float(carry[0].potential_energy)):
                    raise BayescaleError(
                        f"chain {c}: no starting point with a finite log density in {INIT_TRIES} draws from "
                        f"Uniform(-{INIT_RADIUS:g}, {INIT_RADIUS:g}) on the unconstrained scale; check that "
                        "the priors allow the data (e.g. a response outside the law's range) or tighten the priors")
                parts, counted, again = [], 0, False
                for i in range(n_chunks):
                    if stop.is_set():
                        return None
                    carry, fields = sampler.chunk(carry, args)
                    parts.append(jax.device_get(fields))
                    if on_progress is not None:
                        with lock:
                            on_progress(min(CHUNK, total - i * CHUNK))   # the last chunk's extras do not count
                    counted += min(CHUNK, total - i * CHUNK)
                    if skip and i == (skip - 1) // CHUNK and attempt < RESTARTS and stuck(parts):
                        again = True
                        break
                if not again:
                    break
                restarted[c] += 1
                if on_progress is not None:
                    with lock:
                        on_progress(-counted)
            z, *rest = jax.tree.map(lambda *a: np.concatenate(a)[skip:total], *parts)
            if outputs is not None:
                z = jax.device_get(outputs(z, args))
            return (z, *rest), carry

    with ThreadPoolExecutor(worker_count(chains)) as pool:
        futures = [pool.submit(one_chain, c) for c in range(chains)]
        try:
            while wait(futures, timeout=0.2).not_done:   # short waits, so that Ctrl-C reaches this thread
                pass
        except KeyboardInterrupt:
            stop.set()
            wait(futures)   # within one chunk per chain; the compiled programs stay usable
            raise
        results = [f.result() for f in futures]
    first, *rest = jax.tree.map(lambda *a: np.stack(a), *[r[0] for r in results])   # (chain, draw, ...)
    if restarts is not None:
        restarts.extend(restarted)
    return first, dict(zip(FIELDS[1:], rest)), [r[1] for r in results]
