"""Many independent fits in one compiled program: bootstraps, holdout splits, SBC simulations.

NUTS trees under ``vmap`` run in lockstep at the deepest member's depth, so a batch of NUTS fits is
barely faster than separate fits. :func:`fit_many` instead runs HMC with a trajectory of fixed
length per iteration (in the space whitened by the mass matrix), so every member of the batch
does about the same number of gradient steps:

* start: each chain runs Adam from a uniform(-2, 2) point in unconstrained space towards the
  posterior mode; the Hessian at the best mode found (eigenvalues clipped) is the first inverse
  mass matrix, and every chain starts at a draw from that Laplace approximation (a warm start, so
  warmup can be short);
* warmup: Stan's windowed adaptation, per dataset. Step size by dual averaging on the mean
  acceptance of the dataset's chains; a dense inverse mass matrix from the chains' draws pooled in
  doubling windows;
* each iteration: momentum refresh, ``ceil(T / eps)`` leapfrog steps with the trajectory length
  ``T`` jittered uniformly in [T0 / 2, 3 T0 / 2] (T0 = pi/2 by default, a quarter period of a
  whitened Gaussian), Metropolis accept. Jittering T keeps the chain from resonating.

Datasets with the same law and model shape are padded (rows repeated, masked out of the
likelihood) to one size; their reference scales (logref) are each dataset's own, since inputs are
centred before they enter the program. With several JAX devices the batch axis is sharded across
them; with ``scheduler`` (a Dask distributed address) chunks of the batch run on the cluster.
"""
from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import constrain_fn, initialize_model, log_likelihood, potential_energy
from numpyro.primitives import Messenger
from tqdm.auto import tqdm

from . import __version__
from .errors import BayescaleError

SAMPLERS = ("hmc", "nuts")
ADAM_STEPS, ADAM_RATE = 300, 0.05
MAX_STEPS = 16  # cap on leapfrog steps per iteration (batch members run in lockstep)


class _MaskRows(Messenger):
    """Drop padded rows from the likelihood of the observed site "y" only (priors are untouched)."""

    def __init__(self, rows):
        self.rows = rows
        super().__init__()

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] == "y":
            msg["fn"] = msg["fn"].mask(self.rows)


