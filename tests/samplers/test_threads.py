"""Fits from several threads at once: four threads call bayescale.fit together, on four tables of
one shape (they race for one compiled program) or of four laws (four compiles race, each tracing
a NumPyro model on NumPyro's process-wide handler stack). All succeed, and each fit's draws are
bit-identical to the same fit run alone afterwards in the same process.

Each case runs in a fresh interpreter, so the compiles really race (cold caches). Run against the
code before the tracing lock (bayescale.samplers.cache.TRACE_LOCK), the same script failed: with
one shape, 3 of the 4 threads raised "all sites must have unique names but got `E` duplicated"
(twice in two runs); with four laws, 3 threads raised in one run, and in another none raised but
three of the four fits' draws differed from the same fits run alone (a trace silently mixed)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys, threading, traceback, warnings
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np, pandas as pd
    import bayescale as bs
    from bayescale.inference import trace_count
    from bayescale.simulate import simulate

    warnings.simplefilter("ignore")
    mode = sys.argv[1]
    params = pd.DataFrame({"params": np.geomspace(1e7, 1e10, 15)})
    both = pd.DataFrame({"params": np.geomspace(1e7, 1e10, 15), "tokens": np.geomspace(1e9, 1e12, 15)[::-1]})
    power = dict(E=1.8, log_A0=-0.5, alpha=0.35, sigma=0.03, nu=10.0)
    if mode == "same":
        jobs = [("power", simulate("power", params, power, seed=i)[0]) for i in range(4)]
    else:
        jobs = [("power", simulate("power", params, power, seed=0)[0]),
                ("chinchilla", simulate("chinchilla", both, dict(E=1.7, log_A0=-1.0, alpha=0.34, log_B0=-1.2,
                                                                  beta=0.28, sigma=0.02, nu=10.0), seed=1)[0]),
                ("kaplan-n", simulate("kaplan-n", params, dict(log_A0=0.5, alpha=0.08, sigma=0.02, nu=10.0),
                                      seed=2)[0]),
                ("kaplan-d", simulate("kaplan-d", both.drop(columns="params"),
                                      dict(log_A0=0.6, alpha=0.1, sigma=0.02, nu=10.0), seed=3)[0])]
    barrier = threading.Barrier(len(jobs))

    def fit(i, wait=False):
        law, df = jobs[i]
        if wait:
            barrier.wait()
        f = bs.fit(df, law, seed=10 + i, chains=2, warmup=100, draws=50, progress=False, discrepancy="none")
        return {k: np.asarray(v.values) for k, v in f.idata.posterior.data_vars.items()}

    before = trace_count()
    errors = []

    def guarded(i):
        try:
            return fit(i, wait=True)
        except Exception:
            errors.append(repr(sys.exc_info()[1])[:500] + " | " + traceback.format_exc()[-1500:])
            return None

    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(guarded, range(len(jobs))))
    traces_together = trace_count() - before
    alone = [fit(i) for i in range(len(jobs))]
    traces_alone = trace_count() - before - traces_together
    same = [t is not None and t.keys() == a.keys() and all(np.array_equal(t[k], a[k]) for k in a)
            for t, a in zip(together, alone)]
    # one more shape, alone: how many traces one compile makes
    before = trace_count()
    law, df = jobs[0]
    bs.fit(pd.concat([df, df.iloc[:2].assign(params=[2e10, 3e10])], ignore_index=True), law, seed=0, chains=2,
           warmup=100, draws=50, progress=False, discrepancy="none")
    print(json.dumps({"errors": errors, "identical": same, "traces_together": traces_together,
                      "traces_alone": traces_alone, "traces_one_compile": trace_count() - before}))
""")


@pytest.fixture(scope="module")
def runs() -> dict:
    """Both cases at once, each in its own fresh interpreter."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "BAYESCALE_JAX_CACHE": "0"}
    procs = {mode: subprocess.Popen([sys.executable, "-c", SCRIPT, mode], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env) for mode in ("same", "laws")}
    out = {}
    for mode, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr[-3000:]
        out[mode] = json.loads(stdout.strip().splitlines()[-1])
    return out


def test_four_threads_fitting_tables_of_one_shape(runs):
    out = runs["same"]
    assert not out["errors"], out["errors"]
    assert out["identical"] == [True] * 4, out
    # the four racing threads compiled the shared program once, and the later fits reused it
    assert out["traces_together"] == out["traces_one_compile"] > 0, out
    assert out["traces_alone"] == 0, out


def test_four_threads_fitting_four_laws(runs):
    out = runs["laws"]
    assert not out["errors"], out["errors"]
    assert out["identical"] == [True] * 4, out
    assert out["traces_alone"] == 0, out
