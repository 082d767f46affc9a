"""The backtest's learning-curve studies read from the source CSV (NMT and image classification,
which bayescale.datasets does not load: the source gives no parameter counts): the rows, curves
and thinning the backtest and RESULTS.md describe."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bayescale.datasets.paths import find_home

HOME = find_home()
FOLDER = "learning_curves_nslpfn"
pytestmark = pytest.mark.skipif(HOME is None or not (HOME / FOLDER).is_dir(),
                                reason=f"{FOLDER} data folder not found (set BAYESCALE_DATA)")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


@pytest.fixture(autouse=True)
def _data_home(monkeypatch):
    # the benchmark scripts set $BAYESCALE_DATA on import when it is unset; set it here, so that
    # the import does not change the environment of other tests in this worker process
    monkeypatch.setenv("BAYESCALE_DATA", str(HOME.resolve()))


def test_nmt_curves():
    import backtest

    df = backtest._lc_nmt()
    assert list(df.columns) == ["tokens", "loss", "task"]
    assert len(df) == 53 and df["task"].nunique() == 5
    assert not df.duplicated().any() and (df["tokens"] > 0).all()


def test_image_classification_curves_are_ten_shot_and_thinned_in_log_steps():
    import backtest

    df = backtest._lc_ic()
    assert len(df) == 368 and df["task"].nunique() == 24
    assert df["task"].str.match(r"^\w+_10 ").all()          # one shot count: 10
    sizes = df.groupby("task").size()
    assert sizes.between(13, backtest.IC_POINTS).all()
    raw = backtest._lc_raw("benchmark.vision.csv", "IC")
    raw = raw[raw["shots"] == backtest.IC_SHOTS]
    for task, g in df.groupby("task"):
        source = np.log10(np.sort(raw.loc[raw["task"] == task, "tokens"].to_numpy()))
        kept = np.log10(np.sort(g["tokens"].to_numpy()))
        assert kept[0] == source[0] and kept[-1] == source[-1]      # both ends of the curve
        for v in np.linspace(source[0], source[-1], backtest.IC_POINTS):
            # every log-spaced target is served by the source point nearest to it
            assert np.min(np.abs(kept - v)) == pytest.approx(np.min(np.abs(source - v)))


def test_both_are_backtest_studies_with_a_curve_grouping():
    import backtest

    for name in ("lc_nmt", "lc_ic"):
        study = backtest.BY_NAME[name]
        assert study.law == "power:tokens" and study.group == "task" and study.axis == "tokens"
    assert "lc_ic" in __import__("discrepancy_prior").STRESS_TESTS
