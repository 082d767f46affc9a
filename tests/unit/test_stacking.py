"""Law uncertainty by default: bs.fit(df, [law, law]) mixes the laws by PSIS-LOO stacking."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.datasets.demo import demo_data
from bayescale.stacking import StackedFit

BUDGET = dict(chains=2, warmup=300, draws=300, progress=False, seed=0)


@pytest.fixture(scope="module")
def stacked():
    df = demo_data()
    df = df[df["family"] == "dense"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        return bs.fit(df, ["chinchilla", "kaplan-nd"], **BUDGET), df


def test_weights_and_mixture(stacked):
    st, _ = stacked
    assert isinstance(st, StackedFit) and set(st.fits) == {"chinchilla", "kaplan-nd"}
    assert abs(sum(st.weights.values()) - 1) < 1e-9 and all(w >= 0 for w in st.weights.values())
    pts = pd.DataFrame({"params": [1e10, 3e8], "tokens": [2e11, 6e9]})
    out = st.predict(pts, levels=(0.9,))
    # each law's draws with the seed the mixture gives it (seed + its index)
    per_law = {k: f.predict(pts, levels=(0.9,), seed=i) for i, (k, f) in enumerate(st.fits.items())}
    lo = np.min([p["lower_90"] for p in per_law.values()], axis=0)
    hi = np.max([p["upper_90"] for p in per_law.values()], axis=0)
    # the mixture's interval lies within the laws' span, up to the Monte-Carlo error of a tail
    # quantile of a subset of their draws (a few % of the width; 1e-3 absolute failed by 5e-4)
    slack = 0.05 * (hi - lo)
    assert np.all(out["lower_90"] >= lo - slack) and np.all(out["upper_90"] <= hi + slack)
    shares = out[["share_parameters", "share_discrepancy", "share_noise", "share_law"]].to_numpy()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert out.attrs["weights"] == st.weights
    alloc = st.optimal_allocation([1e21])
    assert alloc.loc[0, "params_lower_90"] <= alloc.loc[0, "params_median"] <= alloc.loc[0, "params_upper_90"]


def test_mixture_follows_the_weights(stacked):
    """Control: all the weight on one law gives exactly that law's intervals' spread of draws."""
    st, _ = stacked
    pts = pd.DataFrame({"params": [1e10], "tokens": [2e11]})
    only = StackedFit(st.fits, {"chinchilla": 1.0, "kaplan-nd": 0.0})
    _, mixed = only.predict(pts, kind="mean", return_draws=True)
    _, alone = st.fits["chinchilla"].predict(pts, kind="mean", seed=0, return_draws=True)
    np.testing.assert_allclose(np.sort(mixed.values[:, 0]), np.sort(alone.values[: len(mixed), 0]))


def test_save_and_load_round_trip(stacked, tmp_path):
    st, _ = stacked
    path = st.save(tmp_path / "stack.nc")
    again = bs.load(path)
    assert isinstance(again, StackedFit) and again.weights == st.weights
    pts = pd.DataFrame({"params": [1e10], "tokens": [2e11]})
    pd.testing.assert_frame_equal(again.predict(pts), st.predict(pts))


def test_bad_stacks_are_errors(stacked):
    st, df = stacked
    with pytest.raises(bs.BayescaleError, match="two or more different laws"):
        bs.fit(df, ["chinchilla", "chinchilla"], **BUDGET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        other = bs.fit(df.iloc[:-2], "chinchilla", **BUDGET)
    with pytest.raises(bs.BayescaleError, match="same runs"):
        StackedFit({"a": st.fits["chinchilla"], "b": other})


def test_a_stacks_laws_are_all_checked_before_any_fit(stacked, monkeypatch):
    """A misspelt second law, a law the table lacks columns for, or two names of one law fail
    before the first law is fitted (a default fit takes minutes); given weights are checked."""
    _, df = stacked
    import bayescale.inference as inference

    def no_sampling(*a, **k):
        raise AssertionError("sampled before the laws were checked")

    monkeypatch.setattr(inference, "sample_posterior", no_sampling)
    with pytest.raises(bs.BayescaleError, match="unknown law 'farsser'"):
        bs.fit(df, ["chinchilla", "farsser"], **BUDGET)
    with pytest.raises(bs.BayescaleError, match="p_correct"):
        bs.fit(df, ["chinchilla", "accuracy-sigmoid"], **BUDGET)
    with pytest.raises(bs.BayescaleError, match=r"two or more different laws.*they name the laws \['power', 'power'\]"):
        bs.fit(df, ["power", "power:params"], **BUDGET)
    with pytest.raises(bs.BayescaleError, match=r"give a list, law=\['chinchilla', 'farseer'\]"):
        bs.fit(df, "chinchilla,farseer", **BUDGET)
    with pytest.raises(AssertionError, match="sampled before"):   # control: a good stack reaches sampling
        bs.fit(df, ["chinchilla", "farseer"], **BUDGET)
    st, _ = stacked
    for bad in ({"chinchilla": 2.0, "kaplan-nd": 3.0}, {"chinchilla": 1.2, "kaplan-nd": -0.2},
                {"chinchilla": 1.0}):
        with pytest.raises(bs.BayescaleError, match="weights must"):
            StackedFit(st.fits, bad)
    assert StackedFit(st.fits, {"chinchilla": 0.25, "kaplan-nd": 0.75}).weights["kaplan-nd"] == 0.75


def test_cli_fits_predicts_allocates_and_reports_a_stack(tmp_path, capsys):
    """`--law a,b` on the command line: one saved stacked fit that predict, allocate, summary and
    report all accept; the prediction names both laws and carries the laws' share of the width."""
    from bayescale.cli import main
    from cli_helpers import user_error

    csv = tmp_path / "runs.csv"
    demo_data().query("family == 'dense'").to_csv(csv, index=False)
    out = tmp_path / "stack.nc"
    tiny = ["--chains", "1", "--warmup", "150", "--draws", "150", "--quiet", "--discrepancy", "none"]
    # not one law in silence
    assert "empty item between its commas" in user_error(capsys, "fit", csv, "--law", "chinchilla,", *tiny, "--out", out)
    assert not out.exists()
    strict = tmp_path / "strict.nc"   # one chain fails the diagnostics: every law is fitted and kept
    assert main(["fit", str(csv), "--law", "chinchilla,kaplan-nd", *tiny, "--strict", "--out", str(strict)]) == 3
    err = capsys.readouterr().err
    assert "unreliable in chinchilla: " in err and "kaplan-nd: " in err
    assert set(bs.load(strict).fits) == {"chinchilla", "kaplan-nd"}
    assert main(["fit", str(csv), "--law", "chinchilla,kaplan-nd", *tiny, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "stacking weights" in text and "--- chinchilla" in text and "--- kaplan-nd" in text
    assert main(["predict", str(out), "--at", "params=7e10,tokens=1.4e12", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got["weights"]) == {"chinchilla", "kaplan-nd"}
    row = got["predictions"][0]
    assert row["lower_90"] < row["median"] < row["upper_90"] and "share_law" in row
    assert row["decades_beyond_data"] > 1
    assert main(["summary", str(out), "--json"]) == 0   # a stack: its weights, then each law's summary
    summ = json.loads(capsys.readouterr().out)
    assert summ["weights"] == got["weights"] and set(summ["fits"]) == {"chinchilla", "kaplan-nd"}
    assert "alpha" in summ["fits"]["chinchilla"]["parameters"]
    assert main(["allocate", str(out), "--compute", "1e22"]) == 0
    assert "1e+22" in capsys.readouterr().out
    assert main(["allocate", str(out), "--compute", "1e22", "--json"]) == 0   # what was fitted, as predict says
    alloc = json.loads(capsys.readouterr().out)
    assert alloc["weights"] == got["weights"] and alloc["law"] == got["law"]
    assert [r["compute"] for r in alloc["allocations"]] == [1e22]
    assert main(["fit", str(csv), "--law", "chinchilla,kaplan-nd", *tiny, "--out", str(tmp_path / "s.csv")]) == 2
    assert "saved as netCDF" in capsys.readouterr().err and not (tmp_path / "s.csv").exists()
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--at", "params=7e10,tokens=1.4e12"]) == 0
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "PSIS-LOO stacking weight" in page and "chinchilla" in page and "kaplan-nd" in page
    assert f"<b>{row['median']:.4g}</b>" in page   # the same prediction as predict
    # every law's formula, and each law's block of the summary labelled with its weight
    assert "Formula: L = E + A" in page and "Formula: L = [(N_c/N)" in page
    assert page.count("(weight ") == 2 and "e-1" not in page.split("posterior summary")[1].split("priors")[0]


def test_calibrate_accepts_a_stack_and_explains_the_width(stacked):
    """calibrate with two laws scores their mixture; its explanation names the laws' share."""
    from bayescale.heldout import calibrate

    _, df = stacked
    df = df.assign(compute=6 * df["params"] * df["tokens"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        res = calibrate(df.drop(columns="compute"), ["chinchilla", "kaplan-nd"], "top-compute:0.2",
                           baselines=("no-pool",), discrepancy="none", **BUDGET)
    assert "chinchilla" in res.law and "kaplan-nd" in res.law
    assert set(res.summary["width_shares"]) == {"parameters", "discrepancy", "noise", "law"}
    assert abs(sum(res.summary["width_shares"].values()) - 1) < 1e-6
    assert "stacked laws' disagreement" in res.width_explanation()
    assert "skipped" in res.summary["baselines"]["no-pool"]


def test_compare_takes_a_stack_and_unreliable_loo_is_said(stacked, monkeypatch):
    """bs.compare(stack) compares the stack's laws by name; a law whose PSIS-LOO has runs with
    Pareto k > 0.7 is named in the stack's notes (control: every k below 0.7, no note)."""
    import arviz as az

    from bayescale.stacking import loo_reliability_notes, pointwise_loo

    st, _ = stacked
    table = bs.compare(st).table
    assert set(table.index) == {"chinchilla", "kaplan-nd"}
    real_loo = az.loo

    def with_k(k):
        def fake(idata, pointwise=True):
            out = real_loo(idata, pointwise=True)
            out.pareto_k.values[:] = k
            return out
        return fake

    monkeypatch.setattr(az, "loo", with_k(0.9))
    notes = loo_reliability_notes(pointwise_loo(st.fits))
    assert len(notes) == 2 and "Pareto k > 0.7" in notes[0] and notes[0].startswith("chinchilla:")
    monkeypatch.setattr(az, "loo", with_k(0.2))
    assert loo_reliability_notes(pointwise_loo(st.fits)) == []


def test_cli_stops_quietly_when_its_reader_leaves(tmp_path, monkeypatch, capsys):
    """`bayescale laws | head -1`: the pipe closes while the command writes; the CLI stops with
    status 0 and no traceback (control: an open stdout gets the output)."""
    from bayescale.cli import main

    class LeftPipe:
        def __init__(self, path):
            self._file = open(path, "w")

        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return self._file.fileno()

    assert main(["laws"]) == 0 and "chinchilla" in capsys.readouterr().out
    pipe = LeftPipe(tmp_path / "sink")
    monkeypatch.setattr("sys.stdout", pipe)
    assert main(["laws"]) == 0


def test_weights_assigned_later_are_checked(stacked):
    st, _ = stacked
    before = st.weights
    with pytest.raises(bs.BayescaleError, match="sum to 1"):
        st.weights = {"chinchilla": 2.0, "kaplan-nd": 0.0}
    with pytest.raises(bs.BayescaleError, match="one number per law"):
        st.weights = {"chinchilla": 1.0}
    with pytest.raises(bs.BayescaleError, match=r"a dict from law name to weight, e.g. \{'chinchilla': 0.5"):
        st.weights = [0.5, 0.5]   # a list says nothing of which law is which
    copy = st.weights
    copy["chinchilla"] = 0.5   # a copy: the stack keeps its weights
    assert st.weights == before


def test_saving_under_another_formats_name_is_an_error(stacked, tmp_path):
    st, _ = stacked
    for name in ("stack.csv", "stack.json"):
        with pytest.raises(bs.BayescaleError, match="saved as netCDF"):
            st.save(tmp_path / name)
        with pytest.raises(bs.BayescaleError, match="give a name ending in .nc"):
            st.fits["chinchilla"].save(tmp_path / name)
        assert not (tmp_path / name).exists()
    assert bs.load(st.save(tmp_path / "stack.netcdf")).weights == st.weights   # a suffix that is not another format


def test_each_laws_notes_and_warnings_are_said_once_with_its_name(stacked, monkeypatch):
    """A note every law gives is said once as it is; one law's own note after its name
    (two laws can give near-identical notes that differ in the parameter they name)."""
    from bayescale.stacking import merged_law_notes

    assert merged_law_notes({"a": ["x", "y", "x"], "b": ["x", "z"]}) == ["x", "a: y", "b: z"]
    assert merged_law_notes({"a": ["x"], "b": ["x"]}) == ["x"]   # control: nothing to tell apart
    st, _ = stacked
    for name, f in st.fits.items():
        original = f.predict

        def predict(*args, _name=name, _original=original, **kwargs):
            warnings.warn("said by every law", bs.BayescaleWarning, stacklevel=2)
            warnings.warn(f"only {_name} says this", bs.BayescaleWarning, stacklevel=2)
            return _original(*args, **kwargs)

        monkeypatch.setattr(f, "predict", predict)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        st.predict(pd.DataFrame({"params": [1e10], "tokens": [2e11]}))
    said = [str(w.message) for w in caught if issubclass(w.category, bs.BayescaleWarning)]
    assert said == ["said by every law", "chinchilla: only chinchilla says this", "kaplan-nd: only kaplan-nd says this"]


def test_a_fits_own_posterior_asked_of_a_stack_says_where_to_look(stacked):
    st, _ = stacked
    for name in ("posterior", "idata", "law"):
        with pytest.raises(bs.BayescaleError, match=rf"stack.fits\['chinchilla'\].{name}"):
            getattr(st, name)
        assert not hasattr(st, name)   # still an AttributeError: hasattr and getattr defaults work
    with pytest.raises(AttributeError) as plain:   # control: a name no fit has is a plain AttributeError
        _ = st.no_such_thing
    assert not isinstance(plain.value, bs.BayescaleError)
    import copy
    import pickle
    assert copy.deepcopy(st).weights == st.weights and pickle.loads(pickle.dumps(st)).weights == st.weights


def test_a_stack_where_one_law_is_needed_says_so(stacked, tmp_path, capsys):
    """compare beside other fits and a chain step take one law: a stack there gets an error that
    says what to do, on the command line too (it got 'got StackedFit' or a Python hint)."""
    from bayescale.cli import main

    st, _ = stacked
    one = st.fits["chinchilla"]
    with pytest.raises(bs.BayescaleError, match="compare its laws on their own"):
        bs.compare(one, st)
    with pytest.raises(bs.BayescaleError, match="a chain takes one fit per step"):
        bs.chain(st, one)
    path = st.save(tmp_path / "stack.nc")
    assert main(["compare", str(one.save(tmp_path / "one.nc")), str(path)]) == 2
    assert "bayescale compare STACK.nc" in capsys.readouterr().err
    assert main(["predict", "--chain", str(path), str(path), "--at", "params=1e9,tokens=2e10"]) == 2
    assert "refit the law you want with one --law" in capsys.readouterr().err
    assert set(bs.compare(st).table.index) == set(st.fits)   # control: a stack alone compares its laws


def test_one_pooling_for_a_stack_goes_to_each_law_that_has_the_parameter():
    from bayescale.inference import _pool_per_law

    with pytest.warns(bs.BayescaleWarning, match=r"law 'farseer' has no parameter \['log_A0'\].*its default pooling"):
        pools = _pool_per_law({"log_A0": "family"}, ["chinchilla", "farseer"])
    assert pools == {"chinchilla": {"log_A0": "family"}, "farseer": None}
    with pytest.warns(bs.BayescaleWarning, match=r"law 'farseer' has no parameter \['log_A0'\].*pool=\{'E': 'family'\}"):
        assert _pool_per_law({"log_A0": "family", "E": "family"}, ["chinchilla", "farseer"])["farseer"] == {
            "E": "family"}
    with warnings.catch_warnings():   # control: a parameter every law has is no news
        warnings.simplefilter("error")
        assert _pool_per_law({"E": "family"}, ["chinchilla", "farseer"]) == {
            "chinchilla": {"E": "family"}, "farseer": {"E": "family"}}
        per_law = {"chinchilla": {"log_A0": "family"}, "farseer": None}
        assert _pool_per_law(per_law, ["chinchilla", "farseer"]) == per_law
        assert _pool_per_law(None, ["chinchilla", "farseer"]) == {"chinchilla": None, "farseer": None}
    with pytest.raises(bs.BayescaleError, match=r"cannot pool \['nope'\]: none of the laws"):
        _pool_per_law({"nope": "family"}, ["chinchilla", "farseer"])


def test_shared_and_per_law_pooling_combine_in_python_and_on_the_command_line():
    """pool={"log_A0": "family", "farseer": {"log_u": "family"}}: the shared name goes to the law
    that has it, farseer takes its own entry (and is not told it lacks log_A0: it chose its own);
    the CLI's --pool farseer:log_u=family reads the same."""
    from bayescale.cli import _pool_from_args, build_parser
    from bayescale.inference import _pool_per_law

    laws = ["chinchilla", "farseer"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pools = _pool_per_law({"log_A0": "family", "farseer": {"log_u": "family"}}, laws)
    assert pools == {"chinchilla": {"log_A0": "family"}, "farseer": {"log_u": "family"}}
    assert _pool_per_law({"E": "dataset", "farseer": {"log_u": "family"}}, laws) == {
        "chinchilla": {"E": "dataset"}, "farseer": {"E": "dataset", "log_u": "family"}}
    with pytest.raises(bs.BayescaleError, match=r"pool\['farseer'\] must be a dict"):
        _pool_per_law({"E": "dataset", "farseer": "family"}, laws)

    def cli(*argv):
        return _pool_from_args(build_parser().parse_args(["fit", "runs.csv", "--out", "x.nc", *argv]))

    assert cli("--law", "chinchilla,farseer", "--pool", "log_A0=family", "--pool", "farseer:log_u=family") == {
        "log_A0": "family", "farseer": {"log_u": "family"}}
    assert cli("--law", "power:tokens,bnsl:tokens", "--pool", "power:tokens:E=task") == {"power:tokens": {"E": "task"}}
    assert cli("--law", "chinchilla", "--pool", "chinchilla:E=dataset,alpha=family") == {"E": "dataset", "alpha": "family"}
    assert cli("--pool", "log_A0=none") == {"log_A0": None}   # control: no law named, as before
    with pytest.raises(bs.BayescaleError, match=r"names law 'kaplan-nd', which is not fitted here \(--law chinchilla,farseer\)"):
        cli("--law", "chinchilla,farseer", "--pool", "kaplan-nd:E=dataset")


def test_priors_of_a_stack_are_shared_or_per_law_as_pools_are(monkeypatch):
    """priors={"alpha": ...} goes to the laws that have alpha (farseer has none, and is told);
    {"farseer": {...}} to one law; every law's fit gets its own. The CLI's --prior LAW:NAME=DIST
    reads the same. Control: a name no law has is an error naming each law's parameters."""
    import bayescale.inference as inference
    from bayescale.cli import _priors_from_args, build_parser

    laws = ["chinchilla", "farseer"]
    with pytest.warns(bs.BayescaleWarning, match=r"law 'farseer' has no parameter \['alpha'\].*its default priors"):
        shared = inference._priors_per_law({"alpha": "Normal(0.3, 0.05)"}, laws)
    assert shared == {"chinchilla": {"alpha": "Normal(0.3, 0.05)"}, "farseer": None}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = inference._priors_per_law({"alpha": "Normal(0.3, 0.05)", "farseer": {"gamma": "Normal(0.3, 0.1)"}}, laws)
    assert both == {"chinchilla": {"alpha": "Normal(0.3, 0.05)"}, "farseer": {"gamma": "Normal(0.3, 0.1)"}}
    with pytest.raises(bs.BayescaleError, match=r"cannot set a prior on \['nope'\]: none of the laws"):
        inference._priors_per_law({"nope": "Normal(0, 1)"}, laws)
    # each law's fit is given its own priors
    given = {}
    from types import SimpleNamespace

    def fake_fit(df, one, **kw):
        given[one] = kw["priors"]
        return SimpleNamespace(sampling_problems=lambda: [])

    monkeypatch.setattr(inference, "fit", fake_fit)
    monkeypatch.setattr(inference, "StackedFit", lambda fits: SimpleNamespace(fits=fits))
    inference._fit_stack(None, laws, {"pool": {"chinchilla": None, "farseer": None}, "priors": both}, strict=False)
    assert given == both
    args = build_parser().parse_args(["fit", "runs.csv", "--out", "x.nc", "--law", "chinchilla,farseer",
                                      "--prior", "alpha=Normal(0.3, 0.05)", "--prior", "farseer:gamma=Normal(0.3, 0.1)"])
    assert _priors_from_args(args) == {"alpha": "Normal(0.3, 0.05)", "farseer": {"gamma": "Normal(0.3, 0.1)"}}


def test_a_stacks_minimum_loss_and_tokens_for_a_loss_mix_the_laws(stacked):
    """Each draw from one law, picked by the weights: all weight on one law gives that law's own
    answer (the control), equal weights an answer between two laws that disagree."""
    st, df = stacked
    one = st.fits["chinchilla"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        other = bs.fit(df, "farseer", **BUDGET)   # the same runs, another law
    pair = StackedFit({"chinchilla": one, "farseer": other}, weights={"chinchilla": 1.0, "farseer": 0.0})
    target, n = 2.6, 1e9
    for ask in (lambda f: f.min_loss(), lambda f: f.tokens_for_loss(target, params=n)):
        alone_a, alone_b = ask(one), ask(other)
        cols = [c for c in alone_a.columns if c.startswith(("loss_", "tokens_")) and c != "tokens_mean"]
        assert cols
        np.testing.assert_allclose(ask(pair)[cols].to_numpy(float), alone_a[cols].to_numpy(float))
        pair.weights = {"chinchilla": 0.0, "farseer": 1.0}
        np.testing.assert_allclose(ask(pair)[cols].to_numpy(float), alone_b[cols].to_numpy(float))
        pair.weights = {"chinchilla": 0.5, "farseer": 0.5}
        median = [c for c in cols if c.endswith("_median")][0]
        lo, hi = sorted([alone_a[median].iloc[0], alone_b[median].iloc[0]])
        assert lo != hi and lo - 0.05 * (hi - lo) <= ask(pair)[median].iloc[0] <= hi + 0.05 * (hi - lo)
        pair.weights = {"chinchilla": 1.0, "farseer": 0.0}
    with pytest.raises(bs.BayescaleError, match="kaplan-nd.*no irreducible-loss term E"):
        st.min_loss()   # a law without an asymptote: the mixture has none either


def test_warnings_of_one_of_several_fits_say_which_fit():
    """calibrate's no-pool and law-alone refits and a stack's laws label their warnings; a
    warning that is not bayescale's passes as it was (the control)."""
    from bayescale.errors import UnreliableSampling, warnings_labelled

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with warnings_labelled("no-pool fit of family 'a'", "/nowhere"):
            warnings.warn(UnreliableSampling("sampling looks unreliable: max r_hat 1.086 > 1.01", fit="F"), stacklevel=1)
            warnings.warn("not ours", RuntimeWarning, stacklevel=1)
    texts = [str(w.message) for w in caught]
    assert texts == ["no-pool fit of family 'a': sampling looks unreliable: max r_hat 1.086 > 1.01", "not ours"]
    assert caught[0].message.fit == "F" and caught[1].category is RuntimeWarning


def test_all_weight_on_one_law_within_the_noise_is_noted():
    from types import SimpleNamespace

    from bayescale.stacking import decisive_weight_notes

    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 1.0, 50)
    close = {"a": SimpleNamespace(loo_i=a), "b": SimpleNamespace(loo_i=a - 0.02 + rng.normal(0, 0.3, 50))}
    far = {"a": SimpleNamespace(loo_i=a), "b": SimpleNamespace(loo_i=a - 1.0 + rng.normal(0, 0.3, 50))}
    (note,) = decisive_weight_notes(close, {"a": 1.0, "b": 0.0})
    assert note.startswith("stacking gives a 1.00 of the weight, though its ELPD lead over b")
    assert decisive_weight_notes(far, {"a": 1.0, "b": 0.0}) == []       # a clear lead: no note
    assert decisive_weight_notes(close, {"a": 0.6, "b": 0.4}) == []     # the mixture keeps both


def test_a_stacks_report_plot_draws_each_laws_median(stacked, tmp_path, monkeypatch):
    """The mixture's band hides where the laws part: the report's plot adds each law's own median
    (its line is that law's prediction along the target's path), labelled with its weight; a single fit has none."""
    from matplotlib.figure import Figure

    from bayescale.report.fit_page import plot_targets

    st, _ = stacked
    figures = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    targets = pd.DataFrame({"params": [7e10], "tokens": [1.4e12]})
    pred = st.predict(targets, levels=(0.5, 0.9))
    plot_targets(st, targets, pred, tmp_path / "stack.png")
    lines = {line.get_label(): line for line in figures[-1].axes[0].get_lines()}
    for name, member in st.fits.items():
        label = f"{name} alone (weight {st.weights[name]:.2f}): median"
        assert label in lines
        x, y = lines[label].get_data()
        n = np.sqrt(x / (6 * 20))   # the target's path: 20 tokens per parameter
        alone = member.predict(pd.DataFrame({"params": n, "tokens": 20 * n}), levels=(0.5,), seed=0)
        np.testing.assert_allclose(y, alone["median"], rtol=1e-9)
    # control: one law's fit has no per-law lines
    single = st.fits["chinchilla"]
    plot_targets(single, targets, single.predict(targets, levels=(0.5, 0.9)), tmp_path / "one.png")
    assert not [line for line in figures[-1].axes[0].get_lines() if "alone" in line.get_label()]


@pytest.mark.parametrize("method", ["predict", "optimal_allocation", "tokens_for_loss"])
def test_a_stacks_seed_is_checked_as_a_fits(stacked, method):
    st, _ = stacked
    row = pd.DataFrame({"params": [7e10], "tokens": [1.4e12]})
    call = {"predict": lambda s: st.predict(row, seed=s), "optimal_allocation": lambda s: st.optimal_allocation([1e22], seed=s),
            "tokens_for_loss": lambda s: st.tokens_for_loss(2.3, 7e9, seed=s)}[method]
    for bad in (1.5, -1, 2**32):
        with pytest.raises(bs.BayescaleError, match=r"seed must (be an integer|lie in)"):
            call(bad)
    call(2)   # control
    call(2**32 - 1)   # the largest seed: the second law's seed wraps to 0, not past the range


def test_notes_about_stackings_weights_are_not_said_of_weights_set_by_hand(stacked, monkeypatch):
    import bayescale.stacking as stacking

    st, _ = stacked
    said = []
    monkeypatch.setattr(stacking, "decisive_weight_notes", lambda loos, w: said.append(dict(w)) or ["decisive"])
    again = StackedFit(st.fits, st.weights)   # a saved stack reloaded: its weights are stacking's
    assert "decisive" in again.stack_notes and "decisive" in again.notes
    again.weights = {"chinchilla": 0.5, "kaplan-nd": 0.5}
    assert "decisive" not in again.stack_notes and "decisive" not in again.notes
    again.weights = st.weights   # control: back to stacking's, said again
    assert "decisive" in again.stack_notes


def test_held_out_scores_of_a_stack_are_its_laws(stacked, monkeypatch):
    """compare STACK.nc --holdout ... scores the stack's laws, as compare STACK.nc ranks them (it
    sent the user back to the command they had run). Control: a stack beside other fits is still
    refused, since it is not one law to rank."""
    import bayescale.heldout as heldout
    from bayescale.comparison import holdout_scores

    st, df = stacked
    seen = []
    monkeypatch.setattr(heldout, "calibrate", lambda data, law, holdout, **kw: seen.append(law) or law)
    scores = holdout_scores([st], df, "top-compute:0.1")
    assert list(scores) == ["chinchilla", "kaplan-nd"] and seen == ["chinchilla", "kaplan-nd"]
    with pytest.raises(bs.BayescaleError, match="not one law to rank"):
        holdout_scores([st, st.fits["chinchilla"]], df, "top-compute:0.1")


def test_calibrate_checks_a_stack_with_each_laws_own_pools_and_priors(stacked, monkeypatch):
    """calibrate(df, [a, b], priors={"chinchilla": {...}}) checks each law with its own entries
    before the split (it passed the whole dict to each law and refused it). Control: a name no law
    has is still refused."""
    import bayescale.inference as inference

    _, df = stacked
    seen = []

    def stop(train, law, **kw):
        seen.append(kw["priors"])
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, "fit", stop)
    with pytest.raises(KeyboardInterrupt):
        bs.calibrate(df, ["chinchilla", "kaplan-nd"], priors={"chinchilla": {"alpha": "Normal(0.3, 0.05)"}},
                     baselines=())
    assert seen == [{"chinchilla": {"alpha": "Normal(0.3, 0.05)"}}]   # fit reads it per law itself
    with pytest.raises(bs.BayescaleError, match=r"cannot set a prior on \['nope'\]"):
        bs.calibrate(df, ["chinchilla", "kaplan-nd"], priors={"nope": "Normal(0, 1)"}, baselines=())


def test_weights_set_on_the_command_line(stacked, tmp_path, capsys):
    """predict/allocate --weights LAW=W,... mixes a saved stack by the weights given, as
    stack.weights = ... does in Python; a single fit, or weights that are not one per law summing
    to 1, are one clear error. Control: without --weights, stacking's own weights."""
    from bayescale.cli import main
    from cli_helpers import user_error

    st, _ = stacked
    path = st.save(tmp_path / "stack.nc")
    at = ["--at", "params=7e10,tokens=1.4e12", "--json"]
    assert main(["predict", str(path), *at, "--weights", "chinchilla=0.5,kaplan-nd=0.5"]) == 0
    given = json.loads(capsys.readouterr().out)
    assert given["weights"] == {"chinchilla": 0.5, "kaplan-nd": 0.5}
    by_hand = StackedFit(st.fits, {"chinchilla": 0.5, "kaplan-nd": 0.5}).predict(
        pd.DataFrame({"params": [7e10], "tokens": [1.4e12]}))
    assert given["predictions"][0]["median"] == pytest.approx(float(by_hand["median"].iloc[0]), rel=1e-9)
    assert main(["predict", str(path), *at]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == pytest.approx(st.weights)
    assert main(["allocate", str(path), "--compute", "1e22", "--json", "--weights", "chinchilla=1,kaplan-nd=0"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"] == {"chinchilla": 1.0, "kaplan-nd": 0.0}
    assert "sum to 1" in user_error(capsys, "predict", path, *at, "--weights", "chinchilla=0.7,kaplan-nd=0.7")
    single = st.fits["chinchilla"].save(tmp_path / "one.nc")
    assert "--weights is for a stacked fit" in user_error(capsys, "predict", single, *at, "--weights", "chinchilla=1")
