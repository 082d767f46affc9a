"""Schema validation: each bad input gets one BayescaleError naming the problem and the fix,
and malformed tables of any shape raise nothing else (hypothesis)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayescale import BayescaleError, BayescaleWarning
from bayescale.data import check_group_sizes, validate
from bayescale.inference import build

NT = ("params", "tokens")


def table(n=8, **extra) -> pd.DataFrame:
    df = pd.DataFrame({
        "params": np.geomspace(1e7, 1e9, n),
        "tokens": np.geomspace(1e8, 1e11, n),
        "loss": np.linspace(4.0, 2.5, n),
        "family": ["a", "b"] * (n // 2) + ["a"] * (n % 2),
    })
    for k, v in extra.items():
        df[k] = v
    return df


def with_value(col, row, value, n=8) -> pd.DataFrame:
    df = table(n)
    cells = df[col].astype(object).tolist()
    cells[row] = value
    df[col] = pd.Series(cells, dtype=object)
    return df


# ---- the happy path ----------------------------------------------------------------------------

def test_valid_table_normalises():
    df = table()
    data = validate(df, NT)
    assert data.n == 8
    np.testing.assert_array_equal(data.inputs["params"], df["params"])
    np.testing.assert_array_equal(data.response, df["loss"])
    assert data.inputs["params"].dtype == np.float64
    assert data.coords["family"] == ["a", "b"]
    assert data.coords["dataset"] == ["all"] and data.coords["task"] == ["all"]  # missing -> one label
    np.testing.assert_array_equal(data.group_index["dataset"], 0)
    assert data.notes == []
    assert df.columns.tolist() == ["params", "tokens", "loss", "family"]  # input not modified
    assert len(data.data_hash()) == 64 and data.data_hash() == validate(table(), NT).data_hash()


def test_group_labels_become_sorted_string_coords_with_integer_indices():
    df = table(6)
    df["family"] = [30, 1, 2, 1, 30, 2]
    df["dataset"] = ["web", "code", "web", "web", "code", "books"]
    data = validate(df, NT)
    assert data.coords["family"] == ["1", "2", "30"]  # strings, sorted
    assert all(isinstance(v, str) for v in data.coords["family"])
    np.testing.assert_array_equal(data.group_index["family"], [2, 0, 1, 0, 2, 1])
    assert data.group_index["family"].dtype.kind == "i"
    assert data.coords["dataset"] == ["books", "code", "web"]
    np.testing.assert_array_equal(data.group_index["dataset"], [2, 1, 2, 2, 1, 0])
    labels = np.asarray(data.coords["family"])[data.group_index["family"]]
    assert labels.tolist() == data.frame["family"].tolist()


def test_compute_defaults_to_6ND():
    df = table()
    data = validate(df, ("compute",))
    np.testing.assert_allclose(data.inputs["compute"], 6 * df["params"] * df["tokens"], rtol=1e-15)
    assert any("6*params*tokens" in note for note in data.notes)
    given_c = table(compute=np.full(8, 1e20))
    data = validate(given_c, ("compute",))
    np.testing.assert_array_equal(data.inputs["compute"], 1e20)  # a given column is used as is
    assert data.notes == []


def test_column_mapping():
    df = table().rename(columns={"params": "n_params", "loss": "val_loss"})
    data = validate(df, NT, columns={"params": "n_params", "loss": "val_loss"})
    np.testing.assert_array_equal(data.inputs["params"], table()["params"])
    np.testing.assert_array_equal(data.response, table()["loss"])
    with pytest.raises(BayescaleError) as err:
        validate(df, NT, columns={"params": "n_parameters", "loss": "val_loss"})
    msg = str(err.value)
    assert "n_parameters" in msg and "n_params" in msg  # names the bad mapping and what exists
    with pytest.raises(BayescaleError, match="dict"):
        validate(df, NT, columns=["n_params"])


def test_numeric_strings_are_read_as_numbers():
    df = table().astype({"params": str})
    np.testing.assert_allclose(validate(df, NT).inputs["params"], table()["params"])


# ---- one clear error per bad input ----------------------------------------------------------------

def _error(df, *args, **kwargs) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error", BayescaleWarning)  # an error, not a warning plus an error
        with pytest.raises(BayescaleError) as err:
            validate(df, *args, **kwargs)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_missing_column():
    msg = _error(table().drop(columns="tokens"), NT)
    assert "missing column" in msg and "'tokens'" in msg
    assert "columns=" in msg and "--col" in msg  # the fix: map your names
    msg = _error(table().drop(columns=["tokens"]), ("compute",))
    assert "'compute'" in msg and "derived from params and tokens" in msg
    assert "'loss'" in _error(table().drop(columns="loss"), NT)
    with_compute = table().assign(compute=lambda d: 6 * d.params * d.tokens).drop(columns="tokens")
    assert "tokens = compute / (6 * params)" in _error(with_compute, NT)
    assert "compute / (6 * params)" not in msg   # control: no compute column, no such hint


@pytest.mark.parametrize("value", ["7B", "n/a", "", [1, 2], {"a": 1}, b"x"])
def test_non_numeric_value(value):
    msg = _error(with_value("params", 3, value), NT)
    assert "'params' must be numeric" in msg and "row 3" in msg
    assert "fix or remove" in msg


@pytest.mark.parametrize("col", ["params", "tokens", "loss"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, None])
def test_nan_or_inf(col, value):
    msg = _error(with_value(col, 5, value), NT)
    assert f"'{col}'" in msg and "NaN or infinite" in msg and "row 5" in msg
    assert "drop or fill" in msg


@pytest.mark.parametrize("col", ["params", "tokens", "compute", "loss"])
@pytest.mark.parametrize("value", [0.0, -1.0, -1e9])
def test_non_positive(col, value):
    df = table(compute=np.full(8, 1e19))
    df.loc[2, col] = value
    msg = _error(df, ("params", "tokens", "compute"))
    assert f"'{col}' must be > 0" in msg and "row 2" in msg and "check units" in msg


@pytest.mark.parametrize("dtype_values", [
    pd.to_datetime(["2020-01-01"] * 8), pd.to_timedelta(np.arange(1, 9), unit="s"),
    np.ones(8, dtype=bool), np.ones(8) * (1 + 1j), pd.period_range("2020", periods=8, freq="Y"),
    np.array([10 ** 400] + [1] * 7, dtype=object)])
def test_values_that_are_not_real_numbers(dtype_values):
    df = table()
    df["params"] = dtype_values
    msg = _error(df, NT)
    assert "'params'" in msg and "real numbers" in msg


def test_empty_group_label():
    df = table()
    df["family"] = df["family"].astype(object)
    df.loc[4, "family"] = None
    msg = _error(df, NT)
    assert "'family'" in msg and "row 4" in msg and "fill them" in msg


def test_fewer_rows_than_free_parameters():
    with pytest.raises(BayescaleError) as err:
        build(table(4), "chinchilla")
    msg = str(err.value)
    assert "4 row(s)" in msg and "5 free parameters" in msg and "at least 5" in msg
    build(table(4), "power")  # three parameters: fine


def test_group_with_fewer_points_than_pooled_parameters():
    df = table(9)
    df["family"] = ["a"] * 4 + ["b"] * 4 + ["tiny"]
    spec, data = build(df, "chinchilla")  # one parameter pooled over family: 1 point is enough
    assert spec.pooled["log_A0"] == "family"
    with pytest.raises(BayescaleError) as err:
        build(df, "chinchilla", pool={"log_A0": "family", "alpha": "family"})
    msg = str(err.value)
    assert "('tiny', 1)" in msg and "'family'" in msg and "2 parameter(s)" in msg
    assert "pool fewer parameters" in msg and "add runs" in msg
    with pytest.raises(BayescaleError, match="tiny"):
        check_group_sizes(data, {"family": ["log_A0", "alpha"]})
    check_group_sizes(data, {"family": ["log_A0"]})


def test_duplicate_rows_error_by_default():
    df = pd.concat([table(), table().iloc[[1, 6]]], ignore_index=True)
    msg = _error(df, NT)
    assert "2 exact duplicate row(s)" in msg and "[8, 9]" in msg
    assert "drop_duplicates" in msg and "duplicates='drop'" in msg and "--duplicates drop" in msg


def test_duplicate_rows_dropped_on_request_with_a_warning_and_a_note():
    df = pd.concat([table(), table().iloc[[1]]], ignore_index=True)
    with pytest.warns(BayescaleWarning, match="dropped 1 exact duplicate"):
        data = validate(df, NT, duplicates="drop")
    assert data.n == 8
    assert any("dropped 1 exact duplicate" in note and "row 8 (counting from 0)" in note for note in data.notes)
    assert validate(df, NT, duplicates="keep").n == 9
    assert "duplicates must be" in _error(df, NT, duplicates="ignore")


def test_rows_that_differ_only_in_a_label_are_not_duplicates():
    df = pd.concat([table(), table().iloc[[1]].assign(family="c")], ignore_index=True)
    assert validate(df, NT).n == 9


def test_unhashable_cells_in_extra_columns():
    df = table(extra=[[i] for i in range(8)])
    assert validate(df, NT).n == 8
    df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    assert "1 exact duplicate" in _error(df, NT)


def test_empty_and_non_frame_inputs():
    assert "no rows" in _error(table().iloc[:0], NT)
    assert "missing column" in _error(pd.DataFrame(), NT)
    with pytest.raises(BayescaleError, match="DataFrame"):
        validate({"params": [1.0]}, NT)


def test_repeated_column_names():
    df = table()
    df.columns = ["params", "tokens", "loss", "params"]
    assert "more than once" in _error(df, NT)


# ---- hypothesis: only BayescaleError ever escapes --------------------------------------------------

NAMES = ["params", "tokens", "compute", "loss", "family", "dataset", "task", "n_params", "x", 0, None]
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=1e-300, max_value=1e300),
    st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.text(max_size=4), st.sampled_from(["1e9", "-3", "nan", "inf", "", " ", "1,000"]),
    st.none(), st.booleans(), st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(0, 3), max_size=2), st.just(pd.NaT), st.just(pd.NA),
)
COLUMN_KIND = st.sampled_from(["cells", "floats", "positive", "object", "category", "string", "int"])


@st.composite
def frames(draw) -> pd.DataFrame:
    n = draw(st.integers(0, 7))
    names = draw(st.lists(st.sampled_from(NAMES) | st.text(max_size=3), max_size=7, unique_by=str))
    cols = {}
    for name in names:
        kind = draw(COLUMN_KIND)
        if kind == "positive":
            col = draw(st.lists(st.floats(1e-3, 1e12), min_size=n, max_size=n))
        elif kind == "floats":
            col = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n))
        elif kind == "int":
            col = np.asarray(draw(st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1), min_size=n, max_size=n)),
                             dtype=np.int64)
        else:
            col = draw(st.lists(CELLS, min_size=n, max_size=n))
        s = pd.Series(col, dtype=object if kind == "object" else None)
        try:
            if kind == "category":
                s = s.astype(str).astype("category")
            elif kind == "string":
                s = s.astype("string")
        except (TypeError, ValueError):
            pass
        cols[name] = s
    df = pd.DataFrame(cols) if cols else pd.DataFrame(index=range(n))
    if n and draw(st.booleans()):  # duplicate some rows
        df = pd.concat([df, df.iloc[: draw(st.integers(1, n))]], ignore_index=True)
    return df


@st.composite
def corrupted(draw) -> pd.DataFrame:
    """A valid table with one cell replaced, maybe an extra object column, maybe repeated rows."""
    n = draw(st.integers(1, 9))
    df = table(n)
    col = draw(st.sampled_from(["params", "tokens", "loss", "family", "compute"]))
    if col == "compute":
        df["compute"] = 6.0 * df["params"] * df["tokens"]
    cells = df[col].astype(object).tolist()
    cells[draw(st.integers(0, n - 1))] = draw(CELLS)
    df[col] = pd.Series(cells, dtype=object)
    if draw(st.booleans()):
        df["extra"] = pd.Series(draw(st.lists(CELLS, min_size=n, max_size=n)), dtype=object)
    if draw(st.booleans()):
        df = pd.concat([df, df.iloc[: draw(st.integers(1, n))]], ignore_index=True)
    return df


def _only_bayescale_errors(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call()
        except BayescaleError as exc:
            assert str(exc)
            return None


MAPPINGS = st.none() | st.dictionaries(
    st.sampled_from(["params", "tokens", "loss", "family"]),
    st.sampled_from(["n_params", "x", "params", "missing", "0"]), max_size=2)
SETTINGS = settings(max_examples=250, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(df=frames() | corrupted(), inputs=st.sampled_from([("params",), NT, ("compute",), ("params", "tokens", "compute")]),
       columns=MAPPINGS, duplicates=st.sampled_from(["error", "drop", "keep"]))
def test_validate_raises_only_bayescale_errors(df, inputs, columns, duplicates):
    data = _only_bayescale_errors(lambda: validate(df, inputs, columns=columns, duplicates=duplicates))
    if data is not None:  # what passes is clean
        for k in inputs:
            assert data.inputs[k].dtype == np.float64
            assert np.all(np.isfinite(data.inputs[k])) and np.all(data.inputs[k] > 0)
        assert np.all(np.isfinite(data.response)) and np.all(data.response > 0)
        for g, idx in data.group_index.items():
            assert len(idx) == data.n and all(isinstance(v, str) for v in data.coords[g])
        data.data_hash()


@SETTINGS
@given(df=frames() | corrupted(), law=st.sampled_from(["chinchilla", "kaplan-nd", "power:compute", "kaplan-n"]),
       pool=st.sampled_from([None, "none", {"alpha": "family"}, {"E": "dataset", "alpha": "family"}]))
def test_build_raises_only_bayescale_errors(df, law, pool):
    _only_bayescale_errors(lambda: build(df, law, pool=pool))


def test_group_labels_are_kept_as_given_and_ambiguous_ones_refused():
    from bayescale.data import label_text

    # whole numbers stored as floats (a column that once had a gap) read as typed: 1, not 1.0
    assert label_text(pd.Series([1.0, 2.0, 1.0]), "family").tolist() == ["1", "2", "1"]
    assert label_text(pd.Series([1.5, 2.0]), "family").tolist() == ["1.5", "2"]
    assert label_text(pd.Series(["a", "B "]), "family").tolist() == ["a", "B "]
    # the number 1 and the text "1" are two labels that would merge into one group: an error
    with pytest.raises(BayescaleError, match="mixes values that read alike.*'1'"):
        label_text(pd.Series([1, "1", "a"], dtype=object), "family")


def test_a_grouping_column_nothing_varies_by_is_named():
    """Three task curves with their own asymptotes, fitted with a law that pools nothing by task,
    would be one curve in silence: the fit's notes say so and how to pool. Controls: pooled by
    task, or pool="none" (the user's explicit choice), or one task: no such note."""
    from bayescale.spec import build

    rows = [dict(tokens=d, loss=e + a * (d / 1e6) ** -al, task=t)
            for t, (e, a, al) in {"a": (1.0, 5, 0.3), "b": (1.5, 3, 0.4), "code": (0.8, 8, 0.25)}.items()
            for d in np.geomspace(1e6, 1e9, 8)]
    df = pd.DataFrame(rows)
    spec, _ = build(df, "power:tokens", discrepancy="none")
    note = [n for n in spec.notes if "column 'task' has 3 labels" in n]
    assert note and "fitted as one curve" in note[0] and "pool={'E': 'task', ...}" in note[0]
    pooled, _ = build(df, "power:tokens", pool={"E": "task", "log_A0": "task", "alpha": "task"},
                      discrepancy="none")
    shared, _ = build(df, "power:tokens", pool="none", discrepancy="none")
    one, _ = build(df[df.task == "a"], "power:tokens", discrepancy="none")
    for spec in (pooled, shared, one):
        assert not any("no parameter varies" in n for n in spec.notes)


def test_errors_name_rows_and_columns_as_the_users_table_has_them(tmp_path):
    from bayescale.cli import read_table

    df = pd.DataFrame({"n": [1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9], "tokens": [2e9, 4e9, 8e9, 1.6e10, 3.2e10, 6.4e10],
                       "final_loss": [3.0, 2.9, 0.0, 2.7, 2.6, 2.5]})
    law_inputs = ("params", "tokens")
    # the user's own column name beside the schema's, and the index label of a DataFrame
    shifted = df.set_index(pd.Index([100, 101, 102, 103, 104, 105]))
    with pytest.raises(BayescaleError, match=r"column 'loss' \(your 'final_loss'\).*row 2 \(counting from 0; index 102\)"):
        build(shifted, "chinchilla", columns={"params": "n", "loss": "final_loss"})
    with pytest.raises(BayescaleError, match=r"row 2 \(counting from 0\) is 0"):   # a plain index: the position
        build(df.rename(columns={"n": "params", "final_loss": "loss"}), "chinchilla")
    # a CSV read by the CLI: the file's line (the header is line 1)
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    with pytest.raises(BayescaleError, match=r"row 2 \(line 4 of runs.csv, after its header\)"):
        build(read_table(str(path)), "chinchilla", columns={"params": "n", "loss": "final_loss"})
    # blank lines (skipped by the parser) before the row move its line down, and not after it
    text = path.read_text().splitlines()
    path.write_text("\n".join(text[:2] + ["", "   "] + text[2:4] + [""] + text[4:]) + "\n")
    with pytest.raises(BayescaleError, match=r"row 2 \(line 6 of runs.csv, after its header\)"):
        build(read_table(str(path)), "chinchilla", columns={"params": "n", "loss": "final_loss"})
    # sizes written as in papers get the number to write instead
    sized = df.astype({"n": object})
    sized.loc[1, "n"] = "1.5B"
    with pytest.raises(BayescaleError, match=r"holds '1.5B'.*\('1.5B' as 1.5e\+09\), not with size suffixes"):
        validate(sized, law_inputs, "final_loss", columns={"params": "n"})
    sized.loc[1, "n"] = "abc"   # control: no size, no size hint
    with pytest.raises(BayescaleError, match="holds 'abc'") as err:
        validate(sized, law_inputs, "final_loss", columns={"params": "n"})
    assert "suffix" not in str(err.value)


def test_a_grouping_under_another_name_is_pointed_out():
    """chinchilla pools log_A0 by family; a table whose families sit in 'model_family' fits
    unpooled, and says how to map the column. Control: no such column, no note."""
    rows = [{"params": n, "tokens": 20 * n, "loss": 2 + 1e3 / n ** 0.3, "model_family": f}
            for f in ("a", "b") for n in (1e7, 3e7, 1e8, 3e8, 1e9)]
    spec, _ = build(pd.DataFrame(rows), "chinchilla")
    assert not spec.pooled
    assert any("no 'family' column" in n and "--col family=model_family" in n for n in spec.notes)
    mapped, _ = build(pd.DataFrame(rows), "chinchilla", columns={"family": "model_family"})
    assert mapped.pooled == {"log_A0": "family"}
    assert not any("no 'family' column" in n for n in mapped.notes)
    plain, _ = build(pd.DataFrame(rows).drop(columns="model_family").drop_duplicates(), "chinchilla")
    assert not any("no 'family' column" in n for n in plain.notes)


def test_a_column_map_written_the_pandas_way_round_is_pointed_out():
    from bayescale.data import apply_column_map

    df = pd.DataFrame({"params": [1e8], "tokens": [2e9], "val_loss": [3.0]})
    with pytest.raises(BayescaleError, match=r"did you mean columns=\{'loss': 'val_loss'\}\?"):
        apply_column_map(df, {"val_loss": "loss"})
    with pytest.raises(BayescaleError) as err:   # control: a name that is nowhere gets no such guess
        apply_column_map(df, {"loss": "final_loss"})
    assert "did you mean" not in str(err.value)
    assert list(apply_column_map(df, {"loss": "val_loss"}).columns) == ["params", "tokens", "loss"]


def test_missing_columns_under_common_other_names_get_the_map_to_write():
    """A table with N, D, L (or num_params, train_tokens, eval_loss) gets the --col to write; only
    a guess (shown, never applied), and none where two columns could be it."""
    df = pd.DataFrame({"N": [1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9], "D": [2e9, 4e9, 8e9, 1.6e10, 3.2e10, 6.4e10],
                       "L": [3.0, 2.9, 2.8, 2.7, 2.6, 2.5]})
    with pytest.raises(BayescaleError, match=r"columns=\{'params': 'N', 'tokens': 'D', 'loss': 'L'\} "
                                             r"\(CLI: --col params=N,tokens=D,loss=L\)"):
        validate(df, ("params", "tokens"), "loss")
    named = df.rename(columns={"N": "num_params", "D": "train_tokens", "L": "eval_loss"})
    with pytest.raises(BayescaleError, match=r"--col params=num_params,tokens=train_tokens,loss=eval_loss"):
        validate(named, ("params", "tokens"), "loss")
    two = named.assign(val_loss=named.eval_loss)   # control: two loss-like columns, no guess for loss
    with pytest.raises(BayescaleError) as err:
        validate(two, ("params", "tokens"), "loss")
    assert "loss=eval_loss" not in str(err.value) and "loss=val_loss" not in str(err.value)
    assert "--col params=num_params,tokens=train_tokens" in str(err.value) and "--col loss=your_name" in str(err.value)
