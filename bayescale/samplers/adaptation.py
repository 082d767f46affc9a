"""Warmup adaptation shared by the NUTS driver and the batched HMC: pure functions over arrays.

* :func:`window_schedule`: Stan's windows (an initial buffer of 75 iterations, mass-matrix windows
  of 25, 50, 100, ... iterations, a terminal buffer of 50; for short warmups 15% / 75% / 10%, as in
  Stan and NumPyro).
* dual averaging of the log step size (Hoffman & Gelman 2014; Stan's constants), restarted at
  mu = log(10 eps) after each window;
* a streaming (Welford / Chan) estimate of the mean and covariance of draws, which takes one draw
  or a batch of draws (the batched HMC pools its chains) per update;
* :func:`regularize`: the window's covariance shrunk *relative to each coordinate's own variance*.

Stan and NumPyro shrink a window's covariance C (from n draws) to n/(n+5)·C + 5/(n+5)·1e-3·I.
Scaling-law posteriors have directions with variance far below 1e-5, which that absolute floor
inflates, so NUTS needs far shorter steps (on the Chinchilla fit of chinchilla_epoch: 25 leapfrog
steps per draw instead of 7). The relative form n/(n+5)·C + 5/(n+5)·1e-3·diag(C) is invariant to
rescaling a parameter. A dense window with fewer than two draws per parameter (C singular or
nearly so) keeps only the variances; a coordinate that never moved gets variance 1.

Everything here is traceable (``jax.jit``/``vmap``) and has no state of its own, in BlackJAX's
``init`` / ``update`` / ``final`` style.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Stan's window sizes and dual-averaging constants
INIT_BUFFER, TERM_BUFFER, BASE_WINDOW = 75, 50, 25
GAMMA, T0, KAPPA = 0.05, 10.0, 0.75
SHRINK_DRAWS, SHRINK_TARGET = 5.0, 1e-3


# ---- windows ------------------------------------------------------------------------------------

def window_schedule(warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """Stan's schedule as two boolean arrays over the warmup iterations: (this iteration's draw
    goes into the current mass-matrix window, a window ends at this iteration).

    Fewer than 20 warmup iterations: no mass-matrix adaptation (Stan and NumPyro do the same)."""
    collect = np.zeros(warmup, bool)
    ends = np.zeros(warmup, bool)
    if warmup < 20:
        return collect, ends
    init, term, size = INIT_BUFFER, TERM_BUFFER, BASE_WINDOW
    if init + term + size > warmup:   # Stan: 15% initial buffer, 10% terminal, the rest one window
        init, term = int(0.15 * warmup), int(0.1 * warmup)
        size = warmup - init - term
    stop = warmup - term
    collect[init:stop] = True
    start = init
    while start < stop:
        end = start + size
        if end + 2 * size > stop:     # the next, doubled window would not fit: stretch this one
            end = stop
        ends[end - 1] = True
        start, size = end, 2 * size
    return collect, ends


# ---- step size: dual averaging ----------------------------------------------------------------

class DualAveraging(NamedTuple):
    log_step: jax.Array       # the iterate, used during warmup
    log_step_avg: jax.Array   # its weighted average, used after warmup
    g_avg: jax.Array          # running average of (target - acceptance)
    t: jax.Array              # iterations since the (re)start
    mu: jax.Array             # shrinkage point, log(10 eps0)


def dual_averaging_init(step_size) -> DualAveraging:
    """Start (or restart, at a window's end) at ``step_size``: mu = log(10·step_size)."""
    log_step = jnp.log(jnp.asarray(step_size))
    zero = jnp.zeros_like(log_step)
    return DualAveraging(log_step, log_step, zero, zero, jnp.log(10.0) + log_step)


def dual_averaging_update(state: DualAveraging, accept_prob, target) -> DualAveraging:
    """One update from a transition's mean acceptance probability (a non-finite one counts as 0)."""
    accept_prob = jnp.where(jnp.isfinite(accept_prob), accept_prob, 0.0)
    t = state.t + 1
    g_avg = (1 - 1 / (t + T0)) * state.g_avg + (target - accept_prob) / (t + T0)
    log_step = state.mu - jnp.sqrt(t) / GAMMA * g_avg
    weight = t ** -KAPPA
    log_step_avg = weight * log_step + (1 - weight) * state.log_step_avg
    return DualAveraging(log_step, log_step_avg, g_avg, t, state.mu)


def step_size(log_step) -> jax.Array:
    """exp(log_step), kept inside the float type's finite positive range."""
    finfo = jnp.finfo(jnp.result_type(log_step))
    return jnp.clip(jnp.exp(log_step), finfo.tiny, finfo.max)


# ---- streaming covariance ---------------------------------------------------------------------

class Welford(NamedTuple):
    mean: jax.Array   # (d,)
    m2: jax.Array     # (d, d) dense, (d,) diagonal: sums of squared deviations from the mean
    n: jax.Array      # draws so far (a float, so that batches can be weighted)


def welford_init(dim: int, dense: bool, dtype=None) -> Welford:
    dtype = dtype or jnp.result_type(float)
    return Welford(jnp.zeros(dim, dtype), jnp.zeros((dim, dim) if dense else dim, dtype),
                   jnp.zeros((), dtype))


def welford_update(state: Welford, draws, weight=1.0) -> Welford:
    """Add ``draws`` (one draw of shape (d,) or a batch (k, d)) when ``weight`` is 1, nothing when
    it is 0 (a traced flag, so windows need no control flow). Chan et al.'s pairwise combination;
    for one draw it is Welford's update."""
    draws = jnp.atleast_2d(draws)
    weight = jnp.asarray(weight, state.n.dtype)
    k = draws.shape[0] * weight
    batch_mean = draws.mean(0)
    dev = draws - batch_mean
    n = state.n + k
    delta = batch_mean - state.mean
    frac = k / jnp.maximum(n, 1.0)
    mean = state.mean + delta * frac
    if state.m2.ndim == 2:
        m2 = state.m2 + weight * (dev.T @ dev) + jnp.outer(delta, delta) * state.n * frac
    else:
        m2 = state.m2 + weight * jnp.sum(dev * dev, 0) + delta * delta * state.n * frac
    return Welford(mean, m2, n)


def welford_covariance(state: Welford) -> jax.Array:
    """The unbiased (co)variance of the draws so far."""
    return state.m2 / jnp.maximum(state.n - 1, 1.0)


# ---- regularisation -----------------------------------------------------------------------------

def regularize(cov, n, relative: bool = True) -> jax.Array:
    """Shrink a window's covariance estimate from ``n`` draws (see the module docstring).

    ``relative=False`` is Stan's and NumPyro's absolute form, n/(n+5)·C + 5/(n+5)·1e-3·I, kept as
    the control of the tests."""
    weight = n / (n + SHRINK_DRAWS)
    dense = cov.ndim == 2
    if not relative:
        floor = (1 - weight) * SHRINK_TARGET
        return weight * cov + (floor * jnp.identity(cov.shape[0], cov.dtype) if dense else floor)
    raw = jnp.diagonal(cov) if dense else cov
    unit = jnp.where(raw > 0, 0.0, 1.0 - raw)  # a coordinate that never moved: variance 1
    var = raw + unit
    floor = (1 - weight) * SHRINK_TARGET * var
    if not dense:
        return weight * var + floor
    cov = cov + jnp.diag(unit)
    full = n > 2 * cov.shape[0]                # fewer than two draws per parameter: variances only
    return jnp.where(full, weight * cov, jnp.diag(weight * var)) + jnp.diag(floor)


def window_covariance(state: Welford, relative: bool = True) -> jax.Array:
    """The regularised covariance of a finished window (the next inverse mass matrix)."""
    return regularize(welford_covariance(state), state.n, relative)


def gradient_scaled_variance(draws: Welford, grads: Welford, relative: bool = True) -> jax.Array:
    """A diagonal inverse mass matrix from a window's draws *and* gradients: sqrt(var z / var g)
    per coordinate, regularised as :func:`window_covariance`. For a Gaussian with variance v the
    potential's gradient has variance 1/v, so this is v exactly, and it uses the gradients'
    information about the scale, which a window of draws alone estimates slowly (the diagonal
    that minimises a Fisher divergence to the posterior; nutpie adapts a form of it). Where a
    coordinate's gradient never varied, its draws' variance."""
    var_z, var_g = welford_covariance(draws), welford_covariance(grads)
    # "never varied" up to rounding: a constant's streaming variance is not exactly 0 in float32
    varied = var_g > (64 * jnp.finfo(var_g.dtype).eps * jnp.abs(grads.mean)) ** 2
    scaled = jnp.where(varied, jnp.sqrt(var_z / jnp.where(varied, var_g, 1.0)), var_z)
    return regularize(scaled, draws.n, relative)


def _symmetric_power(matrix, power):
    """matrix^power for a symmetric positive definite matrix, through its eigendecomposition
    (eigenvalues held above float rounding, so a nearly singular matrix gives no NaN)."""
    values, vectors = jnp.linalg.eigh(0.5 * (matrix + matrix.T))
    values = jnp.maximum(values, jnp.finfo(values.dtype).eps * jnp.max(values))
    return (vectors * values ** power) @ vectors.T


def gradient_informed_covariance(draws: Welford, grads: Welford, relative: bool = True) -> jax.Array:
    """A dense inverse mass matrix from a window's draws *and* gradients: the geometric mean
    C_z # C_g^-1 = C_g^-1/2 (C_g^1/2 C_z C_g^1/2)^1/2 C_g^-1/2 of the draws' covariance C_z and the
    inverse of the gradients' covariance C_g (the draws' regularised as :func:`window_covariance`).

    It is the dense form of :func:`gradient_scaled_variance`: the matrix M that minimises
    tr(M^-1 C_z) + tr(M C_g), a Fisher divergence between the posterior and a Gaussian with
    covariance M (the criterion behind nutpie's metric). For a Gaussian posterior the gradients'
    covariance from a window is the inverse covariance sandwiched around the draws' sample
    covariance, and the mean is the posterior's covariance exactly; away from Gaussianity the
    gradients tell how curved the posterior is where the chain went, which a window of a few
    dozen draws of a few dozen correlated parameters estimates poorly from the draws alone. A
    window with fewer than two draws per parameter keeps only the diagonal (as
    :func:`regularize`; the geometric mean of two diagonal matrices is
    :func:`gradient_scaled_variance`'s). Where a coordinate's gradient never varied, the draws'
    covariance alone.

    Computed in coordinates scaled by the draws' standard deviations: scaling-law parameters
    differ in scale by orders of magnitude, and an eigendecomposition in float32 of the raw
    matrices would lose the small directions; the geometric mean is unchanged by the scaling."""
    cov_z = regularize(welford_covariance(draws), draws.n, relative)
    raw_g = welford_covariance(grads)
    varied = jnp.diagonal(raw_g) > (64 * jnp.finfo(raw_g.dtype).eps * jnp.abs(grads.mean)) ** 2
    # the gradients' covariance is not floored: a floor relative to its diagonal (which its
    # stiffest directions dominate) would swamp its smallest eigenvalues, the posterior's widest
    # directions; the draws' floor keeps the mean positive definite
    full = grads.n > 2 * raw_g.shape[0]
    cov_g = jnp.where(full, raw_g, jnp.diag(jnp.diagonal(raw_g)))
    sd = jnp.sqrt(jnp.diagonal(cov_z))
    a = cov_z / jnp.outer(sd, sd)              # D^-1 C_z D^-1
    b = cov_g * jnp.outer(sd, sd)              # D C_g D, the gradients' covariance in those units
    root_b, inv_root_b = _symmetric_power(b, 0.5), _symmetric_power(b, -0.5)
    mean = inv_root_b @ _symmetric_power(root_b @ a @ root_b, 0.5) @ inv_root_b
    mean = 0.5 * (mean + mean.T) * jnp.outer(sd, sd)
    return jnp.where(jnp.all(varied), mean, cov_z)


def mass_matrix_factors(inverse_mass_matrix) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(inverse mass matrix, mass_matrix_sqrt, mass_matrix_sqrt_inv) laid out as NumPyro's
    ``HMCAdaptState`` holds them: for a dense matrix C, ``mass_matrix_sqrt_inv`` is the lower
    triangular L with L^T L = C (NumPyro's reversed Cholesky) and ``mass_matrix_sqrt`` its
    inverse; for a diagonal one, sqrt(1/C) and sqrt(C)."""
    cov = inverse_mass_matrix
    if cov.ndim == 1:
        root = jnp.sqrt(cov)
        return cov, jnp.reciprocal(root), root
    tril_inv = jnp.swapaxes(jnp.linalg.cholesky(cov[::-1, ::-1])[::-1, ::-1], -2, -1)
    sqrt = jax.scipy.linalg.solve_triangular(tril_inv, jnp.identity(cov.shape[-1], cov.dtype), lower=True)
    return cov, sqrt, tril_inv


# ---- warm start: towards the mode, and a Laplace metric ---------------------------------------

ADAM_STEPS, ADAM_RATE = 300, 0.05


def adam_to_mode(value_and_grad, z, u, g, steps: int = ADAM_STEPS, rate: float = ADAM_RATE):
    """``steps`` Adam steps from the flat point ``z`` (potential ``u``, gradient ``g``) towards the
    posterior mode; a step to a non-finite density, or one that raises the potential by more than
    10, is refused. Returns the last accepted point with its potential and gradient."""

    def body(carry, t):
        z, u, g, m, v = carry
        g_ok = jnp.where(jnp.isfinite(g), g, 0.0)
        m = 0.9 * m + 0.1 * g_ok
        v = 0.999 * v + 0.001 * g_ok ** 2
        mhat, vhat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
        z_new = z - rate * mhat / (jnp.sqrt(vhat) + 1e-8)
        u_new, g_new = value_and_grad(z_new)
        ok = jnp.isfinite(u_new) & (u_new < u + 10.0) & jnp.all(jnp.isfinite(g_new))
        z, g = jnp.where(ok, z_new, z), jnp.where(ok, g_new, g)
        return (z, jnp.where(ok, u_new, u), g, m, v), None

    zeros = jnp.zeros_like(z)
    (z, u, g, _, _), _ = jax.lax.scan(body, (z, u, g, zeros, zeros),
                                      jnp.arange(1, steps + 1, dtype=z.dtype))
    return z, u, g


def laplace_covariance(hessian, floor: float = 1e-2, ceil: float = 1e8):
    """The inverse of the potential's Hessian with its eigenvalues clipped into [floor, ceil]
    (a usable first inverse mass matrix near the mode); the identity if the Hessian is not finite."""
    dim = hessian.shape[0]
    finite = jnp.all(jnp.isfinite(hessian))
    h = jnp.where(finite, 0.5 * (hessian + hessian.T), jnp.identity(dim, hessian.dtype))
    w, v = jnp.linalg.eigh(h)
    w = jnp.clip(jnp.where(jnp.isfinite(w), w, 1.0), floor, ceil)
    cov = (v / w) @ v.T
    return jnp.where(finite & jnp.all(jnp.isfinite(cov)), cov, jnp.identity(dim, hessian.dtype))


NEWTON_STEPS, NEWTON_TRIES, NEWTON_TOL = 100, 30, 1e-6


def damped_newton(potential, z, steps: int = NEWTON_STEPS, tries: int = NEWTON_TRIES,
                  tol: float = NEWTON_TOL):
    """Minimise the flat ``potential`` from ``z`` by Levenberg-Marquardt-damped Newton steps:
    -(|H| + lam)^-1 g in the Hessian's eigenbasis (absolute eigenvalues, so a saddle repels); lam
    is multiplied by 4 until the potential decreases (at most ``tries`` times) and divided by 4
    after a success. Far from the mode it moves like scaled gradient descent, near it like Newton.
    Stops after ``steps`` steps, when no step decreases the potential, or when the predicted
    decrease g^T |H|^-1 g / 2 is below ``tol``. Returns (z, potential, gradient, Hessian at z)."""
    value_and_grad = jax.value_and_grad(potential)
    hessian = jax.hessian(potential)

    def symmetric(h):
        return jnp.where(jnp.isfinite(h), 0.5 * (h + h.T), 0.0)

    def cond(c):
        i, _, _, _, _, _, done = c
        return (i < steps) & ~done

    def body(c):
        i, z, u, g, h, lam, _ = c
        w, v = jnp.linalg.eigh(h)
        a = jnp.abs(w)
        gv = v.T @ g
        decrease = 0.5 * jnp.sum(gv * gv / jnp.maximum(a, jnp.finfo(a.dtype).tiny))

        def attempt(s):
            k, lam, _, _, _, _ = s
            zt = z - v @ (gv / (a + lam))
            ut, gt = value_and_grad(zt)
            ok = jnp.isfinite(ut) & (ut < u) & jnp.all(jnp.isfinite(gt))
            return k + 1, jnp.where(ok, lam, 4.0 * lam), zt, ut, gt, ok

        _, lam, zt, ut, gt, ok = jax.lax.while_loop(lambda s: (s[0] < tries) & ~s[5], attempt,
                                                    (0, lam, z, u, g, False))
        z, u, g = jnp.where(ok, zt, z), jnp.where(ok, ut, u), jnp.where(ok, gt, g)
        h = jax.lax.cond(ok, lambda: symmetric(hessian(z)), lambda: h)
        return i + 1, z, u, g, h, jnp.where(ok, lam / 4.0, lam), ~ok | (decrease < tol)

    u, g = value_and_grad(z)
    h = symmetric(hessian(z))
    lam = jnp.mean(jnp.abs(jnp.diagonal(h)))
    lam = jnp.where(jnp.isfinite(lam) & (lam > 0), lam, 1.0)
    _, z, u, g, h, _, _ = jax.lax.while_loop(cond, body, (0, z, u, g, h, lam, ~jnp.isfinite(u)))
    return z, u, g, h
