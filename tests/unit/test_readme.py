"""Every ```python and ```bash example of README.md runs as written, in order, in a fresh folder
that holds the demo table as runs.csv (exported with the CLI, as the README says).

Python blocks share one namespace. Bash blocks may hold only `bayescale ...` commands, which run
in this process (`bayescale.cli.main`), so the compiled samplers are shared with the Python blocks
and no process pays JAX's start-up again. A block is left out only when an HTML comment on the
line before it says so: `<!-- not run: ... -->` for blocks that install packages or run the whole
test suite (asserted to be exactly those), `<!-- needs: the public datasets -->` for blocks that
read them (run when the data home is found).

The README shows the normal calls. What this test checks is that they run (names defined,
arguments accepted, files written), not their statistics, so it caps the sampling budgets (chains,
warmup, draws, bootstrap refits) by wrapping the fitting functions here, and the suite stays fast.
"""
from __future__ import annotations

import functools
import inspect
import re
import shlex
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

import bayescale
import bayescale.baselines
import bayescale.batch
import bayescale.inference
from bayescale.cli import main
from bayescale.datasets.paths import find_home
from bayescale.datasets.registry import REGISTRY

README = Path(__file__).resolve().parents[2] / "README.md"
MARK = re.compile(r"<!--\s*(not run|needs):\s*(.+?)\s*-->")
INSTALLS_OR_SUITE = re.compile(r"\bpip install\b|-m pytest\b")
SHELL_SYNTAX = {"&&", "||", "|", ";", ">", ">>", "<", "&"}
# short chains make the diagnostics warn, as they should
pytestmark = pytest.mark.filterwarnings("ignore")


@dataclass
class Block:
    number: int       # 1-based, among the python and bash blocks
    line: int         # README line of the opening fence
    language: str
    code: str
    mark: tuple[str, str] | None   # ("not run" | "needs", reason) from the comment before the fence

    def __str__(self) -> str:
        return f"README block {self.number} ({self.language}, line {self.line})"


def readme_blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = re.fullmatch(r"```(python|bash)\s*", lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        mark = MARK.fullmatch(before.strip())
        blocks.append(Block(len(blocks) + 1, i + 1, fence.group(1), "\n".join(lines[i + 1:end]) + "\n",
                            (mark.group(1), mark.group(2)) if mark else None))
        i = end + 1
    return blocks


def uses_public_data(block: Block) -> bool:
    return any(re.search(rf"\b{re.escape(name)}\b", block.code) for name in REGISTRY)


def commands(block: Block) -> list[list[str]]:
    """The argument lists of a bash block's commands (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", block.code)
    out = []
    for line in text.splitlines():
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        if argv[0] != "bayescale" or SHELL_SYNTAX & set(argv):
            pytest.fail(f"{block}: `{line.strip()}`: only plain bayescale commands run here; keep other "
                        "shell lines out of runnable README blocks or mark the block `<!-- not run: ... -->`")
        out.append(argv[1:])
    return out


def capped(real, **caps):
    """``real`` with each named argument at most its cap (None, the function's "default", becomes
    the cap)."""
    signature = inspect.signature(real)

    @functools.wraps(real)
    def run(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        for name, cap in caps.items():
            value = bound.arguments[name]
            bound.arguments[name] = cap if value is None else min(value, cap)
        return real(*bound.args, **bound.kwargs)

    return run


@pytest.fixture
def small_budgets(monkeypatch):
    fit = capped(bayescale.inference.fit, chains=1, warmup=100, draws=100, max_draws=100)
    monkeypatch.setattr(bayescale.inference, "fit", fit)   # the CLI, calibrate and stacked fits call it here
    monkeypatch.setattr(bayescale, "fit", fit)             # bs.fit
    monkeypatch.setattr(bayescale.batch, "fit_many",
                        capped(bayescale.batch.fit_many, chains=1, warmup=100, draws=100))
    monkeypatch.setattr(bayescale.baselines, "huber_bootstrap",
                        capped(bayescale.baselines.huber_bootstrap, n_boot=20))


def test_marks_leave_out_exactly_the_install_and_test_suite_blocks():
    blocks = readme_blocks()
    assert sum(b.language == "python" for b in blocks) >= 2 and sum(b.language == "bash" for b in blocks) >= 2
    for b in blocks:
        assert b.mark is None or b.mark[0] in ("not run", "needs"), f"{b}: unknown mark {b.mark}"
    not_run = {b.number for b in blocks if b.mark and b.mark[0] == "not run"}
    assert not_run == {b.number for b in blocks if INSTALLS_OR_SUITE.search(b.code)}, (
        "only blocks that install packages or run the whole test suite may be left out")
    needs = {b.number for b in blocks if b.mark and b.mark[0] == "needs"}
    assert needs == {b.number for b in blocks if uses_public_data(b) and b.number not in not_run}, (
        "exactly the blocks that read a public dataset are marked `<!-- needs: the public datasets -->`")


def test_readme_examples_run(tmp_path, monkeypatch, capsys, small_budgets):
    home = find_home()   # before the chdir: ../shared/datasets is relative to the working directory
    if home is not None:
        monkeypatch.setenv("BAYESCALE_DATA", str(home.resolve()))
    monkeypatch.chdir(tmp_path)
    assert main(["datasets", "export", "demo", "--out", "runs.csv"]) == 0
    have_data = home is not None
    namespace: dict = {"__name__": "__readme__"}
    left_out = []
    for block in readme_blocks():
        if block.mark and (block.mark[0] == "not run" or not have_data):
            left_out.append(block)
            continue
        if block.language == "python":
            try:
                exec(compile(block.code, str(block), "exec"), namespace)
            except Exception:   # noqa: BLE001  (any failure of an example is the finding)
                pytest.fail(f"{block} failed:\n{traceback.format_exc()}\n{block.code}")
            continue
        for argv in commands(block):
            try:
                rc = main(argv)
            except SystemExit as exc:   # argparse usage errors
                rc = exc.code
            err = capsys.readouterr().err
            assert rc == 0, f"{block}: `bayescale {shlex.join(argv)}` exited {rc}:\n{err}"
    if not have_data and any(b.mark[0] == "needs" for b in left_out):
        pytest.skip("the other README blocks ran; those that need the public datasets did not "
                    "(no data home: set BAYESCALE_DATA)")
