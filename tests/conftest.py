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


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Free compiled samplers and JAX's caches after each test module.

    A full run compiles hundreds of XLA programs; keeping them all alive until the end let the
    process grow until an XLA compile crashed (SIGSEGV) late in the session on CI-like runs.
    """
    yield
    import gc

    from bayescale import clear_caches

    clear_caches()   # bayescale's compiled programs and JAX's caches
    gc.collect()
