"""Law values against closed forms, compute-optimal allocation against Chinchilla's closed form,
and one contract test over every registered law. Deterministic and fast: no sampling."""
from __future__ import annotations

import json

import arviz as az
import jax
import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest

import bayescale
from bayescale import BayescaleError, Fit, Law, get_law, list_laws
from bayescale.data import GROUP_COLUMNS, SIZE_COLUMNS
from bayescale.inference import build
from bayescale.models import REGISTRY
from bayescale.priors import describe, parse
from bayescale.simulate import simulate

RTOL = 2e-5  # the laws evaluate in float32 (JAX's default)
ALL_SPECS = [f"{name}:{opt}" if opt else name
             for name in sorted(REGISTRY) for opt in (REGISTRY[name].options or (None,))]

# log reference scales, as a fit would take them from its data (geometric means)
LOGREF = {"params": np.log(3.0e8), "tokens": np.log(6.0e9), "compute": np.log(1.1e19)}
N = np.geomspace(1e6, 1e12, 13)
D = np.geomspace(1e8, 1e13, 13)
C = np.geomspace(1e15, 1e25, 13)


def centred(**raw):
    return {k: np.log(v) - LOGREF[k] for k, v in raw.items()}


def evaluate(law: Law, p: dict, **raw) -> np.ndarray:
    return np.asarray(law.mean(centred(**raw), p), dtype=np.float64)


# ---- closed forms --------------------------------------------------------------------------------

def test_chinchilla_matches_raw_parametrisation():
    law = get_law("chinchilla")
    p = {"E": 1.69, "log_A0": -0.4, "alpha": 0.34, "log_B0": 0.1, "beta": 0.28}
    raw = law.derived(p, LOGREF)
    A, B = raw["A"], raw["B"]
    nn, dd = np.meshgrid(N, D, indexing="ij")
    expected = p["E"] + A * nn ** -p["alpha"] + B * dd ** -p["beta"]
    np.testing.assert_allclose(evaluate(law, p, params=nn, tokens=dd), expected, rtol=RTOL)
    # A is the N-term's coefficient in the literature's form: A / N0^alpha = exp(log_A0)
    np.testing.assert_allclose(A * np.exp(LOGREF["params"]) ** -p["alpha"], np.exp(p["log_A0"]), rtol=1e-12)
    np.testing.assert_allclose(B * np.exp(LOGREF["tokens"]) ** -p["beta"], np.exp(p["log_B0"]), rtol=1e-12)


def test_chinchilla_reproduces_a_published_fit():
    """Hoffmann et al.'s approach-3 values, converted to the centred scale and back."""
    law = get_law("chinchilla")
    lit = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    p = {"E": lit["E"], "alpha": lit["alpha"], "beta": lit["beta"],
         "log_A0": np.log(lit["A"]) - lit["alpha"] * LOGREF["params"],
         "log_B0": np.log(lit["B"]) - lit["beta"] * LOGREF["tokens"]}
    raw = law.derived(p, LOGREF)
    np.testing.assert_allclose([raw["A"], raw["B"]], [lit["A"], lit["B"]], rtol=1e-12)
    # Chinchilla itself: 70B parameters, 1.4T tokens -> about 1.94 nats
    got = evaluate(law, p, params=np.array([7e10]), tokens=np.array([1.4e12]))[0]
    assert got == pytest.approx(1.69 + 406.4 / 7e10 ** 0.34 + 410.7 / 1.4e12 ** 0.28, rel=RTOL)
    assert got == pytest.approx(1.94, abs=0.01)


def test_kaplan_nd_matches_kaplan_eq_1_5():
    law = get_law("kaplan-nd")
    p = {"L0": 3.1, "w": 0.35, "alpha_N": 0.076, "alpha_D": 0.095}
    raw = law.derived(p, LOGREF)
    Nc, Dc = raw["N_c"], raw["D_c"]
    nn, dd = np.meshgrid(N, D, indexing="ij")
    r = p["alpha_N"] / p["alpha_D"]
    expected = ((Nc / nn) ** r + Dc / dd) ** p["alpha_D"]
    np.testing.assert_allclose(evaluate(law, p, params=nn, tokens=dd), expected, rtol=RTOL)
    # at the reference point the loss is L0 and the N-term's share of the bracket is w
    ref = evaluate(law, p, params=np.exp([LOGREF["params"]]), tokens=np.exp([LOGREF["tokens"]]))[0]
    assert ref == pytest.approx(p["L0"], rel=RTOL)


