"""Dataset loaders on the real files: row counts after the documented fixes, schema, holdouts, errors, CLI."""
from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale import datasets
from bayescale.cli import main
from bayescale.datasets.paths import find_home
from bayescale.datasets.registry import REGISTRY
from bayescale.errors import BayescaleError, BayescaleWarning

HOME = find_home()   # same resolution as the library: $BAYESCALE_DATA, ../shared/datasets, ~/.cache/...
if HOME is None:
    pytest.skip("public datasets not found: set BAYESCALE_DATA / ../shared/datasets not found "
                "(or run `bayescale datasets fetch NAME`)", allow_module_level=True)
HOME = HOME.resolve()   # absolute, so tests that chdir still find it

SOURCES = ("chinchilla_epoch", "gadre_overtraining", "gemstones", "step_law", "obsscaling",
           "sloth_leaderboard", "pythia_evals", "learning_curves_nslpfn", "monkeys_power_pertoken")
PARQUET = {"gemstones_downstream", "monkeys_power_pertoken", "monkeys_pass_at_k"}

# (name, options) -> rows after the documented fixes (see each card / PROVENANCE.md)
ROWS = {
    ("chinchilla_epoch", ()): 240,
    ("chinchilla_epoch", (("exclude_outliers", False),)): 245,
    ("gadre_overtraining", ()): 104,
    ("gadre_overtraining", (("eval", "all"),)): 832,
    ("gadre_downstream", ()): 104 * 46,
    ("gemstones", ()): 770,
    ("gemstones", (("variant", "hot"),)): 220,
    ("gemstones", (("variant", "cool_end"),)): 199,
    ("gemstones_other_losses", ()): 1540,
    ("gemstones_downstream", ()): 770 * 9,
    ("gemstones_task_losses", ()): 22 * (1172 + 2376 + 1221 + 500 + 1838 + 1954 + 1267),
    ("step_law", ()): 1911 - 181,
    ("step_law", (("best_only", True),)): 17,
    ("step_law_moe", ()): 708,
    ("obsscaling", ()): 123 * 8 - 21,
    ("obsscaling_emergent", ()): 489,
    ("obsscaling_leaderboard_v2", ()): 55 * 6,
    ("sloth_leaderboard", ()): 1524,
    ("pythia_evals", ()): 44525 - 1040 - 1430,
    ("learning_curves_nslpfn", ()): 1399 - 687 - 53,
    ("monkeys_power_pertoken", ()): 6 * 874,
    ("monkeys_pass_at_k", ()): 7 * 2 * 128,
    ("monkeys_pass_at_k", (("all_k", True),)): 43008 - 15857,
}
_CACHE: dict = {}


def _skip_if_unavailable(name: str) -> None:
    if not (HOME / REGISTRY[name].source.folder).is_dir():
        pytest.skip(f"{REGISTRY[name].source.folder} not in {HOME}")
    if name in PARQUET and importlib.util.find_spec("pyarrow") is None:
        pytest.skip(f"{name} reads Parquet files: pyarrow not installed")


def loaded(name: str, options=()) -> pd.DataFrame:
    """Load once per session (warnings recorded once), return a copy."""
    _skip_if_unavailable(name)
    key = (name, tuple(options))
    if key not in _CACHE:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = datasets.load(name, **dict(options))
        _CACHE[key] = (df, [w for w in caught if issubclass(w.category, BayescaleWarning)])
    df, _ = _CACHE[key]
    out = df.copy()
    out.attrs = dict(df.attrs)
    return out


def warned(name: str, options=()) -> list[str]:
    loaded(name, options)
    return [str(w.message) for w in _CACHE[(name, tuple(options))][1]]


def test_registry_lists_the_nine_sources_and_every_table_has_an_expected_count():
    names = datasets.list()
    assert set(SOURCES) <= set(names)
    assert set(SOURCES) == set(datasets.list(primary_only=True))
    assert {n for n, _ in ROWS} == set(names) - {"demo"}   # and the built-in demo, first
    assert names[0] == "demo"
    assert "demo_data" in datasets.__all__ and len(datasets.demo_data()) > 0


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_card_is_complete(name):
    card, source = datasets.info(name), REGISTRY[name].source
    for field in ("title", "measured", "response", "params_convention", "tokens", "groups", "holdout", "rows"):
        assert getattr(card, field), f"{name}: card field {field} is empty"
    assert source.license and source.citation
    for _, repo, commit in source.repos:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", repo) and re.fullmatch(r"[0-9a-f]{40}", commit)
    text = datasets.card_text(name)
    assert name in text and "defects fixed" in text


