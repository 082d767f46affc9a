"""Classical reference fits: Huber loss on log residuals, L-BFGS from a grid of starts, bootstrap.

This is Hoffmann et al.'s approach 3 as replicated by Epoch AI (Huber delta = 1e-3 on log loss,
L-BFGS from a grid of initialisations, bootstrap resamples for intervals), written for any law in
the registry. Parameters are optimised unconstrained (through each prior's support transform) on
the law's centred scale, so the same law code serves NUTS and the baseline.
"""
from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.distributions.transforms import biject_to
from scipy.optimize import minimize

from .data import validate
from .checks import check_positive_int
from .errors import BayescaleError
from .design import centre, reference_scales
from .discrepancy import coordinates
from .models import get_law
from .predict import predict
from .progress import bar as progress_bar, resolve as resolve_progress


def _huber(r, delta):
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


@functools.lru_cache(maxsize=32)
def _objective(spec: str, delta: float):
    """Jitted (value_and_grad, batched value) of the Huber objective of law ``spec``, compiled once
    per law and data size (the data are arguments, so refits and bootstrap resamples reuse them)."""
    law = get_law(spec)
    transforms = [biject_to(v.prior.support) for v in law.params.values()]

    def objective(u, w, x, logy):
        p = {k: t(u[i]) for i, (k, t) in enumerate(zip(law.params, transforms))}
        r = jnp.log(law.mean(x, p)) - logy
        value = jnp.sum(w * _huber(r, delta)) / delta
        return jnp.where(jnp.isfinite(value), value, 1e30)

    return (jax.jit(jax.value_and_grad(objective)),
            jax.jit(jax.vmap(objective, in_axes=(0, None, None, None))))


@dataclass
class BootstrapFit:
    """Point estimate plus bootstrap refits of one law; ``predict`` mirrors :meth:`Fit.predict`."""

    law: object
    names: list[str]
    estimate: dict[str, float]
    draws: dict[str, np.ndarray]          # bootstrap refits, one value per resample
    residual_sd: float                    # sd of log residuals at the estimate (nan: runs <= parameters)
    residuals: np.ndarray
    logref: dict[str, float]
    stats: dict = field(default_factory=dict)
    pooled: dict = field(default_factory=dict)   # no groups: every parameter is shared
    ranges: dict | None = None                    # fitted range of each centred input
    # how to get more draws (predict's note on intervals whose ends rest on few of them)
    more_draws: str = "run more bootstrap refits (n_boot=..., CLI --n-boot)"
    has_discrepancy = False

    # ---- the source protocol of bayescale.predict -----------------------------------------------
    @property
    def n_draws(self) -> int:
        return len(next(iter(self.draws.values())))

    def param_draws(self, frame, rng, notes, typical=False) -> dict[str, np.ndarray]:
        """Bootstrap refits (samples x 1): every row shares them (no groups)."""
        return {k: v[:, None] for k, v in self.draws.items()}

    def discrepancy_draws(self, x, n, rng, frame, notes):
        """The point fit has no model-discrepancy term."""
        return None

    def offset_draws(self, frame, n, rng, notes):
        """Nor group offsets."""
        return None

    def new_observations(self, rng, mu, values, aux) -> np.ndarray:
        """A new run: the curve times a resampled log residual of the fit."""
        return mu * np.exp(rng.choice(self.residuals, size=mu.shape))

    def predict(self, df: pd.DataFrame, levels=(0.5, 0.9), kind: str = "observation", *, seed: int = 0,
                columns=None, return_draws: bool = False):
        """As :meth:`bayescale.Fit.predict`, over the bootstrap refits."""
        return predict(self, df, levels, kind, seed=seed, columns=columns, return_draws=return_draws)


def fits_losses(law) -> bool:
    """Whether :func:`huber_bootstrap` applies: its objective compares log(curve) with log(response),
    and for a rate law the curve is not the response (accuracy-sigmoid's is the share above chance)."""
    return law.observation.link_name == "log"


def _residual_sd(resid: np.ndarray, n_params: int) -> float:
    """The residual sd with one degree of freedom per fitted parameter; undefined (nan) when there
    are no more runs than parameters."""
    return float(np.std(resid, ddof=n_params)) if len(resid) > n_params else float("nan")


