"""XLA options for the sampler's programs (samplers.nuts.compiler_options): the older emitters,
which compile about twice as fast, only for the law alone on small tables, and the same numbers."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayescale.samplers.nuts import FAST_COMPILE_MAX_ROWS, compile_lowered, compiler_options

FAST = {"xla_cpu_use_fusion_emitters": False}


def args(rows: int, walk: dict | None = None) -> tuple:
    return ({"params": np.zeros(rows)}, {}, np.zeros(rows), {}, walk or {})


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the option is XLA:CPU's")
def test_fast_compile_only_for_the_law_alone_on_small_tables():
    assert compiler_options(args(240)) == FAST
    assert compiler_options(args(FAST_COMPILE_MAX_ROWS)) == FAST
    assert compiler_options(args(FAST_COMPILE_MAX_ROWS + 1)) is None          # gradients get slower
    assert compiler_options(args(240, {"basis": np.zeros((240, 4))})) is None  # a walk: many more steps


def test_options_compile_the_same_function():
    def vg(z, y):   # a Student-t log density and its gradient, like a loss law's noise model
        f = lambda z: jnp.sum(jax.scipy.stats.t.logpdf(y, df=jnp.exp(z[0]), loc=z[1], scale=jnp.exp(z[2])))  # noqa: E731
        return jax.value_and_grad(f)(z)

    z, y = jnp.array([1.2, 0.3, -1.0]), jnp.linspace(-2.0, 2.0, 240)
    lowered = jax.jit(vg).lower(z, y)
    (u0, g0), (u1, g1) = lowered.compile()(z, y), compile_lowered(lowered, FAST)(z, y)
    np.testing.assert_allclose(u1, u0, rtol=1e-5)
    np.testing.assert_allclose(g1, g0, rtol=1e-4)


def test_an_option_this_xla_lacks_falls_back_and_other_errors_are_raised():
    lowered = jax.jit(lambda x: 2.0 * x).lower(jnp.ones(3))
    out = compile_lowered(lowered, {"xla_cpu_no_such_option": False})(jnp.ones(3))
    np.testing.assert_allclose(out, 2.0)
    with pytest.raises(Exception, match="no_such"):   # control: the option really is refused
        lowered.compile(compiler_options={"xla_cpu_no_such_option": False})
