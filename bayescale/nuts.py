"""Compiled NUTS driver: one XLA program per model and data shape, chains run in threads.

The transitions are NumPyro's own NUTS kernels (``numpyro.infer.hmc.hmc``: multinomial NUTS with
windowed step-size and mass-matrix adaptation); only the driver around them is ours. NumPyro's
``MCMC`` re-runs its initialisation eagerly on every ``run`` (on CPU that compiles dozens of tiny
programs, and for several chains re-compiles a ``lax.map``), and its vectorized chains advance in
lockstep at the deepest chain's tree depth. Measured on the Chinchilla fit of ``chinchilla_epoch``
(see benchmarks/perf.py), that driver spent about 7 s of a 10 s first fit compiling. Here a
single-chain program is built once per (model, shapes, settings) and reused: the initialisation and
a chunk of ``CHUNK`` transitions are each one jitted function of the data, so a new dataset of the
same shape runs without tracing. Chains run in a thread pool (JAX releases the GIL while a program
runs), so on two cores two chains advance at once, each at its own tree depth.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import hmc_util
from numpyro.infer.hmc import hmc
from numpyro.infer.util import ParamInfo, initialize_model

from .errors import BayescaleError

CHUNK = 50          # transitions per call of the compiled program (progress granularity)
INIT_RADIUS = 2.0   # initial unconstrained values ~ Uniform(-2, 2), like NumPyro's init_to_uniform
INIT_TRIES = 100
FIELDS = ("z", "num_steps", "diverging", "accept_prob", "potential_energy")


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


@dataclass
class CompiledNUTS:
    """Jitted pieces of one sampler; every function takes the model arguments as data."""
    init: Callable        # (key, args) -> HMCState; compiled
    chunk: Callable       # (state, args) -> (state, collected fields of CHUNK transitions); compiled
    constrain: Callable   # (z with a leading draw axis, args) -> constrained sites and deterministics
    warmup: int


def compile_nuts(model, example_args: tuple, *, warmup: int, dense: bool, target_accept: float,
                 relative_shrinkage: bool = True, max_tree_depth: int = 10) -> CompiledNUTS:
    """Build and compile the sampler for ``model(*args)`` at the shapes of ``example_args``.

    ``relative_shrinkage=False`` keeps NumPyro's (Stan's) absolute covariance regularisation."""
    potential_fn_gen, postprocess_gen, prototype = _model_functions(model, example_args)
    dense_mass = [tuple(sorted(prototype))] if dense else False
    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")

    def initial_point(key, args):
        """Uniform(-2, 2) unconstrained draws until the density and its gradient are finite;
        returned with both, so the kernel does not evaluate them again."""
        potential = potential_fn_gen(*args)

        def draw(k):
            leaves, tree = jax.tree.flatten(prototype)
            keys = jax.random.split(k, len(leaves))
            z = jax.tree.unflatten(tree, [jax.random.uniform(kk, jnp.shape(v), minval=-INIT_RADIUS,
                                                             maxval=INIT_RADIUS)
                                          for kk, v in zip(keys, leaves)])
            pe, grad = jax.value_and_grad(potential)(z)
            flat = jax.flatten_util.ravel_pytree(grad)[0]
            return ParamInfo(z, pe, grad), jnp.isfinite(pe) & jnp.all(jnp.isfinite(flat))

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

    def init(key, args):
        key_init, key_run = jax.random.split(key)
        return init_kernel(initial_point(key_init, args), warmup, dense_mass=dense_mass,
                           target_accept_prob=target_accept, max_tree_depth=max_tree_depth,
                           regularize_mass_matrix=True, model_args=args, rng_key=key_run)

    def chunk(state, args):
        def step(s, _):
            s = sample_kernel(s, model_args=args)
            return s, tuple(getattr(s, f) for f in FIELDS)
        return jax.lax.scan(step, state, None, length=CHUNK)

    @jax.jit
    def constrain(z, args):
        return jax.vmap(postprocess_gen(*args))(z)

    # Compiled ahead of time, once, here: the kernels' adaptation functions are fixed while init is
    # traced (that is when the shrinkage choice takes effect), and threads never trace concurrently.
    with _COMPILE_LOCK, _covariance_shrinkage(relative_shrinkage):
        lowered = jax.jit(init).lower(jax.random.PRNGKey(0), example_args)
        init_compiled = lowered.compile()
        chunk_compiled = jax.jit(chunk).lower(lowered.out_info, example_args).compile()
    return CompiledNUTS(init=init_compiled, chunk=chunk_compiled, constrain=constrain, warmup=warmup)


_COMPILE_LOCK = threading.Lock()


@contextlib.contextmanager
def _covariance_shrinkage(relative: bool):
    """While active, NumPyro's warmup adapter regularises covariances relative to their own scale.

    NumPyro, like Stan, shrinks each window's covariance estimate C (from n draws) to
    n/(n+5)·C + 5/(n+5)·1e-3·I. Scaling-law posteriors have directions with variance far below
    1e-5, which that absolute floor inflates, so NUTS needs far shorter steps (on the Chinchilla fit
    of chinchilla_epoch: 25 leapfrog steps per draw instead of 8). The relative form
    n/(n+5)·C + 5/(n+5)·1e-3·diag(C) is invariant to rescaling a parameter. A dense window with
    fewer than two draws per parameter (its C singular or nearly so) keeps only the variances."""
    if not relative:
        yield
        return
    original = hmc_util.welford_covariance
    hmc_util.welford_covariance = _relative_welford_covariance
    try:
        yield
    finally:
        hmc_util.welford_covariance = original


def _relative_welford_covariance(diagonal=True):
    init_fn, update_fn, _ = _NUMPYRO_WELFORD(diagonal=diagonal)

    def final_fn(state, regularize=False):
        if isinstance(state, dict):
            blocks = {names: final_fn(block, regularize) for names, block in state.items()}
            return tuple({names: b[i] for names, b in blocks.items()} for i in range(3))
        _, m2, n = state
        cov = m2 / (n - 1)
        var = cov if cov.ndim == 1 else jnp.diagonal(cov)
        var = jnp.where(var > 0, var, 1.0)       # a coordinate that never moved: Stan's floor
        weight = n / (n + 5)
        floor = (1 - weight) * 1e-3 * var
        if cov.ndim == 2:
            # fewer than two draws per parameter: estimate the variances only
            full = n > 2 * cov.shape[0]
            cov = jnp.where(full, weight * cov, jnp.diag(weight * var)) + jnp.diag(floor)
        else:
            cov = weight * cov + floor
        if cov.ndim == 1:
            tril_inv = jnp.sqrt(cov)
            return cov, jnp.reciprocal(tril_inv), tril_inv
        # the square root of the precision, as NumPyro's final_fn returns it
        tril_inv = jnp.swapaxes(jnp.linalg.cholesky(cov[::-1, ::-1])[::-1, ::-1], -2, -1)
        cov_inv_sqrt = jax.scipy.linalg.solve_triangular(tril_inv, jnp.identity(cov.shape[-1]), lower=True)
        return cov, cov_inv_sqrt, tril_inv

    return init_fn, update_fn, final_fn


_NUMPYRO_WELFORD = hmc_util.welford_covariance


def _model_functions(model, example_args):
    """NumPyro's potential and postprocess function generators and a zero unconstrained point.

    ``initialize_model`` runs the model eagerly, op by op, which on CPU compiles dozens of tiny
    programs (seconds); here it runs under abstract tracing instead, and only shapes are kept."""
    captured = {}

    def capture(*args):
        info, potential_gen, postprocess_gen, _ = initialize_model(
            jax.random.PRNGKey(0), model, dynamic_args=True, model_args=args)
        captured.update(potential=potential_gen, postprocess=postprocess_gen,
                        shapes={k: (jnp.shape(v), v.dtype) for k, v in info.z.items()})
        return 0

    jax.eval_shape(capture, *example_args)
    prototype = {k: jnp.zeros(shape, dtype) for k, (shape, dtype) in captured["shapes"].items()}
    return captured["potential"], captured["postprocess"], prototype


def run_chains(sampler: CompiledNUTS, args: tuple, *, seed: int, chains: int, draws: int,
               on_progress: Callable[[int], None] | None = None) -> tuple[dict, dict]:
    """Run ``chains`` chains; return unconstrained draws and per-draw fields, each (chain, draw, ...).

    Transitions run in chunks of ``CHUNK``; the total is rounded up to whole chunks and the extra
    trailing draws are dropped, so every call reuses the one compiled chunk program."""
    total = sampler.warmup + draws
    n_chunks = -(-total // CHUNK)
    keys = jax.random.split(jax.random.PRNGKey(seed), chains)
    lock = threading.Lock()

    def one_chain(c: int):
        state = sampler.init(keys[c], args)
        if not np.isfinite(float(state.potential_energy)):
            raise BayescaleError(
                f"chain {c}: no starting point with a finite log density in {INIT_TRIES} draws from "
                f"Uniform(-{INIT_RADIUS:g}, {INIT_RADIUS:g}) on the unconstrained scale; check that the "
                "priors allow the data (e.g. a response outside the law's range) or tighten the priors")
        parts = []
        for i in range(n_chunks):
            state, fields = sampler.chunk(state, args)
            parts.append(jax.device_get(fields))
            if on_progress is not None:
                with lock:
                    on_progress(min(CHUNK, total - i * CHUNK))   # the last chunk's extras do not count
        return jax.tree.map(lambda *a: np.concatenate(a)[sampler.warmup:total], *parts)

    with ThreadPoolExecutor(worker_count(chains)) as pool:
        results = list(pool.map(one_chain, range(chains)))
    z, *rest = jax.tree.map(lambda *a: np.stack(a), *results)   # leaves: (chain, draw, ...)
    return z, dict(zip(FIELDS[1:], rest))
