"""What predict gives back about the rows it was handed: their index, group columns the fit does
not use, and how far they lie from the fitted runs (along which axis)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale
from bayescale.errors import BayescaleError
from fit_helpers import fit_quietly, grid

TRUTH = {"E": 1.8, "A": 400.0, "alpha": 0.34, "B": 1800.0, "beta": 0.28}


@pytest.fixture(scope="module")
def runs():
    df = grid()
    rng = np.random.default_rng(3)
    loss = TRUTH["E"] + TRUTH["A"] * df.params ** -TRUTH["alpha"] + TRUTH["B"] * df.tokens ** -TRUTH["beta"]
    return df.assign(loss=loss * np.exp(rng.normal(0, 0.01, len(df))))


@pytest.fixture(scope="module")
def fit(runs):
    return fit_quietly(runs, "chinchilla")


def test_predict_keeps_the_callers_index(fit):
    new = pd.DataFrame({"params": [1e9, 2e9], "tokens": [2e10, 4e10]}, index=[10, 20])
    out = fit.predict(new)
    assert out.index.tolist() == [10, 20]
    new["median"] = out["median"]            # aligns on the index: no NaN
    assert new["median"].notna().all()
    assert fit.predict(new.reset_index(drop=True))["median"].tolist() == out["median"].tolist()


def test_a_group_column_the_fit_does_not_use_is_named(fit, runs):
    """The fit pools nothing by family, so a family label it never saw changes nothing: a note says
    so. Labels the fitted runs carried (here the one default label) and tables without the
    column get no such note (control)."""
    def notes(rows):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit.predict(rows)
        return [str(w.message) for w in caught if "plays no part" in str(w.message)]

    point = pd.DataFrame({"params": [1e9], "tokens": [2e10]})
    found = notes(point.assign(family="llama"))
    assert len(found) == 1 and "column 'family'" in found[0] and "['llama']" in found[0]
    assert notes(point) == [] and notes(point.assign(family="all")) == []


def test_the_distance_note_names_its_axis(fit, runs):
    """100x the largest N and D is two decades beyond along each, four along compute; the note
    says which axis its figure is measured along."""
    far = pd.DataFrame({"params": [100 * runs.params.max()], "tokens": [100 * runs.tokens.max()]})
    out = fit.predict(far)
    assert out["decades_beyond_data"].iloc[0] == pytest.approx(4.0, abs=1e-6)
    assert any("up to 4.0 decades, in compute" in n for n in out.attrs["notes"])
    # a tenth of the smallest N with ten times the largest D: one decade out along each, compute
    # inside, and two decades beyond the largest tokens per parameter
    skewed = pd.DataFrame({"params": [runs.params.min() / 10], "tokens": [10 * runs.tokens.max()]})
    assert any("up to 2.0 decades, in tokens per param" in n for n in fit.predict(skewed).attrs["notes"])


def test_pooling_over_a_column_the_table_lacks_is_an_error(runs):
    """Asked for by name, a grouping the table does not have would leave the fit unpooled behind a
    note that the data "have one" family; it is an error that names the table's columns."""
    with pytest.raises(BayescaleError, match=r"no 'family' column \(its columns: \['params', 'tokens', 'loss', "
                                             r"'Family'\]\).*columns=\{'family': 'YOUR_COLUMN'\}"):
        bayescale.fit(runs.assign(Family="a"), "chinchilla", pool={"log_A0": "family"})


def test_a_discrepancy_setting_that_is_no_prior_lists_the_choices(runs):
    with pytest.raises(BayescaleError, match="discrepancy must be 'auto', 'none' or a prior"):
        bayescale.fit(runs, "chinchilla", discrepancy="sometimes")


def test_a_law_of_the_loss_says_how_far_beyond_its_losses_a_row_lies():
    """Decades are a distance along log axes: a law of the loss has none, so its distance is not
    0 (which read as 'inside the fitted runs') but missing, and a row outside the fitted losses is
    noted in loss units."""
    from bayescale import get_law
    from bayescale.simulate import simulate

    law = get_law("loss-to-error")
    design = pd.DataFrame({"loss": np.linspace(2.6, 4.0, 12), "trials": 1000.0})
    df, _ = simulate(law, design, {**law.from_published(0.7, -2.5), "gamma": 2.0, "phi": 500.0}, seed=1)
    fit = fit_quietly(df, "loss-to-error", seed=2, chains=1, warmup=150, draws=150)
    out = fit.predict(pd.DataFrame({"loss": [1.4, 3.0]}), kind="mean")
    assert out["decades_beyond_data"].isna().all()
    assert any("lie outside the fitted runs' loss [2.6, 4] (up to 1.2 beyond)" in n for n in out.attrs["notes"])
    inside = fit.predict(pd.DataFrame({"loss": [3.0]}), kind="mean")   # control: inside, nothing said
    assert not any("outside the fitted runs" in n for n in inside.attrs["notes"])


