"""The built-in demo as a dataset like the others (bs.datasets.load("demo"), dataset:demo,
`bayescale datasets show demo`) and `bayescale datasets export NAME --out FILE`: written whole,
never over an existing file unless --force."""
from __future__ import annotations

import pandas as pd

from cli_helpers import run, user_error
from bayescale.datasets import demo_data


def test_export_demo_refuses_to_overwrite_unless_forced(capsys, tmp_path):
    out = tmp_path / "demo.csv"
    rc, stdout, _ = run(capsys, "datasets", "export", "demo", "--out", out)
    assert rc == 0 and "wrote 52 rows of demo" in stdout
    pd.testing.assert_frame_equal(pd.read_csv(out), demo_data().reset_index(drop=True), check_dtype=False)
    out.write_text("mine")
    msg = user_error(capsys, "datasets", "export", "demo", "--out", out)
    assert "exists; add --force" in msg and out.read_text() == "mine"
    rc, _, _ = run(capsys, "datasets", "export", "demo", "--out", out, "--force")
    assert rc == 0 and len(pd.read_csv(out)) == 52
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.csv"]   # no temporary file left


def test_export_parquet_and_bad_places(capsys, tmp_path):
    rc, _, _ = run(capsys, "datasets", "export", "demo", "--out", tmp_path / "demo.parquet")
    assert rc == 0 and len(pd.read_parquet(tmp_path / "demo.parquet")) == 52
    assert "is a folder" in user_error(capsys, "datasets", "export", "demo", "--out", tmp_path)
    assert "does not exist" in user_error(capsys, "datasets", "export", "demo", "--out", tmp_path / "no" / "x.csv")
    assert "takes no options" in user_error(capsys, "datasets", "export", "demo", "--out", tmp_path / "o.csv",
                                            "--option", "eval=all")
    assert "unknown dataset 'nope'" in user_error(capsys, "datasets", "export", "nope", "--out", tmp_path / "n.csv")
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "n.csv").exists()


def test_demo_is_a_dataset_like_the_others(capsys):
    import bayescale as bs
    from bayescale.cli import read_table

    names = bs.datasets.list()
    assert names[0] == "demo" and "demo" not in bs.datasets.list(primary_only=True)
    pd.testing.assert_frame_equal(bs.datasets.load("demo"), demo_data())
    pd.testing.assert_frame_equal(read_table("dataset:demo"), demo_data())
    rc, out, _ = run(capsys, "datasets", "show", "demo")
    assert rc == 0 and "SYNTHETIC" in out and "52 rows" in out and "response 'loss'" in out
    rc, out, _ = run(capsys, "datasets", "list")
    assert rc == 0 and "\ndemo " in out and "[built in]" in out
    assert "built-in synthetic table" in user_error(capsys, "calibrate", "dataset:demo", "--holdout", "natural")
