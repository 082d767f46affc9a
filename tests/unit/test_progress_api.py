"""Progress in the Python API: every ``progress`` argument defaults to None (bars only when stderr
is a terminal), a cold compile says so first, the bootstrap baseline's refits have a bar, and
warnings and log records go above an open bar instead of into its line."""
from __future__ import annotations

import importlib
import inspect
import io
import logging
import pkgutil
import re
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from tqdm.auto import tqdm

import bayescale
from bayescale import progress
from bayescale.baselines import huber_bootstrap
from bayescale.heldout import calibrate
from bayescale.inference import fit
from bayescale.models import get_law
from bayescale.simulate import simulate

BAR = re.compile(r"\r|\d+/\d+ \[")   # what any tqdm bar leaves in its stream
COMPILING = "compiling the sampler for power (first fit of this shape; later fits reuse it)"
TINY = {"chains": 1, "warmup": 100, "draws": 100, "discrepancy": "none"}
# the short chains here make the diagnostics warn, as they should
pytestmark = pytest.mark.filterwarnings("ignore:sampling looks unreliable")


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, as under an interactive shell."""

    def isatty(self) -> bool:
        return True


def stderr_of(monkeypatch, terminal: bool, run) -> str:
    """What ``run()`` writes to stderr, a terminal or not."""
    err = Terminal() if terminal else io.StringIO()
    with monkeypatch.context() as m:
        m.setattr(sys, "stderr", err)
        run()
    return err.getvalue()


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    """13 runs of a known power law plus noise."""
    design = pd.DataFrame({"params": np.geomspace(1e7, 1e10, 10).tolist() + [3e10, 1e11, 3e11]})
    df, _ = simulate(get_law("power"), design, {"E": 1.8, "log_A0": -0.5, "alpha": 0.3, "sigma": 0.02,
                                                "nu": 10.0}, seed=3)
    return df


def test_none_means_only_when_stderr_is_a_terminal(monkeypatch):
    closed = io.StringIO()
    closed.close()
    for stream, expected in ((Terminal(), True), (io.StringIO(), False), (None, False), (object(), False),
                             (closed, False)):
        with monkeypatch.context() as m:
            m.setattr(sys, "stderr", stream)
            assert progress.resolve(None) is expected, stream
    assert progress.resolve(True) is True and progress.resolve(False) is False


def _public_functions_with_progress():
    """(qualified name, default of ``progress``) of every public function and method of bayescale."""
    found = {}
    for info in pkgutil.walk_packages(bayescale.__path__, "bayescale."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:   # optional extras (PyMC, Dask) not installed
            continue
        members = [m for _, m in inspect.getmembers(module) if getattr(m, "__module__", None) == module.__name__]
        for member in list(members):
            if inspect.isclass(member):
                members += [f for _, f in inspect.getmembers(member, inspect.isfunction)]
        for f in members:
            if not inspect.isfunction(f) or f.__name__.startswith("_"):
                continue
            parameter = inspect.signature(f).parameters.get("progress")
            if parameter is not None:
                found[f"{f.__module__}.{f.__qualname__}"] = parameter.default
    return found


def test_every_public_progress_argument_defaults_to_none():
    found = _public_functions_with_progress()
    for name in ("bayescale.inference.fit", "bayescale.inference.sample_posterior", "bayescale.heldout.calibrate",
                 "bayescale.sbc.sbc", "bayescale.comparison.holdout_scores", "bayescale.batch.fit_many",
                 "bayescale.baselines.huber_bootstrap"):
        assert name in found, name
    exempt = {"bayescale.datasets.fetch.fetch",   # there `progress` is a function to call, not a switch
              "bayescale.progress.resolve"}       # the rule itself
    assert {k: v for k, v in found.items() if v is not None and k not in exempt} == {}


def test_fit_draws_its_bar_only_on_a_terminal_unless_told(monkeypatch, capsys, runs):
    fit(runs, "power", **TINY)   # stderr captured by pytest is not a terminal
    assert not BAR.search(capsys.readouterr().err)
    assert "NUTS 1 chains" in stderr_of(monkeypatch, True, lambda: fit(runs, "power", **TINY))
    assert "NUTS 1 chains" in stderr_of(monkeypatch, False, lambda: fit(runs, "power", progress=True, **TINY))
    assert stderr_of(monkeypatch, True, lambda: fit(runs, "power", progress=False, **TINY)) == ""


def test_a_cold_compile_says_so_first_and_only_when_it_compiles(monkeypatch, runs):
    bayescale.clear_caches()
    err = stderr_of(monkeypatch, False, lambda: fit(runs, "power", progress=True, **TINY))
    assert err.count(COMPILING) == 1 and err.index(COMPILING) < err.index("NUTS 1 chains"), err
    err = stderr_of(monkeypatch, False, lambda: fit(runs, "power", progress=True, **TINY))
    assert COMPILING not in err and "NUTS 1 chains" in err   # the same shape reuses the sampler
    bayescale.clear_caches()
    assert stderr_of(monkeypatch, True, lambda: fit(runs, "power", progress=False, **TINY)) == ""


def test_bootstrap_refits_have_a_bar(monkeypatch, runs):
    err = stderr_of(monkeypatch, False, lambda: huber_bootstrap(runs, "power", n_boot=3, progress=True))
    assert "bootstrap refits of power" in err
    assert stderr_of(monkeypatch, False, lambda: huber_bootstrap(runs, "power", n_boot=3)) == ""


def test_calibrate_shows_the_bootstrap_refits(monkeypatch, runs):
    def run():
        calibrate(runs, "power", "largest-n:3", baselines=("bootstrap",), n_boot=3, progress=True, **TINY)

    err = stderr_of(monkeypatch, False, run)
    assert "calibrate power" in err and "bootstrap refits of power" in err and "NUTS 1 chains" in err


def _show_like_python(message, category, filename, lineno, file=None, line=None):
    """Python's own way of showing a warning (pytest records them instead), with a plain format."""
    (file or sys.stderr).write(f"WARNING {message}\n")