@pytest.mark.parametrize("key", sorted(ROWS, key=str), ids=lambda k: k[0] + "".join(f"-{a}={b}" for a, b in k[1]))
def test_row_counts_and_schema(key):
    name, options = key
    df = loaded(name, options)
    assert len(df) == ROWS[key], f"{name} {dict(options)}: {len(df)} rows"
    response = df.attrs["response"]
    required = ["params", "tokens", "compute", response, "family", "dataset", "task"]
    assert list(df.columns[:4]) == required[:4]
    numeric = df[required[:4]].to_numpy(dtype=float)
    assert np.isfinite(numeric).all(), f"{name}: NaN or inf in required columns"
    assert (numeric[:, :3] > 0).all(), f"{name}: non-positive size"
    for label in ("family", "dataset", "task"):
        assert df[label].map(lambda v: isinstance(v, str) and v != "").all()
    if response == "p_correct":
        assert df["p_correct"].between(0, 1).all()
    else:
        assert (df["loss"] > 0).all()
    if {"correct", "trials"} <= set(df.columns):
        assert (df["correct"] >= 0).all() and (df["correct"] <= df["trials"]).all() and (df["trials"] > 0).all()
    assert not df.duplicated().any()
    assert isinstance(df.attrs["notes"], list)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_holdout_is_nonempty_and_disjoint_from_training(name):
    df = loaded(name)
    mask = datasets.holdout(name, df)
    assert mask.dtype == bool and mask.shape == (len(df),)
    assert 0 < mask.sum() < len(df)
    train = df[~mask]
    assert len(train) + int(mask.sum()) == len(df)
    # the held-out part is the large-scale end (except the authors' explicit split for learning curves)
    if name not in ("learning_curves_nslpfn", "sloth_leaderboard"):
        assert df.loc[mask, "compute"].max() >= train["compute"].max() or df.loc[mask, "params"].min() > train["params"].median()


def test_holdout_defaults_to_loading():
    _skip_if_unavailable("gadre_overtraining")
    mask = datasets.holdout("gadre_overtraining")
    df = loaded("gadre_overtraining")
    assert set(df.loc[mask, "model"]) == {"open_lm_1b", "open_lm_7b"} and mask.sum() == 9
    assert df.loc[~mask, "params"].max() < 5e8


def test_chinchilla_epoch_values():
    df = loaded("chinchilla_epoch")
    np.testing.assert_allclose(df["compute"], 6 * df["params"] * df["tokens"], rtol=1e-12)
    assert df["loss"].max() < 3.41 and abs(df["loss"].min() - 2.077) < 1e-3
    full = loaded("chinchilla_epoch", (("exclude_outliers", False),))
    assert full["loss"].max() > 5.0
    assert any("5 highest-loss" in m for m in warned("chinchilla_epoch"))
    assert not warned("chinchilla_epoch", (("exclude_outliers", False),))
    mask = datasets.holdout("chinchilla_epoch", df)
    assert (df.loc[mask, "compute"] >= 1e21).all() and df.loc[mask, "compute"].max() > 1e22


def test_obsscaling_btlm_fixed_and_counted():
    df = loaded("obsscaling")
    btlm = df[df["model"] == "cerebras/btlm-3b-8k-base"]
    assert len(btlm) > 0
    np.testing.assert_allclose(btlm["tokens"], 0.627e12)
    np.testing.assert_allclose(btlm["compute"], 11.286e21)
    assert df["tokens"].max() < 2e13
    msgs = warned("obsscaling")
    assert any("627T -> 0.627T" in m and "1 row" in m for m in msgs)
    assert any("dropped 25 of 148 model" in m for m in msgs)
    assert any("dropped 21 of 984" in m for m in msgs)
    assert df.attrs["notes"][: len(msgs)] == msgs or all(m in df.attrs["notes"] for m in msgs)


