"""benchmarks/gpu.py: on a machine without a CUDA GPU it runs nothing and records the skip; with
one (the device check replaced) it runs both benchmarks on the GPU into their own sections."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gpu  # noqa: E402


def _no_run(cmd, env):
    raise AssertionError(f"nothing may run without a GPU, ran {cmd}")


def test_without_a_gpu_nothing_runs_and_the_skip_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "gpu_devices", lambda: {"gpus": [], "devices": ["cpu:0 cpu"], "versions": "jax x"})
    results = tmp_path / "RESULTS.md"
    earlier = "<!-- begin:Performance on GPU -->\n## Performance on GPU\nan earlier GPU run\n<!-- end:Performance on GPU -->\n"
    results.write_text(earlier)
    assert gpu.main([], run=_no_run, results=results) == 0
    text = results.read_text()
    assert "**skipped**" in text and "JAX sees no CUDA GPU" in text and "cpu:0" in text
    assert "an earlier GPU run" in text          # an earlier GPU run's section is kept
    assert "'Performance on GPU' hold the last GPU run" in text
    results.unlink()
    assert gpu.main([], run=_no_run, results=results) == 0
    assert "No GPU run is recorded here yet" in results.read_text()


def test_the_probe_reports_this_machines_devices_without_starting_jax_here():
    import sys

    imported_before = "jax" in sys.modules   # other test files may share this worker process
    found = gpu.gpu_devices()
    assert found["devices"] and all(isinstance(d, str) for d in found["devices"]), found
    assert "bayescale" in found["versions"] and "jax" in found["versions"]
    assert all(d.startswith(("gpu", "cuda")) for d in found["gpus"])
    if not imported_before:   # the probe ran in a child process
        assert "jax" not in sys.modules


def test_a_probe_that_fails_is_reported_as_no_gpu(tmp_path, monkeypatch):
    """JAX_PLATFORMS=cuda on a machine without one: the probe's error is recorded, not a crash."""
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    found = gpu.gpu_devices()
    if found["gpus"]:
        pytest.skip("this machine has a CUDA GPU")
    assert found["devices"] == [] and "error" in found, found
    results = tmp_path / "RESULTS.md"
    assert gpu.main([], run=_no_run, results=results) == 0
    assert "**skipped**" in results.read_text()


@pytest.mark.parametrize("exit_code", [0, 3])
def test_with_a_gpu_both_benchmarks_run_on_it(tmp_path, monkeypatch, exit_code):
    monkeypatch.setattr(gpu, "gpu_devices", lambda: {"gpus": ["cuda:0 NVIDIA H100"], "devices": ["cuda:0 NVIDIA H100"],
                                                     "versions": "jax x"})
    ran = []

    def fake_run(cmd, env):
        ran.append((cmd, env["JAX_PLATFORMS"]))
        assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
        return subprocess.CompletedProcess(cmd, exit_code)

    results = tmp_path / "RESULTS.md"
    rc = gpu.main(["--batch", "16"], run=fake_run, results=results)
    assert rc == (0 if exit_code == 0 else 1)
    scripts = [Path(cmd[1]).name for cmd, _ in ran]
    assert scripts == ["perf.py", "batch_perf.py"]
    assert all(platform == "cuda" for _, platform in ran)
    for cmd, _ in ran:
        assert cmd[cmd.index("--section") + 1] == gpu.SECTIONS[Path(cmd[1]).name]
        assert cmd[cmd.index("--batch") + 1] == "16"
    text = results.read_text()
    assert "NVIDIA H100" in text and "skipped" not in text
    assert ("failed (exit 3)" in text) == (exit_code != 0)