def huber_bootstrap(df: pd.DataFrame, law="chinchilla", *, n_boot: int = 1000, delta: float = 1e-3,
                    grid: tuple[float, ...] = (0.2, 0.5, 0.8), n_starts: int = 16, seed: int = 0,
                    columns=None, duplicates: str = "error", progress: bool | None = None) -> BootstrapFit:
    """Huber (delta on log loss, objective scaled by 1/delta so L-BFGS does not stop early) +
    L-BFGS from a grid of starts (each parameter at the ``grid`` quantiles of its prior; the
    ``n_starts`` best starts by objective are optimised) + ``n_boot`` bootstrap refits started
    from the full-data estimate. Every law parameter is shared (no groups). ``progress`` (None: only
    when stderr is a terminal) draws a bar of the refits on stderr: they take most of the time."""
    n_boot = check_positive_int(n_boot, "n_boot")
    law = get_law(law)
    if not fits_losses(law):
        raise BayescaleError(f"the Huber + bootstrap baseline fits losses (log link); law {law.spec!r} models "
                             f"a rate ({law.response}). Fit it with bayescale.fit instead")
    data = validate(df, law.inputs, law.response, columns=columns, duplicates=duplicates,
                    min_points=law.n_free)
    names = list(law.params)
    transforms = [biject_to(law.params[k].prior.support) for k in names]
    logref = reference_scales(law, data.inputs)
    x = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in centre(law, data.inputs, logref).items()}
    logy = jnp.asarray(np.log(data.response), dtype=jnp.float32)

    def unpack(u):
        return {k: t(u[i]) for i, (k, t) in enumerate(zip(names, transforms))}

    value_and_grad, batch_value = _objective(law.spec, float(delta))

    def solve(u0, w):
        def f(u):
            v, g = value_and_grad(jnp.asarray(u, jnp.float32), w, x, logy)
            return float(v), np.asarray(g, dtype=np.float64)
        res = minimize(f, np.asarray(u0, np.float64), jac=True, method="L-BFGS-B",
                       options={"maxiter": 500})
        return res.x, res.fun

    t0 = time.perf_counter()
    starts = []
    for k in names:
        prior = law.params[k].prior
        qs = np.asarray(prior.icdf(jnp.asarray(grid))) if hasattr(prior, "icdf") else None
        if qs is None or not np.all(np.isfinite(qs)):
            draws = np.asarray(prior.sample(jax.random.PRNGKey(0), (2001,)))
            qs = np.quantile(draws, grid)
        starts.append(np.asarray(biject_to(prior.support).inv(jnp.asarray(qs))))
    start_grid = np.array(list(itertools.product(*starts)), dtype=np.float32)
    ones = jnp.ones_like(logy)
    init_values = np.asarray(batch_value(jnp.asarray(start_grid), ones, x, logy))
    best_starts = start_grid[np.argsort(init_values)[:n_starts]]
    solutions = [solve(u0, ones) for u0 in best_starts]
    u_hat, _ = min(solutions, key=lambda s: s[1])
    t_point = time.perf_counter() - t0

    rng = np.random.default_rng(seed)
    n = data.n
    boot = np.empty((n_boot, len(names)))
    with progress_bar(total=n_boot, desc=f"bootstrap refits of {law.spec}", unit="fit", leave=False,
                      disable=not resolve_progress(progress)) as bar:
        for b in range(n_boot):
            w = jnp.asarray(rng.multinomial(n, np.full(n, 1.0 / n)), dtype=jnp.float32)
            boot[b], _ = solve(u_hat, w)
            bar.update(1)
    t_boot = time.perf_counter() - t0 - t_point

    estimate = {k: float(v) for k, v in unpack(jnp.asarray(u_hat)).items()}
    draws = {k: np.asarray(t(jnp.asarray(boot[:, i])), dtype=np.float64)
             for i, (k, t) in enumerate(zip(names, transforms))}
    resid = np.log(data.response) - np.log(np.asarray(law.mean(x, {k: jnp.asarray(v) for k, v in estimate.items()})))
    return BootstrapFit(
        law=law, names=names, estimate=estimate, draws=draws, residual_sd=_residual_sd(resid, len(names)),
        residuals=np.asarray(resid, dtype=np.float64), logref=logref,
        ranges={k: [float(np.min(v)), float(np.max(v))]
                for k, v in coordinates(law.inputs, centre(law, data.inputs, logref)).items()},
        stats={"point_seconds": t_point, "bootstrap_seconds": t_boot, "n_boot": n_boot,
               "n_grid": len(start_grid), "n_starts": len(best_starts)},
    )