def _windows(warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Stan's schedule: per warmup iteration, (collect draws for the mass matrix, window ends here)."""
    collect = np.zeros(warmup, bool)
    ends = np.zeros(warmup, bool)
    init, term, size = 75, 50, 25
    if init + term + size > warmup:
        init, term = int(0.15 * warmup), int(0.1 * warmup)
    stop = warmup - term
    if stop - init < 10:
        return collect, ends
    collect[init:stop] = True
    start = init
    while start < stop:
        end = start + size
        if end + 2 * size > stop:
            end = stop
        ends[end - 1] = True
        start, size = end, 2 * size
    return collect, ends


def _spd_inverse(h, floor=1e-2, ceil=1e8):
    """Inverse of a symmetric matrix with its eigenvalues clipped into [floor, ceil]."""
    w, v = jnp.linalg.eigh(0.5 * (h + h.T))
    w = jnp.clip(jnp.where(jnp.isfinite(w), w, 1.0), floor, ceil)
    return (v / w) @ v.T


class _Program:
    """One jitted function running ``chains`` chains on each of a batch of same-shape datasets."""

    def __init__(self, spec, args0, chains, warmup, draws, dense):
        from .inference import make_model

        model = make_model(spec)

        def masked(x, idx, y, aux, rows):
            with _MaskRows(rows):
                model(x, idx, y, aux)

        self.model = masked
        info = initialize_model(jax.random.PRNGKey(0), masked, model_args=args0)
        flat, self.unravel = ravel_pytree(info.param_info.z)
        self.dim = flat.shape[0]
        self.chains, self.warmup, self.draws = chains, warmup, draws
        self.dense = dense
        self.collect, self.ends = _windows(warmup)
        # settings: target acceptance; lengths: each iteration's trajectory length, shared by the
        # whole batch so that its members take similar numbers of steps. Run-time values.
        self.run = jax.jit(jax.vmap(self._one, in_axes=(0, 0, None, None)))
        self.outputs = jax.jit(jax.vmap(self._outputs))

    def _potential(self, args):
        return lambda z: potential_energy(self.model, args, {}, self.unravel(z))

    # ---- one HMC transition of one chain ---------------------------------------------------
    def _transition(self, vg, length, key, z, u, g, eps, chol):
        k_mom, k_acc = jax.random.split(key)
        r = jax.random.normal(k_mom, z.shape)
        n = jnp.clip(jnp.ceil(length / eps), 1, MAX_STEPS).astype(jnp.int32)

        def leapfrog(state):
            i, z, r, _, g = state
            r = r - 0.5 * eps * (chol.T @ g)
            z = z + eps * (chol @ r)
            u, g = vg(z)
            r = r - 0.5 * eps * (chol.T @ g)
            return i + 1, z, r, u, g

        _, z1, r1, u1, g1 = jax.lax.while_loop(
            lambda s: (s[0] < n) & jnp.isfinite(s[3]), leapfrog, (0, z, r, u, g))
        delta = u1 + 0.5 * r1 @ r1 - (u + 0.5 * r @ r)
        delta = jnp.where(jnp.isfinite(delta) & jnp.all(jnp.isfinite(g1)), delta, jnp.inf)
        accept_prob = jnp.exp(-jnp.maximum(delta, 0.0))
        accept = jax.random.uniform(k_acc) < accept_prob
        z, u, g = (jnp.where(accept, a, b) for a, b in ((z1, z), (u1, u), (g1, g)))
        return z, u, g, accept_prob, n, delta > 1000.0

    # ---- all chains of one dataset ----------------------------------------------------------
    def _one(self, key, args, target, lengths):
        potential = self._potential(args)
        vg = jax.value_and_grad(potential)
        chains, dim = self.chains, self.dim
        k_init, k_start, k_run = jax.random.split(key, 3)
        z, u, g = self._adam(vg, jax.random.uniform(k_init, (chains, dim), minval=-2.0, maxval=2.0))
        ib = jnp.argmin(jnp.where(jnp.isfinite(u), u, jnp.inf))
        best = z[ib]
        cov = _spd_inverse(jax.hessian(potential)(best))
        chol = self._cholesky(cov, jnp.eye(dim))
        # every chain starts at a draw from the Laplace approximation around the best mode found
        # (a chain whose Adam run stalled would otherwise spoil the pooled adaptation)
        start = best + jax.random.normal(k_start, (chains, dim)) @ chol.T
        u_start, g_start = jax.vmap(vg)(start)
        ok = jnp.isfinite(u_start)[:, None] & jnp.all(jnp.isfinite(g_start), axis=1, keepdims=True)
        z, u, g = (jnp.where(ok, start, best), jnp.where(ok[:, 0], u_start, u[ib]),
                   jnp.where(ok, g_start, g[ib]))
        step = jax.vmap(partial(self._transition, vg), in_axes=(None, 0, 0, 0, 0, None, None))

        def iteration(carry, xs):
            z, u, g, chol, da, sums = carry
            key, length, collect, end, sampling = xs
            eps = jnp.exp(jnp.where(sampling, da[2], da[0]))  # after warmup: the averaged step size
            z, u, g, acc, n_steps, div = step(length, jax.random.split(key, chains), z, u, g, eps, chol)
            da = jnp.where(sampling, da, _dual_average(da, jnp.mean(acc), target))
            shift, n, s1, s2 = sums
            d = z - shift
            w = collect.astype(z.dtype)
            n, s1, s2 = n + w * chains, s1 + w * d.sum(0), s2 + w * d.T @ d
            mean = s1 / jnp.maximum(n, 1.0)
            cov = s2 / jnp.maximum(n, 1.0) - jnp.outer(mean, mean)
            shrink = n / (n + 5.0)
            cov = shrink * cov + (1 - shrink) * 1e-3 * jnp.diag(jnp.diag(cov)) + 1e-10 * jnp.eye(dim)
            chol = jnp.where(end, self._cholesky(cov, chol), chol)
            da = jnp.where(end, _dual_init(jnp.exp(da[0])), da)
            reset = end | ~collect
            sums = (jnp.where(reset, z.mean(0), shift), jnp.where(end, 0.0, n),
                    jnp.where(end, 0.0, s1), jnp.where(end, 0.0, s2))
            return (z, u, g, chol, da, sums), (z, u, acc, n_steps, div, eps)

        total = self.warmup + self.draws
        flags = [np.concatenate([a, np.zeros(self.draws, bool)]) for a in (self.collect, self.ends)]
        xs = (jax.random.split(k_run, total), lengths, *map(jnp.asarray, flags),
              jnp.arange(total) >= self.warmup)
        sums0 = (z.mean(0), jnp.zeros(()), jnp.zeros(dim), jnp.zeros((dim, dim)))
        _, trace = jax.lax.scan(iteration, (z, u, g, chol, _dual_init(0.5), sums0), xs)
        zs, us, acc, n, div, eps = (a[self.warmup:] for a in trace)
        eps = eps[0]
        swap = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731  (draw, chain) -> (chain, draw)
        return {"z": swap(zs), "lp": -swap(us), "acceptance_rate": swap(acc), "n_steps": swap(n),
                "diverging": swap(div), "step_size": eps}

    def _adam(self, vg, z):
        """Adam towards the mode from each chain's start; a step to a non-finite density is refused."""
        vg_chains = jax.vmap(vg)
        u, g = vg_chains(z)

        def body(carry, t):
            z, u, g, m, v = carry
            g_ok = jnp.where(jnp.isfinite(g), g, 0.0)
            m = 0.9 * m + 0.1 * g_ok
            v = 0.999 * v + 0.001 * g_ok ** 2
            mhat, vhat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
            z_new = z - ADAM_RATE * mhat / (jnp.sqrt(vhat) + 1e-8)
            u_new, g_new = vg_chains(z_new)
            ok = (jnp.isfinite(u_new) & (u_new < u + 10.0))[:, None]
            z, g = jnp.where(ok, z_new, z), jnp.where(ok, g_new, g)
            return (z, jnp.where(ok[:, 0], u_new, u), g, m, v), None

        zeros = jnp.zeros_like(z)
        (z, u, g, _, _), _ = jax.lax.scan(body, (z, u, g, zeros, zeros),
                                          jnp.arange(1, ADAM_STEPS + 1, dtype=z.dtype))
        return z, u, g

    def _cholesky(self, cov, fallback):
        if not self.dense:
            cov = jnp.diag(jnp.diag(cov))
        chol = jnp.linalg.cholesky(cov)
        return jnp.where(jnp.all(jnp.isfinite(chol)), chol, fallback)

    # ---- constrained draws and pointwise log likelihood of one dataset -------------------------
    def _outputs(self, z, args):
        flat = z.reshape(-1, self.dim)
        params = jax.vmap(self.unravel)(flat)
        samples = jax.vmap(lambda p: constrain_fn(self.model, args, {}, p, return_deterministic=True))(params)
        samples = {k: v for k, v in samples.items() if k != "y"}
        loglik = log_likelihood(self.model, samples, *args)["y"]
        shape = z.shape[:2]
        return ({k: v.reshape(shape + v.shape[1:]) for k, v in samples.items()},
                loglik.reshape(shape + loglik.shape[1:]))


def _dual_init(eps):
    eps = jnp.asarray(eps, jnp.float32)
    # log eps, mu, log eps_bar, h_bar, t
    return jnp.stack([jnp.log(eps), jnp.log(10 * eps), jnp.log(eps), 0.0, 0.0])


def _dual_average(da, accept, target, gamma=0.05, t0=10.0, kappa=0.75):
    _, mu, log_bar, h_bar, t = da
    t = t + 1
    h_bar = (1 - 1 / (t + t0)) * h_bar + (target - jnp.where(jnp.isfinite(accept), accept, 0.0)) / (t + t0)
    log_eps = mu - jnp.sqrt(t) / gamma * h_bar
    eta = t ** -kappa
    log_bar = eta * log_eps + (1 - eta) * log_bar
    return jnp.stack([log_eps, mu, log_bar, h_bar, t])


_PROGRAMS: dict[tuple, _Program] = {}


def _program(spec, args0, chains, warmup, draws, dense, n_pad):
    key = (spec.key(), n_pad, chains, warmup, draws, dense)
    if key not in _PROGRAMS:
        if len(_PROGRAMS) >= 8:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        _PROGRAMS[key] = _Program(spec, args0, chains, warmup, draws, dense)
    return _PROGRAMS[key]


# ---- data: pad and stack ---------------------------------------------------------------------

def _model_args(spec, data, n_pad):
    """(x, idx, y, aux, rows) of one dataset, padded to n_pad rows by repeating its first row."""
    from .design import centre, extra_columns

    law = spec.law
    pad = np.concatenate([np.arange(data.n), np.zeros(n_pad - data.n, dtype=np.int64)])
    x = {k: np.asarray(v)[pad] for k, v in centre(law, data.inputs, spec.logref).items()}
    idx = {g: np.asarray(data.group_index[g])[pad].astype(np.int32) for g in spec.coords}
    aux_np = extra_columns(data.frame, law.extras)
    aux = {k: v[pad].astype(np.float32) for k, v in aux_np.items()}
    y = np.asarray(law.observation.site_value(data.response, aux_np), np.float32)[pad]
    return x, idx, y, aux, np.arange(n_pad) < data.n


def _stack(items, sharding=None):
    stacked = jax.tree_util.tree_map(lambda *a: np.stack(a), *items)
    if sharding is None:
        return jax.tree_util.tree_map(jnp.asarray, stacked)
    return jax.device_put(stacked, sharding)


def _batch_sharding(n_devices):
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.asarray(jax.devices()[:n_devices]), ("batch",))
    return NamedSharding(mesh, PartitionSpec("batch"))