def test_kaplan_nd_recovers_published_constants():
    """Kaplan et al. (2020): alpha_N 0.076, alpha_D 0.095, N_c 6.4e13, D_c 1.8e13."""
    law = get_law("kaplan-nd")
    aN, aD, Nc, Dc = 0.076, 0.095, 6.4e13, 1.8e13
    n0, d0 = np.exp(LOGREF["params"]), np.exp(LOGREF["tokens"])
    n_term, d_term = (Nc / n0) ** (aN / aD), Dc / d0
    p = {"L0": (n_term + d_term) ** aD, "w": n_term / (n_term + d_term), "alpha_N": aN, "alpha_D": aD}
    raw = law.derived(p, LOGREF)
    np.testing.assert_allclose([raw["N_c"], raw["D_c"]], [Nc, Dc], rtol=1e-10)


@pytest.mark.parametrize("spec, inp, grid, sym", [
    ("kaplan-n", "params", N, "N"), ("kaplan-d", "tokens", D, "D"), ("kaplan-c", "compute", C, "C")])
def test_kaplan_pure_power_laws(spec, inp, grid, sym):
    law = get_law(spec)
    p = {"log_A0": 1.2, "alpha": 0.076}
    xc = law.derived(p, LOGREF)[f"{sym}_c"]
    np.testing.assert_allclose(evaluate(law, p, **{inp: grid}), (grid / xc) ** -p["alpha"], rtol=RTOL)
    assert law.inputs == (inp,)


@pytest.mark.parametrize("spec, inp, grid", [
    ("power", "params", N), ("power:params", "params", N), ("power:tokens", "tokens", D),
    ("power:compute", "compute", C)])
def test_saturating_power_law(spec, inp, grid):
    law = get_law(spec)
    assert law.inputs == (inp,)
    p = {"E": 1.8, "log_A0": -0.7, "alpha": 0.3}
    A = law.derived(p, LOGREF)["A"]
    np.testing.assert_allclose(evaluate(law, p, **{inp: grid}), p["E"] + A * grid ** -p["alpha"], rtol=RTOL)


def test_law_mean_broadcasts_draws_by_rows():
    """Fit.predict evaluates (draws x rows): parameters (S, 1) or (S, R), inputs (1, R)."""
    law = get_law("chinchilla")
    rng = np.random.default_rng(1)
    S, R = 7, 5
    p = {"E": rng.uniform(1.5, 2.0, (S, 1)), "log_A0": rng.normal(-0.5, 0.2, (S, R)),
         "alpha": rng.uniform(0.25, 0.4, (S, 1)), "log_B0": rng.normal(0, 0.2, (S, 1)),
         "beta": rng.uniform(0.25, 0.35, (S, 1))}
    x = centred(params=N[:R][None, :], tokens=D[:R][None, :])
    mu = np.asarray(law.mean(x, p))
    assert mu.shape == (S, R)
    for s in range(S):
        for r in range(R):
            one = {k: v[s, min(r, v.shape[1] - 1)] for k, v in p.items()}
            assert mu[s, r] == pytest.approx(
                float(law.mean({k: v[0, r] for k, v in x.items()}, one)), rel=RTOL)


# ---- compute-optimal allocation ------------------------------------------------------------------

def _constructed_fit(draws: dict[str, np.ndarray], family_log_A0: np.ndarray | None = None) -> Fit:
    """A Fit from given chinchilla draws (1 chain), with the config a real fit of the demo would have."""
    from bayescale.datasets import demo_data

    spec, data = build(demo_data(), "chinchilla")
    assert spec.pooled == {"log_A0": "family"}
    families = spec.coords["family"]
    n = len(draws["E"])
    post = {k: np.asarray(v, dtype=np.float64)[None] for k, v in draws.items()}
    post.setdefault("sigma", np.full((1, n), 0.01))
    post.setdefault("nu", np.full((1, n), 30.0))
    if family_log_A0 is None:
        family_log_A0 = np.repeat(draws["log_A0"][:, None], len(families), axis=1)
    post["log_A0_by_family"] = family_log_A0[None]
    post["log_A0_tau"] = np.full((1, n), 0.1)
    post["log_A0_z"] = np.zeros((1, n, len(families)))
    idata = az.from_dict(posterior=post, coords={"family": families},
                         dims={"log_A0_by_family": ["family"], "log_A0_z": ["family"]})
    config = {**spec.to_json(), "n_obs": data.n, "notes": [], "seed": 0}
    idata.posterior.attrs["bayescale"] = json.dumps(config)
    return Fit(idata), spec


def _closed_form(E, A, B, alpha, beta, c):
    """Hoffmann et al. eq. 4: N* = G (C/6)^(beta/(alpha+beta)), G = (alpha A / (beta B))^(1/(alpha+beta))."""
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    n_opt = G * (c / 6) ** (beta / (alpha + beta))
    d_opt = c / (6 * n_opt)
    return n_opt, d_opt, E + A * n_opt ** -alpha + B * d_opt ** -beta


