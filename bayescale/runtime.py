"""Opt-in process configuration. Importing bayescale changes nothing in the process; the first
fit (``bayescale.fit``, ``fit_many``) or the CLI calls :func:`configure` once with its defaults.
Call it yourself first to choose otherwise, e.g. ``bayescale.runtime.configure(compile_cache=False)``.
"""
from __future__ import annotations

import os
import threading
import warnings

_CONFIGURED = False
_LOCK = threading.Lock()


def cache_dir_from_env() -> str | None:
    """$BAYESCALE_JAX_CACHE (default ~/.cache/bayescale/jax), or None when it is "0"."""
    path = os.environ.get("BAYESCALE_JAX_CACHE", os.path.join("~", ".cache", "bayescale", "jax"))
    return None if path.strip() == "0" else os.path.expanduser(path)


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache, unless a directory is configured already (then
    that one stays). Directory: ``path``, else $BAYESCALE_JAX_CACHE, default ~/.cache/bayescale/jax;
    "0" disables it. Returns the directory in use, or None."""
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    path = path or cache_dir_from_env()
    if path is None:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    # programs that took 0.1 s to compile are worth a file: the pointwise log likelihood's program
    # (~0.3 s) was compiled anew in every process when the floor was 0.5 s
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    return path


def disable_arviz_numba() -> None:
    """Keep ArviZ from JIT-compiling statistics with numba (installed beside pymc). numba brings a
    second LLVM into the process beside XLA's, and long runs then crashed inside XLA compiles."""
    import arviz as az

    if hasattr(az, "Numba"):
        az.Numba.disable_numba()


def configure(*, compile_cache: bool | str = True, arviz_numba: bool = False) -> None:
    """Configure the process for bayescale; later calls of :func:`ensure_configured` do nothing.

    ``compile_cache``: True turns on JAX's persistent compilation cache at $BAYESCALE_JAX_CACHE
    (default ~/.cache/bayescale/jax; "0" there disables it), a string is the directory to use,
    False leaves JAX's setting alone. A cache directory the user configured is never replaced.
    ``arviz_numba=False`` switches ArviZ's numba off (see :func:`disable_arviz_numba`).
    """
    global _CONFIGURED
    with _LOCK:
        # ArviZ 0.x announces its 1.0 API on import and on every call; bayescale pins arviz < 1.
        # Before anything here imports it (disable_arviz_numba does)
        warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
        if compile_cache:
            enable_compilation_cache(compile_cache if isinstance(compile_cache, str) else None)
        if not arviz_numba:
            disable_arviz_numba()
        _CONFIGURED = True


def ensure_configured() -> None:
    """:func:`configure` with its defaults, once per process, unless it was called already."""
    if not _CONFIGURED:   # two threads may both get here: configure() is idempotent
        configure()


def is_configured() -> bool:
    return _CONFIGURED
