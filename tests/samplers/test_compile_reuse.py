"""Compile once, reuse: same-shape fits do not re-trace, point counts are bucketed with a mask that
keeps padded rows out of the likelihood, and clear_caches empties the one compile cache. (The
persistent compilation cache is tested with the rest of the process configuration in
test_process.py.)"""
from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from numpyro.infer.util import log_density

import bayescale as bs
from bayescale.design import centre
from bayescale.inference import MASK, _pad, bucket_size, build, make_model, trace_count
from bayescale.models import get_law
from bayescale.simulate import simulate

TRUTH = dict(E=1.8, log_A0=-0.5, alpha=0.35, sigma=0.03, nu=10.0)
SETTINGS = dict(law="power", chains=1, warmup=150, draws=150, progress=False, discrepancy="none")


def table(n: int, seed: int) -> pd.DataFrame:
    df, _ = simulate(get_law("power"), pd.DataFrame({"params": np.geomspace(1e7, 1e10, n)}), TRUTH, seed=seed)
    return df


def test_bucket_size():
    sizes = np.arange(1, 5000)
    buckets = np.array([bucket_size(n) for n in sizes])
    assert np.all(buckets >= sizes) and np.all(buckets <= np.ceil(sizes * 1.125))
    assert np.all(np.diff(buckets) >= 0)
    assert bucket_size(230) == bucket_size(240) == 240
    assert len(set(buckets[(sizes >= 200) & (sizes <= 300)])) <= 8  # few programs over a range
    assert [bucket_size(n) for n in range(1, 17)] == list(range(1, 17))  # small data: no padding


def test_second_fit_of_same_shape_does_not_retrace():
    before = trace_count("power")
    first = bs.fit(table(20, 0), seed=0, **SETTINGS)
    compiled = trace_count("power") - before
    assert compiled > 0
    # new data values and seed, same shape: the compiled sampler and log-likelihood are reused
    again = trace_count("power")
    second = bs.fit(table(20, 1), seed=1, **SETTINGS)
    assert trace_count("power") == again
    assert not np.allclose(second.posterior["E"], first.posterior["E"])
    # 19 points fall in the same bucket (20): still no re-trace, and the padded row is not returned
    assert bucket_size(19) == 20
    third = bs.fit(table(19, 2), seed=2, **SETTINGS)
    assert trace_count("power") == again
    assert third.idata.log_likelihood["y"].shape == (1, 150, 19)
    assert third.idata.observed_data["y"].shape == (19,)
    # control: a new shape (26 points, its own bucket) must trace again
    bs.fit(table(26, 3), seed=3, **SETTINGS)
    assert trace_count("power") > again


def test_padded_rows_do_not_change_the_density():
    law = get_law("power")
    spec, data = build(table(19, 4), law)
    model = make_model(spec, natural=True)   # the point is in natural parameters
    x = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in centre(law, data.inputs, spec.logref).items()}
    y = np.log(data.response)
    point = {k: jnp.asarray(v) for k, v in TRUTH.items()}
    plain = float(log_density(model, (x, {}, jnp.asarray(y, jnp.float32), None), {}, point)[0])
    size = 24
    xp = {k: jnp.asarray(_pad(v, size)) for k, v in x.items()}
    yp = jnp.asarray(_pad(y, size), jnp.float32)
    mask = jnp.asarray(np.arange(size) < data.n, jnp.float32)
    masked = float(log_density(model, (xp, {}, yp, {MASK: mask}), {}, point)[0])
    np.testing.assert_allclose(masked, plain, rtol=1e-6, atol=1e-4)
    # control: without the mask the 5 copies of the last row count, and the density changes
    unmasked = float(log_density(model, (xp, {}, yp, {MASK: jnp.ones(size)}), {}, point)[0])
    assert abs(unmasked - plain) > 1.0


def test_clear_caches_empties_the_compile_cache():
    from bayescale.samplers.cache import PROGRAMS

    bs.fit(table(20, 5), seed=0, **SETTINGS)
    assert len(PROGRAMS) > 0
    before = trace_count("power")
    bs.clear_caches()
    assert len(PROGRAMS) == 0
    bs.fit(table(20, 6), seed=0, **SETTINGS)   # same shape, compiled again after the clear
    assert trace_count("power") > before


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
