"""Holdout protocols (bayescale.holdout): which rows a calibration run hides from the fit."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayescale.errors import BayescaleError
from bayescale.holdout import largest_n, parse, top_compute


@pytest.fixture
def table() -> pd.DataFrame:
    """Family 'a': 5 runs, sizes 1e7..5e7 (one run each); family 'b': 10 runs, 5 sizes x 2 token counts.
    Compute is derived as 6 N D (no compute column)."""
    a = pd.DataFrame({"params": [1e7, 2e7, 3e7, 4e7, 5e7], "tokens": [1e9] * 5, "family": "a"})
    n = np.repeat([1e8, 2e8, 3e8, 4e8, 5e8], 2)
    b = pd.DataFrame({"params": n, "tokens": np.tile([1e9, 2e9], 5), "family": "b"})
    df = pd.concat([a, b], ignore_index=True)
    df["loss"] = 3.0
    return df


# ---- top compute --------------------------------------------------------------------------------

def test_top_compute_overall(table):
    c = 6 * table["params"] * table["tokens"]
    mask = top_compute(table, 0.2)
    assert mask.dtype == bool and mask.shape == (15,)
    assert mask.sum() == 3                                   # round(0.2 * 15)
    assert set(np.flatnonzero(mask)) == set(np.argsort(c.to_numpy())[-3:])
    assert c[mask].min() > c[~mask].max()                    # everything held out is bigger
    assert set(table.loc[mask, "family"]) == {"b"}           # overall: the small family keeps all its runs


def test_top_compute_uses_the_compute_column_when_present(table):
    # a compute column that reverses the order of 6 N D wins over the derivation
    t = table.assign(compute=1.0 / (6 * table["params"] * table["tokens"]))
    mask = top_compute(t, 0.2)
    assert set(np.flatnonzero(mask)) == {0, 1, 2}           # smallest 6ND = largest 'compute'


def test_top_compute_per_group(table):
    mask = top_compute(table, 0.2, by="family")
    a, b = table["family"] == "a", table["family"] == "b"
    assert mask[a].sum() == 1 and mask[b].sum() == 2         # round(0.2 * 5), round(0.2 * 10)
    assert table.loc[mask & a, "params"].item() == 5e7
    # the two largest N·D in 'b': (5e8, 2e9) = 1e18 and (4e8, 2e9) = 8e17, above (5e8, 1e9) = 5e17
    assert set(table.loc[mask & b, "tokens"]) == {2e9}
    assert set(table.loc[mask & b, "params"]) == {5e8, 4e8}
    c = 6 * table["params"] * table["tokens"]
    for g in (a, b):
        assert c[mask & g].min() > c[~mask & g].max()


def test_top_compute_holds_out_at_least_one_row_per_group(table):
    mask = top_compute(table, 0.01, by="family")
    assert mask[table["family"] == "a"].sum() == 1 and mask[table["family"] == "b"].sum() == 1


# ---- largest N ----------------------------------------------------------------------------------

def test_largest_n_overall(table):
    mask = largest_n(table, 1)
    assert set(np.flatnonzero(mask)) == {13, 14}             # both runs of N = 5e8
    mask2 = largest_n(table, 2)
    assert set(table.loc[mask2, "params"]) == {4e8, 5e8} and mask2.sum() == 4


def test_largest_n_per_group(table):
    mask = largest_n(table, 2, by="family")
    got = table.loc[mask].groupby("family")["params"].apply(lambda s: sorted(set(s))).to_dict()
    assert got == {"a": [4e7, 5e7], "b": [4e8, 5e8]}
    assert mask.sum() == 2 + 4                               # k distinct sizes, every run of each


def test_largest_n_with_k_above_the_number_of_sizes_takes_the_whole_group(table):
    mask = largest_n(table, 9, by="family")
    assert mask.all()


# ---- parse --------------------------------------------------------------------------------------

def test_parse_specs(table):
    np.testing.assert_array_equal(parse("top-compute:0.2", table), top_compute(table, 0.2))
    np.testing.assert_array_equal(parse("top-compute:0.2", table, by="family"),
                                  top_compute(table, 0.2, by="family"))
    np.testing.assert_array_equal(parse("largest-n:1", table), largest_n(table, 1))
    np.testing.assert_array_equal(parse("largest-n:2", table, by="family"), largest_n(table, 2, by="family"))
    natural = np.zeros(15, dtype=bool)
    natural[[3, 7]] = True
    np.testing.assert_array_equal(parse("natural", table, natural=natural), natural)
    np.testing.assert_array_equal(parse("natural", table, natural=list(natural)), natural)


def test_parse_defaults_without_argument(table):
    # a bare name means what calibrate's default (top-compute:0.1) means, as --help says
    np.testing.assert_array_equal(parse("top-compute", table), parse("top-compute:0.1", table))
    np.testing.assert_array_equal(parse("top-compute", table), top_compute(table, 0.1))
    assert not np.array_equal(parse("top-compute", table), top_compute(table, 0.2))   # control: 0.2 differs
    np.testing.assert_array_equal(parse("largest-n", table), largest_n(table, 1))


@pytest.mark.parametrize("spec, kwargs, message", [
    ("random:0.2", {}, r"unknown holdout 'random:0.2'; choose one of \['top-compute:FRACTION', 'largest-n:K', 'natural'\]"),
    ("top-compute:1.5", {}, r"fraction must be in \(0, 1\), got 1.5"),
    ("top-compute:0", {}, r"fraction must be in \(0, 1\), got 0"),
    ("top-compute:-0.1", {}, r"fraction must be in \(0, 1\)"),
    ("top-compute:1", {}, r"fraction must be in \(0, 1\), got 1"),
    ("top-compute:lots", {}, r"cannot read holdout 'top-compute:lots'.*e\.g\. top-compute:0\.2"),
    ("largest-n:0", {}, r"largest-n needs K >= 1, got 0"),
    ("largest-n:1.5", {}, r"cannot read holdout 'largest-n:1.5'"),
    ("natural", {}, r"'natural' needs a registered dataset"),
    ("top-compute:0.2", {"by": "task"}, r"cannot hold out per 'task': no such column"),
])
def test_parse_errors(table, spec, kwargs, message):
    with pytest.raises(BayescaleError, match=message) as exc:
        parse(spec, table, **kwargs)
    # only an unreadable number is "cannot read"; other errors are not re-wrapped in it
    assert str(exc.value).startswith("cannot read") == ("cannot read" in message), str(exc.value)


def test_a_holdout_that_selects_everything_or_nothing_is_an_error(table):
    with pytest.raises(BayescaleError, match=r"selects 15 of 15 rows; it must leave both"):
        parse("largest-n:9", table, by="family")          # every size of every family
    with pytest.raises(BayescaleError, match=r"selects 0 of 15 rows"):
        parse("natural", table, natural=np.zeros(15, dtype=bool))
    with pytest.raises(BayescaleError, match=r"selects 15 of 15 rows"):
        parse("natural", table, natural=np.ones(15, dtype=bool))


def test_natural_mask_of_the_wrong_length_is_an_error(table):
    with pytest.raises(BayescaleError, match=r"natural holdout mask has 14 entries.*15 rows"):
        parse("natural", table, natural=np.ones(14, dtype=bool))


def test_missing_columns_are_clear_errors(table):
    with pytest.raises(BayescaleError, match=r"largest-n holdout needs a 'params' column"):
        parse("largest-n:1", table.drop(columns="params"))
    with pytest.raises(BayescaleError, match=r"top-compute holdout needs a 'compute' column"):
        parse("top-compute:0.2", table.drop(columns="tokens"))


def test_a_compute_that_is_not_a_positive_number_is_named(table):
    """A NaN or negative compute used to put the largest run on the training side in silence."""
    largest = int(np.argmax(table["params"] * table["tokens"]))
    for bad in (np.nan, -1.0, np.inf):
        with_compute = table.assign(compute=6.0 * table["params"] * table["tokens"])
        with_compute.loc[largest, "compute"] = bad
        with pytest.raises(BayescaleError, match=rf"'compute', which is {bad:g} at row {largest}"):
            top_compute(with_compute, 0.1)
        with pytest.raises(BayescaleError, match=f"at row {largest}"):   # per group too, counted in the table
            top_compute(with_compute, 0.1, by="family")
    no_compute = table.assign(params=table["params"].where(table.index != 3, np.inf))
    with pytest.raises(BayescaleError, match="'params' x 'tokens', which is inf at row 3.*positive, finite params"):
        top_compute(no_compute, 0.1)
    good = table.assign(compute=6.0 * table["params"] * table["tokens"])   # control
    assert top_compute(good, 0.1)[largest]