@pytest.fixture(scope="module")
def allocation_draws():
    rng = np.random.default_rng(7)
    S = 400
    return {"E": rng.uniform(1.6, 2.0, S), "log_A0": rng.normal(-0.4, 0.3, S),
            "alpha": rng.uniform(0.28, 0.40, S), "log_B0": rng.normal(0.0, 0.2, S),
            "beta": rng.uniform(0.24, 0.34, S)}


def test_optimal_allocation_matches_closed_form(allocation_draws):
    fit, spec = _constructed_fit(allocation_draws)
    budgets = [1e19, 5.76e23, 1e26]
    table = fit.optimal_allocation(budgets, levels=(0.5, 0.9))
    assert list(table["compute"]) == budgets
    p = allocation_draws
    raw = fit.law.derived(p, spec.logref)
    for i, c in enumerate(budgets):
        n_opt, d_opt, l_opt = _closed_form(p["E"], raw["A"], raw["B"], p["alpha"], p["beta"], c)
        for name, truth, rtol in (("params", n_opt, 3e-3), ("tokens", d_opt, 3e-3), ("loss", l_opt, 1e-5)):
            assert table.loc[i, f"{name}_median"] == pytest.approx(np.median(truth), rel=rtol), name
            for level in ("50", "90"):
                lo, hi = np.quantile(truth, [0.5 - float(level) / 200, 0.5 + float(level) / 200])
                assert table.loc[i, f"{name}_lower_{level}"] == pytest.approx(lo, rel=rtol), (name, level)
                assert table.loc[i, f"{name}_upper_{level}"] == pytest.approx(hi, rel=rtol), (name, level)
        assert table.loc[i, "tokens_per_param_median"] == pytest.approx(np.median(d_opt / n_opt), rel=6e-3)
        assert np.allclose(6 * table.loc[i, "params_median"] * np.quantile(d_opt, 0.5), c, rtol=1e-2)


def test_optimal_allocation_for_a_family(allocation_draws):
    """With family=..., that family's A is used (its own closed form), not the population's."""
    by_family = np.stack([allocation_draws["log_A0"] + s for s in (-0.5, 0.0, 0.5)], axis=1)
    fit, spec = _constructed_fit(allocation_draws, family_log_A0=by_family)
    families = spec.coords["family"]
    p = allocation_draws
    c = 1e22
    medians = []
    for j, fam in enumerate(families):
        table = fit.optimal_allocation([c], family=fam)
        raw = fit.law.derived({**p, "log_A0": by_family[:, j]}, spec.logref)
        n_opt, _, _ = _closed_form(p["E"], raw["A"], raw["B"], p["alpha"], p["beta"], c)
        assert table.loc[0, "params_median"] == pytest.approx(np.median(n_opt), rel=3e-3)
        medians.append(table.loc[0, "params_median"])
    assert medians[0] < medians[1] < medians[2]  # a larger A makes parameters worth more


def test_optimal_allocation_rejects_bad_requests(allocation_draws):
    fit, _ = _constructed_fit(allocation_draws)
    for bad in ([0.0], [-1e20], [np.inf], [np.nan], [[1e20, 1e21]]):
        with pytest.raises(BayescaleError, match="compute budgets"):
            fit.optimal_allocation(bad)
    with pytest.raises(BayescaleError, match="unknown label"):
        fit.optimal_allocation([1e21], team="x")
    with pytest.raises(BayescaleError, match="between 0 and 1"):
        fit.optimal_allocation([1e21], levels=(1.5,))


# ---- the registry contract -----------------------------------------------------------------------

def test_registry_lists_the_size_loss_laws():
    assert {"power", "kaplan-n", "kaplan-d", "kaplan-c", "kaplan-nd", "chinchilla"} <= set(list_laws())
    assert list_laws() == sorted(REGISTRY)
    assert set(bayescale.list_laws()) == set(REGISTRY)


def _is_size_loss_law(spec) -> bool:
    law = get_law(spec)
    return law.response == "loss" and set(law.inputs) <= set(SIZE_COLUMNS) and not law.extras


# loss laws of sizes (N, D, C, D/N); downstream, schedule and hyperparameter laws have their own files
SIZE_LOSS_SPECS = [s for s in ALL_SPECS if _is_size_loss_law(s)]


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_every_law_is_declared_completely(spec):
    law = get_law(spec)
    assert isinstance(law, Law) and law.name in REGISTRY
    assert isinstance(law.formula, str) and "=" in law.formula
    assert law.inputs and law.params and law.n_free == len(law.params)
    assert set(law.linear_inputs) <= set(law.inputs)
    assert get_law(law.spec).spec == law.spec
    for name, param in law.all_params().items():
        assert isinstance(param.prior, dist.Distribution), name
        assert param.pool in (None, *GROUP_COLUMNS), name
        text = describe(param.prior)
        assert describe(parse(text)) == text, name
    json.dumps(law.describe())