def test_step_law_diverged_runs_dropped():
    df = loaded("step_law")
    assert df["loss"].max() < 3.5
    assert any("dropped 181 of 1911" in m and "diverged" in m for m in warned("step_law"))
    assert {"lr", "batch_size"} <= set(df.columns)
    best = loaded("step_law", (("best_only", True),))
    assert not best.duplicated(["params", "tokens"]).any()
    assert (datasets.holdout("step_law", df) == (df["params"] > 1e9)).all()


def test_duplicates_and_copied_files_dropped():
    assert any("dropped 687 of 1399" in m for m in warned("learning_curves_nslpfn"))
    msgs = warned("pythia_evals")
    assert any("dropped 1040 of 44525" in m for m in msgs)
    assert any("dropped 1430 of 43485" in m and "pythia-2.8b" in m for m in msgs)
    py = loaded("pythia_evals")
    assert (py["tokens"] > 0).all()
    assert not ((py["model"].str.startswith("pythia-2.8b")) & (py["step"] == 13000)).any()


def test_pythia_counts_match_known_task_sizes():
    df = loaded("pythia_evals")
    sizes = df.groupby("task")["trials"].first()
    assert sizes["arc_challenge"] == 1172 and sizes["sciq"] == 1000 and sizes["lambada_openai"] == 5153
    assert df["counts_exact"].all()
    np.testing.assert_allclose(df["correct"], df["p_correct"] * df["trials"], atol=0.02)


def test_monkeys_pass_at_k_invalid_rows_dropped():
    df = loaded("monkeys_pass_at_k", (("all_k", True),))
    assert (df["attempts"] <= df["trials"]).all()
    assert not ((df["correct"] == 0) & (df["p_correct"] > 0)).any()
    assert any("dropped 15857 of 43008" in m for m in warned("monkeys_pass_at_k", (("all_k", True),)))


def test_downstream_counts_are_consistent():
    g = loaded("gadre_downstream")
    exact = g[g["counts_exact"]]
    np.testing.assert_allclose(exact["correct"], exact["p_correct"] * exact["trials"], atol=0.01)
    assert set(g.loc[~g["counts_exact"], "task"]) <= {"arc_challenge", "bbq", "jeopardy", "mmlu", "mmlu_zeroshot"}
    assert g["chance"].between(0, 1).all()


def test_references():
    _skip_if_unavailable("chinchilla_epoch")
    ref = datasets.reference("chinchilla_epoch")
    assert ref["epoch"].loc["alpha", "epoch"] == pytest.approx(0.3478)
    assert ref["epoch"].loc["E", "hoffmann"] == pytest.approx(1.69)
    assert ref["schaeffer_refits"].loc["A_fit", "Model Size"] == pytest.approx(482.0, rel=1e-3)
    if (HOME / "step_law").is_dir():
        boot = datasets.reference("step_law")
        assert len(boot) == 1000 and boot["lr_coefN"].mean() == pytest.approx(-0.713, abs=0.005)
    if (HOME / "gemstones").is_dir():
        gem = datasets.reference("gemstones")
        hot = gem[(gem["fit"] == "approach_3_parameters_grid_search_0_hot") & (gem["huber_delta"] == 1e-4)]
        assert len(hot) == 1 and hot["exponents"].iloc[0][0] == pytest.approx(0.299, abs=1e-3)
        assert set(gem["approach"]) == {1, 3}
    with pytest.raises(BayescaleError, match="no published reference"):
        datasets.reference("obsscaling")


def test_missing_data_home_is_a_clear_error(tmp_path):
    with pytest.raises(BayescaleError) as exc:
        datasets.load("chinchilla_epoch", data_home=tmp_path)
    msg = str(exc.value)
    assert str(tmp_path / "chinchilla_epoch") in msg and "bayescale datasets fetch chinchilla_epoch" in msg


