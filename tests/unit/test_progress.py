"""Progress bars of the long CLI commands (sbc, compare --holdout): written to stderr when it is a
terminal, absent under --quiet and when stderr is not a terminal; the Python API's default
(progress=None) follows the same rule."""
from __future__ import annotations

import io
import re
import sys

import numpy as np
import pandas as pd
import pytest

from bayescale.batch import fit_many
from bayescale.sbc import default_design, sbc
from bayescale.cli import main
from bayescale.inference import fit
from bayescale.models import get_law
from bayescale.simulate import simulate

TINY = ["--chains", "1", "--warmup", "100", "--draws", "100"]
SBC = ["sbc", "power", "--n-sims", "3", "--thin", "2", *TINY]  # the CLI's default --seed 0
# what any tqdm bar leaves in its stream: carriage returns and an "n/total" counter
BAR = re.compile(r"\r|\d+/\d+ \[")
# the short chains here make the diagnostics warn, as they should
pytestmark = pytest.mark.filterwarnings("ignore:sampling looks unreliable")


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, as under an interactive shell."""

    def isatty(self) -> bool:
        return True


def run(argv, monkeypatch, *, terminal: bool) -> tuple[int, str]:
    """Run the CLI; return (exit status, what it wrote to stderr)."""
    err = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    rc = main([str(a) for a in argv])
    monkeypatch.undo()
    return rc, err.getvalue()


@pytest.fixture(scope="module")
def saved_fit(tmp_path_factory):
    """(saved power-law fit, the CSV it was fitted to): 13 runs of known law plus noise; without
    the 3 largest, the runs and settings are SBC's (one compiled sampler serves both)."""
    folder = tmp_path_factory.mktemp("progress")
    design = pd.DataFrame({"params": np.geomspace(1e7, 1e10, 10).tolist() + [3e10, 1e11, 3e11]})
    df, _ = simulate(get_law("power"), design, {"E": 1.8, "log_A0": -0.5, "alpha": 0.3, "sigma": 0.02,
                                                "nu": 10.0}, seed=3)
    csv = folder / "runs.csv"
    df.to_csv(csv, index=False)
    path = folder / "fit.nc"
    fit(df, "power", chains=1, warmup=100, draws=100, progress=False, discrepancy="none").save(path)
    return path, csv


def test_sbc_bar_on_a_terminal(monkeypatch):
    rc, err = run(SBC, monkeypatch, terminal=True)
    assert rc in (0, 1)
    assert "SBC power" in err and "3/3" in err and "sim" in err, err


@pytest.mark.parametrize("terminal, quiet", [(True, True), (False, False)], ids=["quiet", "not-a-terminal"])
def test_sbc_no_bar(monkeypatch, terminal, quiet):
    rc, err = run(SBC + (["--quiet"] if quiet else []), monkeypatch, terminal=terminal)
    assert rc in (0, 1)
    assert not BAR.search(err), err


@pytest.mark.parametrize("terminal, progress", [(False, None), (True, False)],
                         ids=["default-not-a-terminal", "forced-off"])
def test_sbc_api_is_quiet_off_a_terminal_or_when_told(monkeypatch, terminal, progress):
    err = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    result = sbc("power", n_sims=2, seed=0, chains=1, warmup=100, draws=100, thin=2, progress=progress)
    monkeypatch.undo()
    assert result.n_sims == 2 and err.getvalue() == ""


def compare_args(saved_fit):
    path, csv = saved_fit
    return ["compare", path, path, "--name", "a", "--name", "b", "--holdout", "largest-n:3",
            "--data", csv, *TINY]


def test_compare_holdout_bar_on_a_terminal(monkeypatch, saved_fit):
    rc, err = run(compare_args(saved_fit), monkeypatch, terminal=True)
    assert rc == 0
    assert "held-out refits" in err and "2/2" in err and "fit" in err, err


@pytest.mark.parametrize("terminal, quiet", [(True, True), (False, False)], ids=["quiet", "not-a-terminal"])
def test_compare_holdout_no_bar(monkeypatch, saved_fit, terminal, quiet):
    rc, err = run(compare_args(saved_fit) + (["--quiet"] if quiet else []), monkeypatch, terminal=terminal)
    assert rc == 0
    assert not BAR.search(err), err


def sbc_tables(n: int) -> list[pd.DataFrame]:
    """n simulated tables on SBC's design of the power law (so its compiled sampler is reused)."""
    law = get_law("power")
    return [simulate(law, default_design(law), None, seed=i)[0] for i in range(n)]


def test_fit_many_reports_each_finished_fit(monkeypatch):
    done = []
    fit_many(sbc_tables(2), "power", sampler="nuts", chains=1, warmup=100, draws=100, target_accept=0.8,
             on_done=done.append)
    assert done == [1, 1]
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    fit_many(sbc_tables(2), "power", sampler="nuts", chains=1, warmup=100, draws=100, target_accept=0.8,
             progress=True)
    monkeypatch.undo()
    assert "fitting power" in err.getvalue() and "2/2" in err.getvalue(), err.getvalue()


@pytest.mark.slow  # compiles the batched sampler and starts a Dask cluster (~30 s)
def test_batched_and_dask_fits_report_per_batch_and_per_chunk():
    distributed = pytest.importorskip("distributed", reason="Dask distributed not installed")
    tables = sbc_tables(3)
    settings = {"chains": 1, "warmup": 100, "draws": 100}
    done = []
    fit_many(tables, "power", sampler="hmc", on_done=done.append, **settings)
    assert done == [3]  # one compiled batch
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        done = []
        fit_many(tables, "power", sampler="hmc", scheduler=cluster.scheduler_address, chunk=2,
                 on_done=done.append, **settings)
    assert sorted(done) == [1, 2]  # one call per chunk, with its size


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_console_sbc_on_a_pseudo_terminal():
    """The real check of `isatty`: `bayescale sbc` in a child process whose stderr is a pty."""
    import fcntl
    import os
    import struct
    import subprocess
    import termios
    import threading

    leader, follower = os.openpty()
    # a pty opened this way has 0 columns, and tqdm would draw an empty bar in 0 columns
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    chunks = []

    def read():
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed its end
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "bayescale.cli", *SBC],
                              stdout=subprocess.PIPE, stderr=follower, timeout=120)
    finally:
        os.close(follower)
    reader.join(10)
    os.close(leader)
    err = b"".join(chunks).decode(errors="replace")
    assert proc.returncode in (0, 1), err
    assert "SBC power" in err and "3/3" in err, err