def test_size_loss_laws_are_recognised():
    assert {"chinchilla", "farseer", "kaplan-nd", "power:params", "power:tokens"} <= set(SIZE_LOSS_SPECS)


@pytest.mark.parametrize("spec", SIZE_LOSS_SPECS)
def test_law_contract(spec):
    law = get_law(spec)
    assert isinstance(law, Law)
    assert isinstance(law.name, str) and law.name in REGISTRY
    assert isinstance(law.formula, str) and law.formula.startswith("L =")
    assert law.inputs and set(law.inputs) <= set(SIZE_COLUMNS)
    assert law.response == "loss"
    assert law.params and law.n_free == len(law.params)
    assert law.has_allocation == ({"params", "tokens"} <= set(law.inputs))
    assert get_law(law.spec).spec == law.spec  # the spec string round-trips
    for name, param in law.all_params().items():
        assert isinstance(param.prior, dist.Distribution), name
        assert param.pool in (None, *GROUP_COLUMNS), name
        assert param.group_scale > 0
        text = describe(param.prior)
        assert describe(parse(text)) == text, name  # priors print as parseable text

    d = law.describe()
    assert d["name"] == law.spec and d["formula"] == law.formula and d["inputs"] == list(law.inputs)
    assert set(d["params"]) == set(law.all_params())
    assert all({"prior", "pool", "doc"} <= set(v) for v in d["params"].values())
    json.dumps(d)  # the CLI prints it as JSON

    # the mean is positive and finite over a wide grid, at many draws from the priors
    grid = np.linspace(-4.0, 4.0, 17)
    mesh = np.meshgrid(*[grid] * len(law.inputs), indexing="ij")
    x = {k: m.ravel()[None, :] for k, m in zip(law.inputs, mesh)}
    p = {k: np.asarray(v.prior.sample(jax.random.PRNGKey(i), (64,)))[:, None]
         for i, (k, v) in enumerate(law.params.items())}
    mu = np.asarray(law.mean(x, p))
    assert mu.shape == (64, grid.size ** len(law.inputs))
    assert np.all(np.isfinite(mu)) and np.all(mu > 0)

    # derived (literature-scale) quantities are positive and finite
    for k, v in law.derived({k: v[:, 0] for k, v in p.items()}, LOGREF).items():
        assert np.all(np.isfinite(v)) and np.all(v > 0), k

    # simulate returns the design plus a positive response
    design = pd.DataFrame({k: np.geomspace(1e7, 1e10, 8) * (1 + i) for i, k in enumerate(law.inputs)})
    design["family"] = ["a", "b"] * 4
    sim, truth = simulate(law, design, seed=3)
    assert len(sim) == 8 and np.all(np.isfinite(sim["loss"])) and np.all(sim["loss"] > 0)
    assert set(law.all_params()) <= set(truth)


def test_get_law_errors_list_the_valid_choices():
    with pytest.raises(BayescaleError) as err:
        get_law("chinchila")
    for name in REGISTRY:
        assert repr(name) in str(err.value)
    with pytest.raises(BayescaleError, match=r"'params', 'tokens', 'compute'"):
        get_law("power:flops")
    with pytest.raises(BayescaleError, match="takes no option"):
        get_law("kaplan-n:tokens")
    with pytest.raises(BayescaleError, match="name or a Law"):
        get_law(3)
    law = get_law("kaplan-nd")
    assert get_law(law) is law


def test_every_derived_quantity_is_documented():
    """Rows of the posterior summary computed from the parameters (a3, beta_at_1e9, N_c, ...) are
    described where the parameters are (`bayescale laws`, `Law.describe`)."""
    import re

    from bayescale.models import REGISTRY

    logref = {k: 1.0 for k in ("params", "tokens", "compute", "loss", "lr", "batch_size", "multiplier",
                               "attempts", "S1", "S2")}
    checked = 0
    for name in sorted(REGISTRY):
        for form in [None, *(REGISTRY[name].options or ())]:
            law = get_law(name if form is None else f"{name}:{form}")
            p = {k: np.array([0.3]) for k in law.all_params()}
            names = {re.sub(r"_\d+$", "_i", k) for k in law.derived(p, logref)}
            assert names <= set(law.describe()["derived"]), (law.spec, names - set(law.derived_doc))
            checked += bool(names)
    assert checked > 10
