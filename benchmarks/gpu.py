"""The performance and batched-fit benchmarks on a CUDA GPU, when this machine has one.

Run on a CUDA machine:

    pip install -e ".[cuda,bench]"
    python benchmarks/gpu.py [--batch 64] [--sequential 8] [--n-sims 100]

With a GPU that JAX sees, this runs ``benchmarks/perf.py`` and ``benchmarks/batch_perf.py`` with
JAX on the GPU (``JAX_PLATFORMS=cuda``, without JAX's preallocation of most of the GPU's memory in
each of the processes they start), each writing its own section of ``RESULTS.md`` ("Performance
on GPU", "Batched fits on GPU"), and records the devices, versions and date in
"GPU runs". PyMC and nutpie in ``perf.py`` still run on the CPU: they are the baselines a user
has either way. Without a GPU it runs nothing, says why, and records in "GPU runs" that it was
skipped; the GPU sections of an earlier run are left as they were.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from results_file import RESULTS, write_section  # noqa: E402

SECTIONS = {"perf.py": "Performance on GPU", "batch_perf.py": "Batched fits on GPU"}
SUMMARY = "GPU runs"


PROBE = r"""
import json, platform
out = {"gpus": [], "devices": []}
try:
    import jax
    name = lambda d: f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip()
    out["devices"] = [name(d) for d in jax.devices()]
    try:
        out["gpus"] = [name(d) for d in jax.devices("cuda")]
    except RuntimeError:   # a JAX without CUDA support, or no CUDA device
        pass
    import jaxlib, numpyro, bayescale
    out["versions"] = (f"bayescale {bayescale.__version__}, jax {jax.__version__}, jaxlib {jaxlib.__version__}, "
                       f"numpyro {numpyro.__version__}, Python {platform.python_version()}")
except Exception as exc:   # e.g. JAX_PLATFORMS=cuda on a machine without one
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""
# JAX reserves most of a GPU's memory in every process that starts it; the benchmarks start several
NO_PREALLOCATE = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def gpu_devices() -> dict:
    """What JAX sees, probed in a child process so that this one never starts JAX (and holds no
    GPU memory while the benchmarks run): {"gpus": [...], "devices": [...], "versions": text}."""
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **NO_PREALLOCATE},
                         capture_output=True, text=True)
    try:
        found = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        found = {"gpus": [], "devices": [], "error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
    found.setdefault("versions", "versions unknown")
    return found


def commands(args) -> list[tuple[str, list[str]]]:
    """The benchmark runs, each as (script, argv), in the order they run."""
    py = sys.executable
    return [
        ("perf.py", [py, str(HERE / "perf.py"), "--batch", str(args.batch), "--sequential", str(args.sequential),
                     "--section", SECTIONS["perf.py"]]),
        ("batch_perf.py", [py, str(HERE / "batch_perf.py"), "--batch", str(args.batch), "--sequential",
                           str(args.sequential), "--n-sims", str(args.n_sims), "--section", SECTIONS["batch_perf.py"]]),
    ]


def main(argv=None, run=subprocess.run, results: Path = RESULTS) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64, help="datasets in the batched comparison")
    ap.add_argument("--sequential", type=int, default=8, help="sequential NUTS fits timed against the batch")
    ap.add_argument("--n-sims", type=int, default=100, help="simulations in the batched sampler's SBC")
    args = ap.parse_args(argv)
    found = gpu_devices()
    gpus, versions = found["gpus"], found["versions"]
    today = datetime.date.today().isoformat()
    head = f"## {SUMMARY} (`benchmarks/gpu.py`)\n\n"
    if not gpus:
        seen = f"devices: {', '.join(found['devices'])}" if found["devices"] else found.get("error", "no devices")
        why = (f"JAX sees no CUDA GPU on this machine ({seen}; {versions}). "
               'On a CUDA machine: `pip install -e ".[cuda,bench]"`, then `python benchmarks/gpu.py`.')
        print(f"skipped: {why}")
        text = results.read_text() if results.exists() else ""
        kept = [s for s in SECTIONS.values() if f"<!-- begin:{s} -->" in text]
        last = (f"The sections {' and '.join(repr(s) for s in kept)} hold the last GPU run." if kept
                else "No GPU run is recorded here yet.")
        write_section(SUMMARY, head + f"Last attempt {today}: **skipped**. {why} {last}\n", path=results)
        return 0
    env = {**os.environ, "JAX_PLATFORMS": "cuda", **NO_PREALLOCATE}
    done = []
    for script, cmd in commands(args):
        print("running", " ".join(cmd[1:]), flush=True)
        out = run(cmd, env=env)
        done.append((script, out.returncode))
    lines = "\n".join(f"| `{script}` | {SECTIONS[script]} | {'ok' if rc == 0 else f'failed (exit {rc})'} |"
                      for script, rc in done)
    write_section(SUMMARY, head + f"Run {today} on {', '.join(gpus)} ({os.cpu_count()} CPU cores; {versions}).\n\n"
                  f"| script | section | result |\n| --- | --- | --- |\n{lines}\n", path=results)
    return 0 if all(rc == 0 for _, rc in done) else 1


if __name__ == "__main__":
    sys.exit(main())