def _warned_during_a_bar(monkeypatch, make_bar) -> str:
    err = Terminal()
    with monkeypatch.context() as m:
        m.setattr(sys, "stderr", err)
        m.setattr(warnings, "showwarning", _show_like_python)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            with make_bar(total=3, desc="work", disable=False, mininterval=0) as b:
                b.update(1)
                warnings.warn("careful", UserWarning, stacklevel=1)
                b.update(1)
    return err.getvalue()


def test_a_warning_is_a_line_of_its_own_above_the_bar(monkeypatch):
    out = _warned_during_a_bar(monkeypatch, progress.bar)
    assert re.search(r"(^|[\r\n])WARNING careful\n", out), repr(out)
    assert "work:" in out.split("WARNING careful\n", 1)[1]   # and the bar is drawn again below it
    assert warnings.showwarning is not None and not getattr(warnings.showwarning, "_above_bars", False)
    # the control: a plain bar gets the warning glued to the end of its line
    plain = _warned_during_a_bar(monkeypatch, tqdm)
    assert "]WARNING careful" in plain and not re.search(r"(^|[\r\n])WARNING careful\n", plain), repr(plain)


def test_warnings_during_a_bar_are_still_recorded():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with progress.bar(total=1, disable=False, file=io.StringIO()):
            warnings.warn("kept", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["kept"]


def test_log_records_go_above_the_bar(monkeypatch):
    err = Terminal()
    with monkeypatch.context() as m:
        m.setattr(sys, "stderr", err)
        handler = logging.StreamHandler(err)
        logging.root.addHandler(handler)
        try:
            with progress.bar(total=2, desc="work", disable=False, mininterval=0) as b:
                b.update(1)
                logging.getLogger("bayescale.test").warning("logged")
        finally:
            logging.root.removeHandler(handler)
    out = err.getvalue()
    assert re.search(r"(^|[\r\n])logged\n", out), repr(out)
    assert handler not in logging.root.handlers and not any(
        type(h).__name__ == "_TqdmLoggingHandler" for h in logging.root.handlers)