# ---- public API ------------------------------------------------------------------------------

def fit_many(datasets, law="chinchilla", *, pool=None, priors=None, seed=0, sampler="hmc", chains=4,
             warmup=400, draws=500, target_accept=0.9, trajectory=math.pi / 2, dense_mass=None,
             devices=None, scheduler=None, chunk=64, parametrisation="auto", columns=None,
             duplicates="error", progress=False, on_done=None):
    """Fit ``law`` to each table in ``datasets``; returns a list of :class:`bayescale.Fit`.

    ``sampler="hmc"`` (default) runs every dataset with the same law and model shape in one
    compiled program (see the module docstring); ``"nuts"`` runs :func:`bayescale.fit` on each in
    turn. ``seed`` is one integer (dataset i gets seed + i) or one seed per dataset. ``devices``
    shards the batch over that many JAX devices (default: all); ``scheduler`` is a Dask distributed
    scheduler address: the batch is cut into chunks of ``chunk`` datasets, each fitted on a worker.

    ``progress=True`` shows a bar of finished fits on stderr, advanced as each NUTS fit, each
    compiled batch or each Dask chunk finishes; ``on_done(n)``, when given, is called instead with
    the number of fits just finished (how :func:`bayescale.calibration.sbc` drives its own bar).
    """
    from .inference import DENSE_MASS_MAX_PARAMS, build, fit

    datasets = list(datasets)
    if not datasets:
        raise BayescaleError("fit_many needs at least one dataset, got an empty list")
    if sampler not in SAMPLERS:
        raise BayescaleError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    for name, value in (("chains", chains), ("warmup", warmup), ("draws", draws)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise BayescaleError(f"{name} must be a positive integer, got {value!r}")
    seeds = _seeds(seed, len(datasets))
    options = dict(pool=pool, priors=priors, sampler=sampler, chains=chains, warmup=warmup, draws=draws,
                   target_accept=target_accept, trajectory=trajectory, dense_mass=dense_mass,
                   parametrisation=parametrisation, columns=columns, duplicates=duplicates)
    if on_done is None:  # the caller wants no callback: run again with this bar's update as one
        law_name = law if isinstance(law, str) else law.spec
        with tqdm(total=len(datasets), desc=f"fitting {law_name}", unit="fit", disable=not progress) as bar:
            return fit_many(datasets, law, seed=seeds, devices=devices, scheduler=scheduler, chunk=chunk,
                            on_done=bar.update, **options)
    if scheduler is not None:
        return _fit_on_dask(datasets, law, seeds, scheduler, chunk, options, on_done)
    if sampler == "nuts":
        fits = []
        for df, s in zip(datasets, seeds):
            fits.append(fit(df, law, pool=pool, priors=priors, seed=s, chains=chains, warmup=warmup,
                            draws=draws, progress=False, columns=columns, duplicates=duplicates,
                            target_accept=target_accept, dense_mass=dense_mass,
                            parametrisation=parametrisation))
            on_done(1)
        return fits

    built = []
    for i, df in enumerate(datasets):
        try:
            built.append(build(df, law, pool=pool, priors=priors, columns=columns, duplicates=duplicates,
                               parametrisation=parametrisation))
        except BayescaleError as exc:
            raise BayescaleError(f"dataset {i} of {len(datasets)}: {exc}") from exc
    groups = defaultdict(list)
    for i, (spec, _) in enumerate(built):
        groups[spec.key()].append(i)
    fits = [None] * len(datasets)
    for members in groups.values():
        spec0 = built[members[0]][0]
        n_latent = _count_latent(spec0)
        dense = n_latent <= DENSE_MASS_MAX_PARAMS if dense_mass is None else bool(dense_mass)
        results = _run_group([built[i] for i in members], [seeds[i] for i in members], chains, warmup,
                             draws, target_accept, trajectory, dense, devices)
        for i, fitted in zip(members, results):
            fits[i] = fitted
        on_done(len(members))
    return fits


def _count_latent(spec):
    from .inference import _count_latent

    return _count_latent(spec)


def _seeds(seed, n):
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise BayescaleError(f"seed: give one integer or one per dataset ({n}), got {len(seeds)}")
    return seeds


def _run_group(built, seeds, chains, warmup, draws, target_accept, trajectory, dense, devices):
    from .results import Fit
    from .inference import fit_config, inference_data

    spec0 = built[0][0]
    n_pad = max(data.n for _, data in built)
    n_devices = len(jax.devices()) if devices is None else int(devices)
    if not 1 <= n_devices <= len(jax.devices()):
        raise BayescaleError(f"devices must be between 1 and {len(jax.devices())}, got {devices!r}")
    n_batch = len(built)
    extra = (-n_batch) % n_devices   # pad the batch to a multiple of the devices with copies
    members = list(range(n_batch)) + [0] * extra
    args = [_model_args(built[i][0], built[i][1], n_pad) for i in members]
    keys = np.stack([np.asarray(jax.random.PRNGKey(seeds[i])) for i in members])
    sharding = _batch_sharding(n_devices) if n_devices > 1 else None
    batched = _stack(args, sharding)
    keys = jax.device_put(keys, sharding) if sharding is not None else jnp.asarray(keys)
    program = _program(spec0, args[0], chains, warmup, draws, dense, n_pad)
    # trajectory lengths jittered uniformly in [T/2, 3T/2], the same for the whole batch
    lengths = trajectory * np.random.default_rng(seeds[0]).uniform(0.5, 1.5, warmup + draws)
    t0 = time.perf_counter()
    out = jax.block_until_ready(program.run(keys, batched, jnp.float32(target_accept),
                                            jnp.asarray(lengths, jnp.float32)))
    samples, loglik = jax.block_until_ready(program.outputs(out["z"], batched))
    elapsed = time.perf_counter() - t0
    used = len(out["z"].sharding.device_set)  # devices the batch actually ran on
    out = jax.tree_util.tree_map(np.asarray, out)
    samples = {k: np.asarray(v) for k, v in samples.items()}
    loglik = np.asarray(loglik)
    fits = []
    for b in range(n_batch):
        spec, data = built[b]
        n_steps = out["n_steps"][b]
        stats = {
            "sampling_seconds": elapsed / n_batch, "batch_seconds": elapsed, "batch_size": n_batch,
            "devices": used, "mean_steps_per_draw": float(n_steps.mean()), "dense_mass": dense,
            "n_latent": _count_latent(spec), "step_size": float(out["step_size"][b]),
        }
        idata = inference_data(
            spec, data, {k: v[b] for k, v in samples.items()},
            {"diverging": out["diverging"][b].astype(bool), "n_steps": n_steps,
             "acceptance_rate": out["acceptance_rate"][b], "lp": out["lp"][b]},
            loglik[b][..., :data.n])
        config = fit_config(spec, data, seed=seeds[b], chains=chains, warmup=warmup, draws=draws,
                            target_accept=target_accept, stats=stats)
        config["sampler"] = {"name": "hmc", "trajectory": trajectory, "batch_size": n_batch}
        idata.posterior.attrs["bayescale"] = json.dumps(config)
        idata.posterior.attrs.update(law=spec.law.spec, data_hash=config["data_hash"], seed=seeds[b],
                                     bayescale_version=__version__)
        fits.append(Fit(idata))
    return fits


def _fit_chunk(datasets, law, seeds, options):
    """Runs on a Dask worker: fit a chunk, return the posteriors as netCDF bytes (portable)."""
    fits = fit_many(datasets, law, seed=seeds, **options)
    return [_to_bytes(f) for f in fits]


def _to_bytes(fitted) -> bytes:
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fit.nc")
        fitted.save(path)
        with open(path, "rb") as fh:
            return fh.read()


def _from_bytes(blob: bytes):
    import os
    import tempfile

    from .results import load

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fit.nc")
        with open(path, "wb") as fh:
            fh.write(blob)
        return load(path)


def _fit_on_dask(datasets, law, seeds, scheduler, chunk, options, on_done):
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise BayescaleError("scheduler= needs Dask distributed: pip install 'bayescale[dask]'") from exc
    if not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise BayescaleError(f"chunk must be a positive integer, got {chunk!r}")
    law_spec = law if isinstance(law, str) else law.spec
    with Client(scheduler) as client:
        futures = [client.submit(_fit_chunk, datasets[i:i + chunk], law_spec, seeds[i:i + chunk], options,
                                 pure=False)
                   for i in range(0, len(datasets), chunk)]
        sizes = {f.key: len(datasets[i:i + chunk]) for f, i in zip(futures, range(0, len(datasets), chunk))}
        for done in as_completed(futures):  # progress as chunks finish; results stay in batch order
            on_done(sizes[done.key])
        blobs = [b for part in client.gather(futures) for b in part]
    return [_from_bytes(b) for b in blobs]
