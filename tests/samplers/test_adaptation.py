"""The warmup pieces shared by NUTS and the batched HMC (bayescale/samplers/adaptation.py), checked
against NumPyro's own schedule and dual averaging, NumPy's covariance, and the properties the
relative shrinkage is for."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.hmc_util import build_adaptation_schedule, dual_averaging

from bayescale.samplers import adaptation as ad


@pytest.mark.parametrize("warmup", [10, 19, 20, 100, 149, 150, 151, 300, 400, 1000, 1234])
def test_windows_match_numpyro_and_stan(warmup):
    collect, ends = ad.window_schedule(warmup)
    windows = build_adaptation_schedule(warmup)
    middle = windows[1:-1] if len(windows) > 2 else []
    expected_collect = np.zeros(warmup, bool)
    expected_ends = np.zeros(warmup, bool)
    for w in middle:
        expected_collect[w.start:w.end + 1] = True
        expected_ends[w.end] = True
    np.testing.assert_array_equal(collect, expected_collect)
    np.testing.assert_array_equal(ends, expected_ends)
    if warmup == 1000:   # Stan's default: windows of 25, 50, 100, 200, 500 from iteration 75
        assert list(np.flatnonzero(ends)) == [99, 149, 249, 449, 949]


def test_dual_averaging_matches_numpyro():
    init, update = dual_averaging()
    theirs = init(jnp.log(10 * 0.7))
    ours = ad.dual_averaging_init(0.7)
    rng = np.random.default_rng(0)
    for accept in rng.uniform(0, 1, 40):
        theirs = update(0.8 - accept, theirs)
        ours = ad.dual_averaging_update(ours, accept, 0.8)
        np.testing.assert_allclose(ours.log_step, theirs[0], rtol=1e-5)
        np.testing.assert_allclose(ours.log_step_avg, theirs[1], rtol=1e-5)
    # a non-finite acceptance counts as 0 (the transition failed)
    nan = ad.dual_averaging_update(ours, jnp.nan, 0.8)
    zero = ad.dual_averaging_update(ours, 0.0, 0.8)
    np.testing.assert_allclose(nan.log_step, zero.log_step)


@pytest.mark.parametrize("dense", [True, False])
def test_streaming_covariance_matches_numpy_one_draw_or_batches(dense):
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(60, 4)) @ rng.normal(size=(4, 4)) + 3.0
    one = ad.welford_init(4, dense)
    for d in draws:
        one = ad.welford_update(one, jnp.asarray(d))
    batched = ad.welford_init(4, dense)
    for chunk in np.split(draws, 12):   # 5 draws at a time, as the batched HMC pools chains
        batched = ad.welford_update(batched, jnp.asarray(chunk))
        batched = ad.welford_update(batched, jnp.asarray(chunk) + 100.0, 0.0)   # weight 0: ignored
    expected = np.cov(draws.T)
    expected = expected if dense else np.diag(expected)
    for state in (one, batched):
        assert float(state.n) == 60
        np.testing.assert_allclose(ad.welford_covariance(state), expected, rtol=1e-4)


def test_relative_shrinkage_is_scale_invariant_and_absolute_is_not():
    rng = np.random.default_rng(2)
    cov = np.cov((rng.normal(size=(200, 3)) @ rng.normal(size=(3, 3))).T)
    scale = np.diag([1e-3, 1.0, 1e2])
    scaled = scale @ cov @ scale
    rel, rel_scaled = ad.regularize(jnp.asarray(cov), 50.0), ad.regularize(jnp.asarray(scaled), 50.0)
    np.testing.assert_allclose(rel_scaled, scale @ np.asarray(rel) @ scale, rtol=1e-4)
    np.testing.assert_allclose(rel, 50 / 55 * cov + 5 / 55 * 1e-3 * np.diag(np.diag(cov)), rtol=1e-5)
    # control: Stan's absolute 1e-3·I floor swamps the 1e-6 variance of the first coordinate
    absolute = np.asarray(ad.regularize(jnp.asarray(scaled), 50.0, relative=False))
    assert absolute[0, 0] > 10 * scaled[0, 0]
    assert np.asarray(rel_scaled)[0, 0] < 1.01 * scaled[0, 0]


def test_few_draws_keep_variances_only_and_a_still_coordinate_gets_unit_variance():
    rng = np.random.default_rng(3)
    draws = rng.normal(size=(9, 6))
    draws[:, 2] = 0.5                       # never moved
    state = ad.welford_init(6, True)
    state = ad.welford_update(state, jnp.asarray(draws))
    cov = np.asarray(ad.window_covariance(state))
    assert np.count_nonzero(cov - np.diag(np.diag(cov))) == 0   # 9 draws < 2 x 6 parameters: diagonal
    assert cov[2, 2] == pytest.approx(9 / 14 + 5 / 14 * 1e-3)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    diag = np.asarray(ad.regularize(jnp.asarray(np.var(draws, 0, ddof=1)), 9.0))
    assert diag[2] == pytest.approx(9 / 14 + 5 / 14 * 1e-3)



def test_gradient_scaled_variance_is_exact_for_a_gaussian_from_few_draws():
    """For a Gaussian with variances v the potential's gradient is z / v, so sqrt(var z / var g)
    is v from any window of two or more draws; the draws' own variance (control) is off by the
    sampling error of 12 draws. A coordinate whose gradient never varied keeps its draws' variance."""
    rng = np.random.default_rng(5)
    v = np.array([1e-4, 0.3, 2.0, 50.0])
    z = rng.normal(size=(12, 4)) * np.sqrt(v)
    grads = z / v
    grads[:, 3] = 0.7                       # no information about coordinate 3's scale
    draws_state = ad.welford_update(ad.welford_init(4, False), jnp.asarray(z))
    grads_state = ad.welford_update(ad.welford_init(4, False), jnp.asarray(grads))
    got = np.asarray(ad.gradient_scaled_variance(draws_state, grads_state))
    shrink = 12 / 17 + 5 / 17 * 1e-3        # regularize's relative shrinkage at n = 12
    np.testing.assert_allclose(got[:3], shrink * v[:3], rtol=1e-4)
    np.testing.assert_allclose(got[3], shrink * np.var(z[:, 3], ddof=1), rtol=1e-4)
    control = np.asarray(ad.window_covariance(draws_state))
    assert np.max(np.abs(control[:3] / (shrink * v[:3]) - 1.0)) > 0.1

