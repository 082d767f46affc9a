"""Shared pytest configuration: tests marked ``slow`` run only with ``--run-slow``."""
import os
import sys

import pytest

# helpers shared by tests in subfolders (sbc_helpers, fit_helpers) import by name
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (long statistical sweeps)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow statistical sweep: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


RSS_LIMIT = 3 << 30   # bytes: above this, a module's end frees the compiled programs


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Free compiled samplers and JAX's caches after a test module once the process is large.

    A full run compiles hundreds of XLA programs; keeping them all alive until the end let the
    process grow until an XLA compile crashed (SIGSEGV) late in the session on CI-like runs. Freeing
    them after every module cost a recompile (or a trace and a disk-cache load, ~3 s) of the same
    shapes in the next modules, so they are kept until the process passes RSS_LIMIT (always freed
    where the size cannot be read). Tests that need a cold compile clear the caches themselves.
    """
    yield
    resident = _resident_bytes()
    if resident is not None and resident < RSS_LIMIT:
        return
    import gc

    from bayescale import clear_caches

    clear_caches()   # bayescale's compiled programs and JAX's caches
    gc.collect()
