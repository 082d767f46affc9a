"""Batched fits on a Dask distributed cluster (``fit_many(..., scheduler=ADDRESS)``) give the same
posteriors as the same chunks fitted locally."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayescale.batch import fit_many
from bayescale.errors import BayescaleError
from bayescale.models import get_law
from bayescale.simulate import simulate

distributed = pytest.importorskip("distributed", reason="Dask distributed not installed (pip install 'bayescale[dask]')")


SETTINGS = {"chains": 2, "warmup": 300, "draws": 200}
TRUTH = {"E": 1.7, "log_A0": -1.0, "alpha": 0.34, "log_B0": -1.2, "beta": 0.28, "sigma": 0.02, "nu": 10.0}


def chinchilla_tables(sizes, seed=0):
    law = get_law("chinchilla")
    rng = np.random.default_rng(seed)
    return [simulate(law, pd.DataFrame({"params": np.exp(rng.uniform(np.log(1e7), np.log(1e10), n)),
                                       "tokens": np.exp(rng.uniform(np.log(1e9), np.log(1e12), n))}),
                         TRUTH, seed=seed + i)[0] for i, n in enumerate(sizes)]


@pytest.fixture(scope="module")
def cluster():
    # threads in this process, reached through a real TCP scheduler address on 127.0.0.1
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as c:
        yield c


def test_fit_many_on_dask_matches_local_chunks(cluster):
    tables = chinchilla_tables([20, 24, 30, 22, 25, 30], seed=10)
    seeds = list(range(100, 106))
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    remote = fit_many(tables, "chinchilla", seed=seeds, scheduler=cluster.scheduler_address, chunk=3,
                      **SETTINGS)
    local = (fit_many(tables[:3], "chinchilla", seed=seeds[:3], **SETTINGS)
             + fit_many(tables[3:], "chinchilla", seed=seeds[3:], **SETTINGS))
    assert len(remote) == 6
    for r, lo, df in zip(remote, local, tables):
        assert r.config["n_obs"] == len(df)
        assert r.config["stats"]["batch_size"] == 3
        np.testing.assert_allclose(r.idata.posterior["alpha"].values, lo.idata.posterior["alpha"].values)
        assert r.predict(df.head(2)).shape[0] == 2


def test_bad_chunk_is_rejected(cluster):
    with pytest.raises(BayescaleError, match="chunk"):
        fit_many(chinchilla_tables([20]), scheduler=cluster.scheduler_address, chunk=0)


@pytest.mark.slow  # compiles its own program (~1 min on 2 busy cores)
def test_cli_sbc_on_dask(cluster, tmp_path, capsys):
    import json

    from bayescale.cli import main

    out = tmp_path / "sbc.json"
    code = main(["sbc", "power", "--n-sims", "8", "--sampler", "hmc", "--chains", "1", "--warmup", "100",
                 "--draws", "100", "--thin", "2", "--bins", "2", "--scheduler", cluster.scheduler_address,
                 "--json", str(out)])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["n_sims"] == 8 and result["n_failed"] == 0, printed
    assert result["settings"]["sampler"] == "hmc"
    assert code == (0 if result["passes"] else 1)
    assert "rank uniformity" in printed