def test_mass_matrix_factors_are_numpyros_layout():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(5, 5))
    cov = jnp.asarray(a @ a.T + 5 * np.eye(5))
    inverse, sqrt, sqrt_inv = (np.asarray(m) for m in ad.mass_matrix_factors(cov))
    np.testing.assert_allclose(inverse, cov)
    np.testing.assert_allclose(sqrt_inv.T @ sqrt_inv, cov, rtol=1e-4, atol=1e-4)   # C = L^T L
    np.testing.assert_allclose(sqrt @ sqrt_inv, np.eye(5), atol=1e-4)
    assert np.allclose(np.triu(sqrt_inv, 1), 0)
    inverse, sqrt, sqrt_inv = (np.asarray(m) for m in ad.mass_matrix_factors(jnp.diagonal(cov)))
    np.testing.assert_allclose(sqrt_inv ** 2, np.diag(np.asarray(cov)), rtol=1e-5)
    np.testing.assert_allclose(sqrt * sqrt_inv, 1.0, rtol=1e-5)


def test_damped_newton_finds_the_mode_of_a_badly_scaled_curved_potential():
    """A Rosenbrock-like valley with scales 1e-3..1 (a narrow posterior seen from a uniform start):
    the damped Newton steps reach the mode, and the Laplace covariance there is the inverse Hessian."""
    scale = jnp.asarray([1e-3, 1.0])

    def potential(z):
        x, y = z[0] / scale[0], z[1] / scale[1]
        return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2

    z, u, g, h = ad.damped_newton(potential, jnp.asarray([-1.5e-3, 1.8]))
    np.testing.assert_allclose(z, [1e-3, 1.0], rtol=1e-3)
    assert float(u) < 1e-8
    cov = np.asarray(ad.laplace_covariance(h, floor=1e-12, ceil=1e12))
    np.testing.assert_allclose(cov, np.linalg.inv(np.asarray(h)), rtol=1e-4)
    # a non-finite Hessian gives the identity
    np.testing.assert_array_equal(ad.laplace_covariance(jnp.full((2, 2), jnp.nan)), np.eye(2))


def test_gradient_informed_covariance_is_exact_for_a_correlated_gaussian():
    """For a Gaussian with covariance S the potential's gradient is S^-1 (z - mu), so a window's
    gradient covariance is S^-1 C S^-1 around the draws' sample covariance C, and their geometric
    mean is S itself from a window of 20 draws of 4 parameters whose scales span 1e-4..50 (up to
    the draws' shrinkage n/(n+5), which scales it by sqrt(20/25), and its 1e-3 floor); the draws'
    own covariance (control) is off by the sampling error of 20 draws. A window of fewer than two draws per parameter gives the diagonal
    gradient-scaled variances (up to the scale a metric's step size absorbs), and a coordinate whose gradient never varied the draws' covariance."""
    rng = np.random.default_rng(6)
    scale = np.sqrt(np.array([1e-4, 0.3, 2.0, 50.0]))
    corr = np.array([[1.0, 0.7, -0.4, 0.2], [0.7, 1.0, -0.3, 0.1], [-0.4, -0.3, 1.0, 0.5], [0.2, 0.1, 0.5, 1.0]])
    cov = corr * np.outer(scale, scale)
    z = rng.multivariate_normal(np.full(4, 3.0), cov, size=20)
    grads = (z - 3.0) @ np.linalg.inv(cov)

    def state(rows, dense=True):
        return ad.welford_update(ad.welford_init(4, dense), jnp.asarray(rows, jnp.float32))

    def whitened_error(m):   # largest relative error of m as a covariance, in S's own units
        root = np.linalg.cholesky(cov)
        inv = np.linalg.inv(root)
        return np.max(np.abs(np.linalg.eigvalsh(inv @ m @ inv.T) - 1.0))

    got = np.asarray(ad.gradient_informed_covariance(state(z), state(grads)), np.float64)
    assert whitened_error(got / np.sqrt(20 / 25)) < 0.01
    assert whitened_error(np.asarray(ad.window_covariance(state(z)), np.float64) / (20 / 25)) > 0.3   # control

    few = np.asarray(ad.gradient_informed_covariance(state(z[:6]), state(grads[:6])))
    diagonal = np.asarray(ad.gradient_scaled_variance(state(z[:6], False), state(grads[:6], False)))
    ratio = np.diagonal(few) / diagonal    # the same up to a scale (the shrinkage enters as its root)
    np.testing.assert_allclose(ratio, np.sqrt(11 / 6), rtol=1e-3)
    assert np.count_nonzero(few - np.diag(np.diagonal(few))) == 0

    grads[:, 3] = 0.7
    np.testing.assert_allclose(ad.gradient_informed_covariance(state(z), state(grads)),
                               ad.window_covariance(state(z)), rtol=1e-6)