def test_resolution_order_env_then_shared(tmp_path, monkeypatch):
    _skip_if_unavailable("chinchilla_epoch")
    monkeypatch.chdir(tmp_path)                      # no ../shared/datasets from here
    monkeypatch.setenv("HOME", str(tmp_path))        # and no ~/.cache copy
    monkeypatch.setenv("BAYESCALE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(BayescaleError) as exc:
        datasets.load("chinchilla_epoch")
    msg = str(exc.value)
    assert "nowhere" in msg and "shared" in msg and ".cache" in msg
    monkeypatch.setenv("BAYESCALE_DATA", str(HOME))
    assert len(datasets.load("chinchilla_epoch")) == 240


def test_bad_names_and_options():
    with pytest.raises(BayescaleError, match="registered datasets"):
        datasets.load("no_such_dataset")
    _skip_if_unavailable("gadre_overtraining")
    with pytest.raises(BayescaleError, match="valid options"):
        datasets.load("gadre_overtraining", nonsense=1)
    with pytest.raises(BayescaleError, match="c4_val"):
        datasets.load("gadre_overtraining", eval="bogus")


def test_a_switch_takes_only_true_or_false(capsys):
    """exclude_outliers='no' was read as true in silence (a non-empty text)."""
    _skip_if_unavailable("chinchilla_epoch")
    for value in ("no", "maybe", 0):
        with pytest.raises(BayescaleError, match="exclude_outliers is true or false"):
            datasets.load("chinchilla_epoch", exclude_outliers=value)
    assert main(["datasets", "export", "chinchilla_epoch", "--option", "exclude_outliers=no", "--out", "x.csv"]) == 2
    assert "exclude_outliers is true or false" in capsys.readouterr().err
    assert len(datasets.load("chinchilla_epoch", exclude_outliers=False)) == 245   # control: a real false


def test_export_refuses_a_format_it_does_not_write(tmp_path, capsys):
    """--out x.xlsx wrote CSV text under a spreadsheet's name."""
    assert main(["datasets", "export", "demo", "--out", str(tmp_path / "demo.xlsx")]) == 2
    assert "writes CSV (.csv) or Parquet (.parquet), not .xlsx" in capsys.readouterr().err
    assert not (tmp_path / "demo.xlsx").exists()
    assert main(["datasets", "export", "demo", "--out", str(tmp_path / "demo.csv")]) == 0   # control


def test_no_data_files_in_the_package():
    pkg = Path(datasets.__file__).parent
    data = [p for p in pkg.rglob("*") if p.suffix.lower() in (".csv", ".json", ".jsonl", ".parquet", ".npz")]
    assert not data, f"data files must not live in the repository: {data}"


def test_cli_list_show_export(tmp_path, capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SOURCES)
    _skip_if_unavailable("gadre_overtraining")
    assert main(["datasets", "show", "gadre_overtraining"]) == 0
    out = capsys.readouterr().out
    assert "mlfoundations/scaling" in out and "holdout" in out and "104 rows" in out
    target = tmp_path / "g.csv"
    assert main(["datasets", "export", "gadre_overtraining", "--out", str(target), "--option", "eval=all"]) == 0
    back = pd.read_csv(target)
    assert len(back) == 832 and list(back.columns[:7]) == ["params", "tokens", "compute", "loss",
                                                           "family", "dataset", "task"]
    assert main(["datasets", "show", "no_such_dataset"]) == 2
    assert "registered datasets" in capsys.readouterr().err


@pytest.mark.parametrize("name", SOURCES)
def test_cli_show_every_source(name, capsys):
    _skip_if_unavailable(name)
    loaded(name)   # warm the files in the OS cache; show loads again
    assert main(["datasets", "show", name]) == 0
    out = capsys.readouterr().out
    assert "defects fixed" in out and "holdout" in out and "citation" in out


def test_fit_dataset_smoke(tmp_path):
    """The one NUTS run in these tests: a tiny chinchilla fit on the Epoch table through the CLI."""
    _skip_if_unavailable("chinchilla_epoch")
    out = tmp_path / "fit.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["fit", "dataset:chinchilla_epoch", "--law", "chinchilla", "--chains", "1",
                   "--warmup", "100", "--draws", "100", "--out", str(out), "--quiet"])
    assert rc == 0 and out.exists()