def test_a_row_is_measured_from_its_own_groups_runs(fit, runs, tmp_path):
    """A family whose runs stop at 1e8 parameters is extrapolated from there, even where another
    family's runs reach further: the pooled distance alone would say 'inside the data'."""
    a = runs.assign(family="a")
    b = runs[runs.params <= 1.1e8].assign(family="b", loss=lambda d: d.loss * 1.02)
    pooled = fit_quietly(pd.concat([a, b], ignore_index=True), "chinchilla", pool={"log_A0": "family"})
    top = runs.params.max()
    new = pd.DataFrame({"params": [top, top, top], "tokens": [1e10] * 3, "family": ["a", "b", "c"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        out = pooled.predict(new)
    assert out["decades_beyond_data"].tolist() == [0.0, 0.0, 0.0]   # all inside the pooled runs
    own = out["decades_beyond_group"]
    assert own.iloc[0] == 0.0                                          # control: family a has runs there
    assert own.iloc[1] >= np.log10(top / 1e8) - 1e-6                   # b stops a decade lower in N
    assert np.isnan(own.iloc[2])                                       # an unseen family has no runs
    notes = [n for n in out.attrs["notes"] if "own family's runs" in n]
    assert len(notes) == 1 and "family 'b'" in notes[0] and notes[0].startswith("1 row(s)")
    again = bayescale.load(pooled.save(tmp_path / "fit.nc"))          # recorded in the saved fit
    assert again.group_ranges == pooled.group_ranges
    assert "decades_beyond_group" not in fit.predict(new[["params", "tokens"]])   # no groupings: no column


def test_an_interval_whose_ends_rest_on_few_draws_is_said_to(fit):
    new = pd.DataFrame({"params": [2e9], "tokens": [4e10]})
    n = fit.n_draws
    level = 1 - 2 * 2 / n          # about 2 draws beyond each end
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        notes = fit.predict(new, levels=(0.9, level)).attrs["notes"]
    thin = [x for x in notes if "interval's ends rest on" in x]
    assert len(thin) == 1 and "about 2.0 draw(s) each" in thin[0]   # the 90 % interval (control) is not named


def test_the_thin_tail_note_says_how_to_get_more_draws_of_its_source():
    from bayescale.baselines import BootstrapFit
    from bayescale.predict import thin_tail_notes

    assert "--n-boot" in thin_tail_notes(60, (0.9,), BootstrapFit.more_draws)[0]   # 60 bootstrap refits
    assert "--draws" in thin_tail_notes(60, (0.9,))[0]    # control: a fit's note names its own option


def test_labels_of_the_derived_quantities_read_as_predicts_and_an_unseen_one_is_warned(runs):
    """optimal_allocation(family=10.0) is family '10', as predict reads a row's 10.0; a label the
    fit has not seen (a typo) is warned, as predict warns, not only kept in the notes.
    Control: a seen label warns nothing."""
    labelled = pd.concat([runs.assign(family=f, loss=runs.loss * s) for f, s in ((10, 1.0), (2, 1.05), (3, 0.95))],
                         ignore_index=True)
    fit = fit_quietly(labelled, "chinchilla", pool={"log_A0": "family"}, discrepancy="none")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        as_float = fit.optimal_allocation([1e21], family=10.0)
        as_text = fit.optimal_allocation([1e21], family="10")
        pd.testing.assert_frame_equal(as_float, as_text)
        assert fit.min_loss(family=np.int64(2))["loss_median"].iloc[0] > 0
    with pytest.warns(bayescale.BayescaleWarning, match=r"family label\(s\) \['10.5'\] not in the fit") as caught:
        fit.optimal_allocation([1e21], family=10.5)
    assert caught[0].filename == __file__   # attributed to the caller's line


def test_rows_under_the_users_own_column_names_are_read_with_the_fits_map(runs):
    """fit(..., columns={"params": "n_params"}) is remembered: predict and plan read rows that use
    the user's names without the map given again, and rows with the schema's names still read."""
    mine = runs.rename(columns={"params": "n_params", "loss": "val_loss"})
    fit = fit_quietly(mine, "chinchilla", columns={"params": "n_params", "loss": "val_loss"}, discrepancy="none")
    theirs = pd.DataFrame({"n_params": [7e10], "tokens": [1.4e12]})
    schema = pd.DataFrame({"params": [7e10], "tokens": [1.4e12]})
    a, b = fit.predict(theirs), fit.predict(schema)
    assert list(a.columns[:2]) == ["n_params", "tokens"]   # the caller's own columns come back
    np.testing.assert_allclose(a["median"], b["median"], rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        p1 = bayescale.plan(fit, {"n_params": 7e10, "tokens": 1.4e12}, budget=1e20)
        p2 = bayescale.plan(fit, {"params": 7e10, "tokens": 1.4e12}, budget=1e20)
    pd.testing.assert_frame_equal(p1.chosen, p2.chosen)
    with pytest.raises(BayescaleError, match=r"missing column"):   # control: a name neither map knows
        fit.predict(pd.DataFrame({"size": [7e10], "tokens": [1.4e12]}))


def test_a_grouping_no_label_was_given_for_is_said_not_warned_as_a_typo():
    from bayescale.predict import warn_unseen

    drawn = "task label(s) [''] not in the fit: their offset is drawn from the spread between task labels"
    notes = [drawn]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_unseen(notes, {"family": "dense"})
    assert notes == ["no task label given: a new task is drawn (their offset is drawn from the spread between task "
                     "labels); give task=LABEL for a fitted one"]
    typo = ["task label(s) ['mmlu '] not in the fit: their offset is drawn from the spread between task labels"]
    with pytest.warns(bayescale.BayescaleWarning, match=r"\['mmlu '\] not in the fit"):   # control: a label given
        warn_unseen(typo, {"task": "mmlu "})
