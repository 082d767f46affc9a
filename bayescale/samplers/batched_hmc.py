"""Many independent fits in one compiled program: HMC with a fixed trajectory length per
iteration, vectorized over a block of datasets and their chains.

NUTS trees under ``vmap`` run in lockstep at the deepest member's depth, so a batch of NUTS fits is
barely faster than separate fits. Here every iteration integrates a trajectory of fixed length (in
the space whitened by the mass matrix), so every member of a block does about the same number of
gradient steps:

* start: each chain runs Adam from a uniform(-2, 2) point in unconstrained space towards the
  posterior mode; the Hessian at the best mode found (eigenvalues clipped) is the first inverse
  mass matrix, and every chain starts at a draw from that Laplace approximation (a warm start, so
  warmup can be short);
* warmup: the windows, dual averaging and relative covariance shrinkage of
  :mod:`bayescale.samplers.adaptation` (those of the NUTS driver), per dataset: the step size
  follows the mean acceptance of the dataset's chains, the dense inverse mass matrix is estimated
  from the chains' draws pooled in each window;
* each iteration: momentum refresh, ``ceil(T / eps)`` leapfrog steps (at most ``max_steps``) with
  the trajectory length ``T`` jittered uniformly in [T0 / 2, 3 T0 / 2] (T0 starts at pi, half a
  period of a whitened Gaussian, and is adapted by default: below), Metropolis accept. Jittering T keeps the chain from
  resonating.
* ``adapt=True`` (``fit_many(trajectory="adapt")``): during warmup, T0 is adapted per dataset by
  gradient ascent, on log T0, of the expected squared jump distance (ESJD) of one iteration in the
  whitened coordinates, E[accept · |w1 - w0|^2], estimated from the dataset's chains (their
  proposals weighted by acceptance probability) with a momentum-free Adam step (learning rate
  :data:`ADAPT_RATE`), kept within a factor 2 of :data:`TRAJECTORY`; sampling uses its iterate
  average. On a whitened Gaussian the ESJD peaks at T = pi (the default, which makes successive
  draws anti-correlated, hence high bulk ESS); a posterior of another shape gets its own length.
  ChEES (Hoffman, Radul & Sountsov 2021), the change in the squared distance from the chains'
  mean, peaks near pi/2 on a Gaussian, and on 8 simulated Chinchilla tables it gave a lower median
  min-ESS than the fixed pi in three of four trials (RESULTS, "Batched fits: choosing the
  trajectory adaptation"), so it is not the criterion.

Datasets are padded and masked exactly as single fits are (rows repeated up to a common
:func:`bayescale.inference.bucket_size`, ``aux["__mask__"]`` zero on padded rows). A batch is cut
into blocks of :func:`block_size` datasets, a number that depends only on the batch size; every
block runs the same compiled program, so a dataset's draws do not depend on how many devices or
threads run the blocks (blocks go to devices round robin and run in a thread pool).
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import log_likelihood

from . import adaptation as ad
from ..errors import BayescaleError
from .cache import PROGRAMS, tracing
from .nuts import OUTPUT_BLOCK, _model_functions, worker_count
from .precision import cast_arguments, precision, use_x64

MAX_STEPS = 32        # cap on leapfrog steps per iteration (members of a block run in lockstep)
MAX_BLOCK = 16        # datasets per compiled block
TRAJECTORY = math.pi
ADAPT_RATE = 0.025       # Adam's learning rate on log T (ChEES's)
ADAPT_DECAY = 0.95       # Adam's second-moment decay
ADAPT_AVERAGE = 0.75     # iterate averaging of log T: weight n^-0.75 on the newest value
ADAPT_RANGE = math.log(2.0)   # |log(T / T0)| stays below this: T0 / 2 to 2 T0


def block_size(n_datasets: int) -> int:
    """Datasets per block: a power of two, at most MAX_BLOCK, chosen from the batch size alone so
    that at least two blocks run side by side when the batch has more than one dataset."""
    half = max(1, -(-int(n_datasets) // 2))
    return min(MAX_BLOCK, 1 << (half - 1).bit_length())


class Program:
    """The compiled run and outputs of ``chains`` chains on each of a block of ``block`` datasets
    with one model and shape, for one device."""

    def __init__(self, spec, example_args, *, block, chains, warmup, draws, dense, x64,
                 max_steps=MAX_STEPS, device=None, adapt=False):
        from ..inference import make_model

        self.model = make_model(spec)
        self.adapt = bool(adapt)
        self.chains, self.warmup, self.draws, self.dense = chains, warmup, draws, dense
        self.block, self.x64, self.max_steps = block, x64, max_steps
        self.collect, self.ends = ad.window_schedule(warmup)
        with tracing(), precision(x64):
            self.potential_gen, self.postprocess_gen, prototype = _model_functions(self.model, example_args)
            flat, self.unravel = ravel_pytree(prototype)
            self.dim = int(flat.shape[0])
            sharding = jax.sharding.SingleDeviceSharding(device or jax.devices()[0])

            def spec_of(a, lead=(block,)):
                return jax.ShapeDtypeStruct(lead + np.shape(a), np.asarray(a).dtype, sharding=sharding)

            args_spec = jax.tree.map(spec_of, example_args)
            floating = jnp.result_type(float)
            keys_spec = jax.ShapeDtypeStruct((block, 2), jnp.uint32, sharding=sharding)
            lengths_spec = jax.ShapeDtypeStruct((warmup + draws,), floating, sharding=sharding)
            target_spec = jax.ShapeDtypeStruct((), floating, sharding=sharding)
            self.run = jax.jit(jax.vmap(self._one, in_axes=(0, 0, None, None))).lower(
                keys_spec, args_spec, target_spec, lengths_spec).compile()
            z_spec = jax.ShapeDtypeStruct((block, chains, draws, self.dim), floating, sharding=sharding)
            self.outputs = jax.jit(jax.vmap(self._outputs)).lower(z_spec, args_spec).compile()

    # ---- one HMC transition of one chain ---------------------------------------------------
    def _transition(self, vg, length, key, z, u, g, eps, chol):
        k_mom, k_acc = jax.random.split(key)
        r = jax.random.normal(k_mom, z.shape, z.dtype)
        n = jnp.clip(jnp.ceil(length / eps), 1, self.max_steps).astype(jnp.int32)

        def leapfrog(state):
            i, z, r, _, g = state
            r = r - 0.5 * eps * (chol.T @ g)
            z = z + eps * (chol @ r)
            u, g = vg(z)
            r = r - 0.5 * eps * (chol.T @ g)
            return i + 1, z, r, u, g

        _, z1, r1, u1, g1 = jax.lax.while_loop(
            lambda s: (s[0] < n) & jnp.isfinite(s[3]), leapfrog, (0, z, r, u, g))
        h0, h1 = u + 0.5 * r @ r, u1 + 0.5 * r1 @ r1   # Hamiltonians at the start and the end
        delta = h1 - h0
        delta = jnp.where(jnp.isfinite(delta) & jnp.all(jnp.isfinite(g1)), delta, jnp.inf)
        accept_prob = jnp.exp(-jnp.maximum(delta, 0.0))
        accept = jax.random.uniform(k_acc, dtype=z.dtype) < accept_prob
        z, u, g = (jnp.where(accept, a, b) for a, b in ((z1, z), (u1, u), (g1, g)))
        # the Hamiltonian at the kept point (with the refreshed momentum when rejected), as Stan reports it
        energy = jnp.where(accept, h1, h0)
        # the proposal, its velocity dz/dt at the end and the time integrated (for adapting T)
        proposal = (z1, chol @ r1, n * eps, jnp.where(jnp.isfinite(delta), accept_prob, 0.0))
        return z, u, g, accept_prob, n, delta > 1000.0, energy, proposal

    def _factor(self, cov, fallback):
        """A square root of the inverse mass matrix (the whitening map), dense or diagonal."""
        chol = jnp.linalg.cholesky(cov) if self.dense else jnp.diag(jnp.sqrt(jnp.diagonal(cov)))
        return jnp.where(jnp.all(jnp.isfinite(chol)), chol, fallback)

    @staticmethod
    def _jump_gradient(z0, proposal, chol):
        """d ESJD / d log T from the chains' starts ``z0`` and proposals: per chain
        t · (w1 - w0) · dw1/dt, weighted by acceptance, in the coordinates whitened by the mass
        matrix (``chol``: z = chol w), where every direction counts alike."""
        z1, v1, t, weight = proposal
        white = lambda a: jax.scipy.linalg.solve_triangular(chol, a.T, lower=True).T   # noqa: E731
        per_chain = t * jnp.sum(white(z1 - z0) * white(v1), axis=1)
        ok = jnp.isfinite(per_chain) & (weight > 0)
        w = jnp.where(ok, weight, 0.0)
        return jnp.sum(w * jnp.where(ok, per_chain, 0.0)) / jnp.maximum(jnp.sum(w), 1e-12)

    def _length_update(self, state, grad, warm):
        """One momentum-free Adam step on log T (ascent), and the iterate average; only in warmup."""
        log_s, log_s_bar, v, n = state
        n1 = n + 1.0
        v1 = ADAPT_DECAY * v + (1.0 - ADAPT_DECAY) * grad ** 2
        step = ADAPT_RATE * grad / (jnp.sqrt(v1 / (1.0 - ADAPT_DECAY ** n1)) + 1e-12)
        new = jnp.clip(log_s + jnp.where(jnp.isfinite(step), step, 0.0), -ADAPT_RANGE, ADAPT_RANGE)
        weight = n1 ** -ADAPT_AVERAGE
        updated = (new, weight * new + (1.0 - weight) * log_s_bar, v1, n1)
        return jax.tree.map(partial(jnp.where, warm & self.adapt), updated, state)

    # ---- all chains of one dataset ----------------------------------------------------------
    def _one(self, key, args, target, lengths):
        potential_fn = self.potential_gen(*args)
        potential = lambda z: potential_fn(self.unravel(z))   # noqa: E731
        vg = jax.value_and_grad(potential)
        chains, dim = self.chains, self.dim
        floating = lengths.dtype
        k_init, k_start, k_run = jax.random.split(key, 3)
        z0 = jax.random.uniform(k_init, (chains, dim), floating, -2.0, 2.0)
        u0, g0 = jax.vmap(vg)(z0)
        z, u, g = jax.vmap(partial(ad.adam_to_mode, vg))(z0, u0, g0)
        ib = jnp.argmin(jnp.where(jnp.isfinite(u), u, jnp.inf))
        best = z[ib]
        eye = jnp.identity(dim, floating)
        chol = self._factor(ad.laplace_covariance(jax.hessian(potential)(best)), eye)
        # every chain starts at a draw from the Laplace approximation around the best mode found
        # (a chain whose Adam run stalled would otherwise spoil the pooled adaptation)
        start = best + jax.random.normal(k_start, (chains, dim), floating) @ chol.T
        u_start, g_start = jax.vmap(vg)(start)
        ok = jnp.isfinite(u_start)[:, None] & jnp.all(jnp.isfinite(g_start), axis=1, keepdims=True)
        z, u, g = (jnp.where(ok, start, best), jnp.where(ok[:, 0], u_start, u[ib]),
                   jnp.where(ok, g_start, g[ib]))
        step = jax.vmap(partial(self._transition, vg), in_axes=(None, 0, 0, 0, 0, None, None))

        def iteration(carry, xs):
            z, u, g, chol, dual, window, tuned = carry
            key, length, collect, end, sampling = xs
            eps = ad.step_size(jnp.where(sampling, dual.log_step_avg, dual.log_step))
            length = length * jnp.exp(jnp.where(sampling, tuned[1], tuned[0]))   # adapted T (x1 without)
            start = z
            z, u, g, acc, n_steps, div, energy, proposal = step(length, jax.random.split(key, chains), z, u, g,
                                                                eps, chol)
            warm = ~sampling
            tuned = self._length_update(tuned, self._jump_gradient(start, proposal, chol), warm)
            dual = jax.tree.map(partial(jnp.where, warm), ad.dual_averaging_update(dual, jnp.mean(acc), target),
                                dual)
            window = ad.welford_update(window, z, collect)
            new_eps = ad.step_size(dual.log_step)
            chol = jnp.where(end, self._factor(ad.window_covariance(window), chol), chol)
            dual = jax.tree.map(partial(jnp.where, end), ad.dual_averaging_init(new_eps), dual)
            window = jax.tree.map(partial(jnp.where, end), ad.welford_init(dim, self.dense, floating), window)
            return (z, u, g, chol, dual, window, tuned), (z, u, acc, n_steps, div, eps, energy, length)

        total = self.warmup + self.draws
        flags = [np.concatenate([a, np.zeros(self.draws, bool)]) for a in (self.collect, self.ends)]
        xs = (jax.random.split(k_run, total), lengths, *map(jnp.asarray, flags),
              jnp.arange(total) >= self.warmup)
        zero = jnp.zeros((), floating)
        init = (z, u, g, chol, ad.dual_averaging_init(jnp.asarray(0.5, floating)),
                ad.welford_init(dim, self.dense, floating), (zero, zero, zero, zero))
        _, trace = jax.lax.scan(iteration, init, xs)
        zs, us, acc, n, div, eps, energy, length = (a[self.warmup:] for a in trace)
        swap = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731  (draw, chain) -> (chain, draw)
        return {"z": swap(zs), "lp": -swap(us), "acceptance_rate": swap(acc), "n_steps": swap(n),
                "diverging": swap(div), "energy": swap(energy), "step_size": eps[0],
                "trajectory": jnp.mean(length)}

    # ---- constrained draws and pointwise log likelihood of one dataset -------------------------
    def _outputs(self, z, args):
        constrain = self.postprocess_gen(*args)
        model = self.model
        flat = z.reshape(-1, self.dim)
        rows = max(int(np.size(args[2])), 1)

        def one(zi):
            samples = {k: v for k, v in constrain(self.unravel(zi)).items() if k != "y"}
            loglik = log_likelihood(model, samples, *args, batch_ndims=0)["y"]
            return samples, loglik.astype(jnp.float32)

        samples, loglik = jax.lax.map(one, flat, batch_size=int(max(1, min(len(flat), OUTPUT_BLOCK // rows))))
        shape = z.shape[:2]
        return ({k: v.reshape(shape + v.shape[1:]) for k, v in samples.items()},
                loglik.reshape(shape + loglik.shape[1:]))


# ---- data: pad, mask, stack ----------------------------------------------------------------------

def padded_arguments(spec, data, rows: int) -> tuple:
    """``inference.model_arguments`` (rows padded to the data's bucket, padding masked) extended
    to ``rows`` rows the same way: the last row repeated, its mask 0."""
    from ..inference import MASK, _pad, model_arguments

    x, idx, y, aux, walk = jax.tree.map(np.asarray, model_arguments(spec, data))
    if walk:
        raise BayescaleError("the batched sampler fits the law alone (discrepancy='none'); "
                             "fit with sampler='nuts' for a discrepancy walk")
    extend = partial(jax.tree.map, lambda a: _pad(a, rows))
    aux = {k: (np.concatenate([v, np.zeros(rows - len(v), v.dtype)]) if k == MASK else _pad(v, rows))
           for k, v in aux.items()}
    return extend(x), extend(idx), extend(y), aux


def run(built, seeds, *, chains, warmup, draws, target_accept, trajectory=TRAJECTORY, dense,
        devices=None, max_steps=None):
    """Fit every (spec, data) of ``built`` (one model, any numbers of rows). ``trajectory``: the
    fixed length T0 in whitened units, or "adapt" to adapt it from :data:`TRAJECTORY` per dataset
    (see the module docstring). Returns per dataset a dict of numpy arrays: constrained ``samples``
    (chain, draw, ...), ``loglik`` (chain, draw, row, padding cut off), ``n_steps``,
    ``acceptance_rate``, ``lp``, ``energy``, ``diverging``, ``step_size`` and ``trajectory`` (the
    mean length sampled with), plus (elapsed seconds, devices used)."""
    from ..inference import bucket_size

    import time

    spec0 = built[0][0]
    adapt = isinstance(trajectory, str) and trajectory == "adapt"
    try:
        fixed = TRAJECTORY if trajectory == "adapt" else float(trajectory)
    except (TypeError, ValueError):
        fixed = float("nan")
    if not fixed > 0 or not math.isfinite(fixed):
        raise BayescaleError(f"trajectory must be a positive number or 'adapt', got {trajectory!r}")
    trajectory = fixed
    max_steps = MAX_STEPS if max_steps is None else int(max_steps)
    most = max(data.n for _, data in built)
    n_rows = bucket_size(most)
    x64 = use_x64(most)
    n_batch = len(built)
    block = block_size(n_batch)
    n_blocks = -(-n_batch // block)
    members = list(range(n_batch)) + [0] * (n_blocks * block - n_batch)   # pad with copies of 0
    args = [cast_arguments(padded_arguments(*built[i], n_rows), x64) for i in members]
    keys = [np.asarray(jax.random.PRNGKey(seeds[i])) for i in members]
    pool = jax.devices()[:len(jax.devices()) if devices is None else int(devices)]
    # trajectory lengths jittered uniformly in [T/2, 3T/2], the same for the whole batch
    lengths = trajectory * np.random.default_rng(seeds[0]).uniform(0.5, 1.5, warmup + draws)

    def program(device):
        key = ("batched_hmc", spec0.key(), n_rows, block, chains, warmup, draws, dense, x64, max_steps,
               adapt, device.id)
        return PROGRAMS.get(key, lambda: Program(spec0, args[0], block=block, chains=chains, warmup=warmup,
                                                 draws=draws, dense=dense, x64=x64, max_steps=max_steps,
                                                 device=device, adapt=adapt))

    def one_block(b):
        device = pool[b % len(pool)]
        prog = program(device)
        part = slice(b * block, (b + 1) * block)
        with precision(x64):
            stacked = jax.device_put(jax.tree.map(lambda *a: np.stack(a), *args[part]), device)
            block_keys = jax.device_put(np.stack(keys[part]), device)
            floating = np.float64 if x64 else np.float32
            out = prog.run(block_keys, stacked, jax.device_put(floating(target_accept), device),
                           jax.device_put(lengths.astype(floating), device))
            samples, loglik = prog.outputs(out["z"], stacked)
            return jax.device_get((out, samples, loglik))

    for device in pool[:n_blocks]:   # compile first (in order, one per device used)
        program(device)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, min(n_blocks, max(len(pool), worker_count(n_blocks))))) as ex:
        parts = list(ex.map(one_block, range(n_blocks)))
    elapsed = time.perf_counter() - t0
    results = []
    for i in range(n_batch):
        out, samples, loglik = parts[i // block]
        j = i % block
        n = built[i][1].n
        results.append({
            "samples": {k: v[j] for k, v in samples.items()}, "loglik": loglik[j][..., :n],
            **{k: out[k][j] for k in ("n_steps", "acceptance_rate", "lp", "energy", "diverging", "step_size",
                                      "trajectory")},
        })
    return results, elapsed, len(pool[:n_blocks])
