"""law.to_pymc: the PyMC twin has the same density, coords and posterior as the NumPyro model."""
from __future__ import annotations

import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd
import pytest
from numpyro.handlers import seed, trace
from numpyro.handlers import substitute as numpyro_substitute
from numpyro.infer.util import log_density

import bayescale as bs
from bayescale.errors import BayescaleError
from bayescale.design import centre
from bayescale.discrepancy import walk_inputs
from bayescale.inference import build, make_model
from bayescale.models import get_law
from bayescale.pymc_interop import pymc_prior
from bayescale.simulate import simulate
from bayescale.pymc_interop import to_pymc

pm = pytest.importorskip("pymc", reason="PyMC not installed (pip install bayescale[pymc])")
from pymc.model.transform.conditioning import remove_value_transforms  # noqa: E402


def grouped_design(seed_: int = 0) -> pd.DataFrame:
    """Three families of 12 runs (sampled centred) over three datasets, one of them thin
    (non-centred): both group parametrisations appear in one model."""
    rng = np.random.default_rng(seed_)
    n = 36
    return pd.DataFrame({
        "params": np.exp(rng.uniform(np.log(1e7), np.log(1e10), n)),
        "tokens": np.exp(rng.uniform(np.log(1e9), np.log(1e11), n)),
        "family": np.repeat(["a", "b", "c"], 12),
        "dataset": np.where(np.arange(n) % 9 == 0, "thin", np.where(np.arange(n) % 2, "d1", "d2")),
    })


# alpha also varies by family under a bounded prior: the interval (sigmoid) transform is exercised
POOL = {"log_A0": "family", "alpha": "family", "E": "dataset", "log_B0": "dataset"}
PRIORS_USED = {"alpha": "Uniform(0.05, 1.0)"}


def numpyro_logp(df, points, priors):
    law = get_law("chinchilla")
    spec, data = build(df, law, pool=POOL, priors=priors)
    model = make_model(spec, natural=True)
    x = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in centre(law, data.inputs, spec.logref).items()}
    idx = {g: jnp.asarray(data.group_index[g]) for g in spec.coords}
    y = jnp.asarray(np.log(data.response), jnp.float32)
    return np.array([float(log_density(model, (x, idx, y, None), {}, p)[0]) for p in points]), spec, model


def test_density_matches_numpyro():
    law = get_law("chinchilla")
    df, _ = simulate(law, grouped_design(), None, seed=3, pool=POOL, priors=PRIORS_USED)
    spec, data = build(df, law, pool=POOL, priors=PRIORS_USED)
    assert set(spec.centred) == {"log_A0", "alpha"} and "E" in spec.pooled  # both parametrisations
    model = make_model(spec, natural=True)
    x = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in centre(law, data.inputs, spec.logref).items()}
    idx = {g: jnp.asarray(data.group_index[g]) for g in spec.coords}
    points = []
    for s in range(4):  # prior draws of the NumPyro model
        tr = trace(seed(model, jax.random.PRNGKey(s))).get_trace(x, idx, None, None)
        points.append({k: np.asarray(v["value"], np.float64) for k, v in tr.items()
                       if v["type"] == "sample" and k != "y"})
    ours, _, _ = numpyro_logp(df, points, PRIORS_USED)
    pm_model = to_pymc(df, law, pool=POOL, priors=PRIORS_USED)
    free = remove_value_transforms(pm_model)
    logp = free.compile_fn(free.logp(), mode="FAST_COMPILE")
    theirs = np.array([float(logp(p)) for p in points])
    np.testing.assert_allclose(theirs, ours, rtol=2e-5, atol=1e-3)
    # same names, coords and dims as the NumPyro posterior
    dims = pm_model.named_vars_to_dims
    assert dims["alpha_u"] == dims["alpha_by_family"] == ("family",)
    assert dims["E_z"] == dims["E_by_dataset"] == ("dataset",) and dims["y"] == ("obs",)
    assert list(pm_model.coords["dataset"]) == ["d1", "d2", "thin"]
    # control: the same comparison rejects a model with another prior on one parameter
    other, _, _ = numpyro_logp(df, points, {**PRIORS_USED, "nu": "TruncatedNormal(30.0, 5.0, low=2.0)"})
    assert np.all(np.abs(theirs - other) > 2e-5 * np.abs(other) + 1e-3)



@pytest.mark.parametrize("law_name, walk", [("chinchilla", False), ("farseer", False), ("chinchilla", True)])
def test_law_coordinates_density_matches_numpyro(law_name, walk):
    """``to_pymc`` samples where ``fit`` samples: in the law's coordinates (a flat vector, the
    priors and the Jacobian as a potential). Its log density equals NumPyro's law-coordinate model
    at the same points, and its natural parameters are the same deterministics. Control: the
    twin built with ``natural=True`` has another free variable set, and the NumPyro density
    without the Jacobian's term differs from the twin's."""
    law = get_law(law_name)
    n = np.geomspace(3e7, 3e9, 24)
    design = pd.DataFrame({"params": n, "tokens": n * np.tile([8.0, 20.0, 50.0], 8)})
    df, _ = simulate(law, design, None, seed=4)
    disc = "LogNormal(-4.0, 1.0)" if walk else "none"
    spec, data = build(df, law, discrepancy=disc)
    assert spec.law_coordinates and (spec.discrepancy is not None) == walk
    model = make_model(spec)
    x = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in centre(law, data.inputs, spec.logref).items()}
    y = jnp.asarray(np.log(data.response), jnp.float32)
    steps = {k: jnp.asarray(v) for k, v in walk_inputs(spec.discrepancy, x).items()} if walk else None
    rng = np.random.default_rng(0)
    points = []
    for s in range(4):   # offsets around the priors' medians (a flat site), the rest from their priors
        fixed = numpyro_substitute(model, {"law_coords": rng.uniform(-1.0, 1.0, law.coordinates.size)})
        tr = trace(seed(fixed, jax.random.PRNGKey(s))).get_trace(x, {}, None, None, steps)
        points.append({k: np.asarray(v["value"], np.float64) for k, v in tr.items()
                       if v["type"] == "sample" and not v["is_observed"] and k != "y"})
    assert ("disc_z" in points[0]) == walk
    ours = np.array([float(log_density(model, (x, {}, y, None, steps), {}, p)[0]) for p in points])
    twin = to_pymc(df, law, discrepancy=disc)
    free = remove_value_transforms(twin)
    assert {v.name for v in free.free_RVs} == set(points[0])
    logp = free.compile_fn(free.logp(), mode="FAST_COMPILE")
    theirs = np.array([float(logp(p)) for p in points])
    np.testing.assert_allclose(theirs, ours, rtol=2e-5, atol=1e-3)
    # the natural parameters are the NumPyro model's deterministic sites
    naturals = free.compile_fn([free[n] for n in law.coordinates.names], inputs=[free["law_coords"]],
                               mode="FAST_COMPILE")({"law_coords": points[0]["law_coords"]})
    tr = trace(seed(numpyro_substitute(model, points[0]), jax.random.PRNGKey(0))).get_trace(x, {}, None, None, steps)
    np.testing.assert_allclose(naturals, [float(tr[n]["value"]) for n in law.coordinates.names], rtol=1e-5)
    # controls
    assert "law_coords" not in {v.name for v in remove_value_transforms(to_pymc(df, law, discrepancy=disc,
                                                                                natural=True)).free_RVs}
    theta = jnp.asarray(np.asarray(law.coordinates.natural(jnp.asarray(points[0]["law_coords"])
                                                           + law.coordinates.centre(spec.priors))))
    without = ours[0] - float(law.coordinates.log_abs_det_jacobian(theta))
    assert abs(theirs[0] - without) > 1e-3 + 2e-5 * abs(ours[0])   # beyond the comparison's tolerance

PRIORS = {
    "Normal": dist.Normal(0.3, 0.7), "LogNormal": dist.LogNormal(0.5, 0.4), "HalfNormal": dist.HalfNormal(2.0),
    "HalfCauchy": dist.HalfCauchy(1.5), "Cauchy": dist.Cauchy(0.2, 1.1), "StudentT": dist.StudentT(4.0, 0.1, 0.5),
    "Gamma": dist.Gamma(2.0, 3.0), "InverseGamma": dist.InverseGamma(3.0, 2.0), "Exponential": dist.Exponential(1.7),
    "Beta": dist.Beta(2.0, 5.0), "Uniform": dist.Uniform(-1.0, 2.0),
    "TruncatedNormal": dist.TruncatedNormal(10.0, 15.0, low=2.0),
    "TruncatedNormal2": dist.TruncatedNormal(0.0, 1.0, low=-0.5, high=1.5),
}


def test_every_prior_family_translates():
    with pm.Model() as model:
        rvs = {k: pymc_prior(pm, k, d) for k, d in PRIORS.items()}
        fixed = pymc_prior(pm, "fixed", dist.Delta(0.25))
    free = remove_value_transforms(model)
    logps = free.compile_fn(free.logp(sum=False), mode="FAST_COMPILE")
    values = {k: np.asarray(d.sample(jax.random.PRNGKey(i)), np.float64) for i, (k, d) in enumerate(PRIORS.items())}
    got = dict(zip([rv.name for rv in free.free_RVs], logps(values)))
    assert set(got) == set(PRIORS)
    for k, d in PRIORS.items():
        np.testing.assert_allclose(float(got[k]), float(d.log_prob(values[k])), rtol=1e-4, atol=1e-5, err_msg=k)
    assert float(model.compile_fn(fixed, inputs=[], on_unused_input="ignore")({})) == 0.25
    assert set(rvs) <= set(model.named_vars)
    with pm.Model(), pytest.raises(BayescaleError, match="no PyMC translation"):
        pymc_prior(pm, "w", dist.Laplace(0.0, 1.0))


def max_z(ours, theirs, names) -> float:
    """Largest |difference of posterior means| / combined Monte-Carlo standard error (element-wise)."""
    z = []
    for k in names:
        se = np.hypot(az.mcse(ours[[k]], method="mean")[k].values, az.mcse(theirs[[k]], method="mean")[k].values)
        diff = ours[k].mean(("chain", "draw")).values - theirs[k].mean(("chain", "draw")).values
        z.append(np.max(np.abs(diff) / se))
    return float(max(z))


def sample_pymc(model, chains, warmup, draws, seed_):
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pm.sample(draws=draws, tune=warmup, chains=chains, cores=1, random_seed=seed_,
                         progressbar=False, compute_convergence_checks=False).posterior


def test_posterior_agrees_with_pymc():
    """PyMC's own NUTS on the translated model gives bayescale's posterior means within Monte-Carlo
    error; the control (inputs shifted by one log unit, the same compiled graph) must not."""
    law = get_law("power")
    df, _ = simulate(law, pd.DataFrame({"params": np.geomspace(1e7, 1e10, 24)}),
                         dict(E=1.8, log_A0=-0.5, alpha=0.35, sigma=0.02, nu=10.0), seed=5)
    ours = bs.fit(df, law="power", seed=1, progress=False, chains=2, warmup=300, draws=300,
                  discrepancy="none").posterior
    model = to_pymc(df, law)
    names = ["E", "log_A0", "alpha", "sigma"]
    same = sample_pymc(model, 2, 300, 300, 2)
    with model:
        pm.set_data({"x_params": model["x_params"].get_value() + 1.0})
    shifted = sample_pymc(model, 2, 300, 300, 3)
    assert max_z(ours, same, names) < 4.0, f"PyMC and bayescale disagree: max |z| = {max_z(ours, same, names):.2f}"
    assert max_z(ours, shifted, names) > 8.0, "the control (shifted inputs) should disagree"


@pytest.mark.slow
def test_pooled_posterior_agrees_with_pymc():
    """The hierarchical Chinchilla model (centred and non-centred groups, a bounded pooled prior):
    every population and per-group value agrees within Monte-Carlo error; a model with another
    prior on the exponent's groups (control) must not."""
    law = get_law("chinchilla")
    truth = dict(E={"d1": 1.8, "d2": 2.0, "thin": 1.9}, log_A0={"a": -0.8, "b": -1.0, "c": -1.2},
                 alpha=0.35, log_B0={"d1": -1.0, "d2": -1.1, "thin": -0.9}, beta=0.3,
                 sigma={"d1": 0.02, "d2": 0.02, "thin": 0.02}, nu=10.0)
    df, _ = simulate(law, grouped_design(1), {**truth, "alpha": {"a": 0.3, "b": 0.35, "c": 0.4}})
    fit = bs.fit(df, law="chinchilla", pool=POOL, priors=PRIORS_USED, seed=0, progress=False, discrepancy="none",
                 chains=4, warmup=1000, draws=1000)
    ours = fit.posterior
    names = ["E", "log_A0", "alpha", "log_B0", "beta", "sigma", "nu", "E_by_dataset", "log_A0_by_family",
             "alpha_by_family", "log_B0_by_dataset", "alpha_tau"]
    theirs = sample_pymc(to_pymc(df, law, pool=POOL, priors=PRIORS_USED), 4, 1000, 1000, 1)
    assert max_z(ours, theirs, names) < 4.5
    other = sample_pymc(to_pymc(df, law, pool=POOL, priors={**PRIORS_USED, "alpha_tau": "HalfNormal(0.01)"}),
                        4, 1000, 1000, 1)
    assert max_z(ours, other, names) > 8.0


@pytest.mark.parametrize("law_name, table", [
    ("accuracy-sigmoid", pd.DataFrame({"compute": np.geomspace(1e19, 1e23, 8), "trials": [100.0] * 6 + [0.0] * 2,
                                       "chance": 0.25, "p_correct": [0.27, 0.3, 0.41, 0.55, 0.7, 0.81, 0.86, 0.9]})),
    ("choice-mass", pd.DataFrame({"compute": np.geomspace(1e19, 1e23, 8),
                                  "p_choice_correct": [0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7]})),
])
def test_observation_twins_match_numpyro(law_name, table):
    """The Beta-Binomial rate (counts and trials = 0 rows, chance floor) and the Beta mass: the PyMC
    twin's log density equals NumPyro's at prior draws."""
    law = get_law(law_name)
    spec, data = build(table, law)
    model = make_model(spec, natural=True)
    x = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in centre(law, data.inputs, spec.logref).items()}
    aux_np = {k: table[k].to_numpy(np.float64) for k in law.extras}
    aux = {k: jnp.asarray(v, jnp.float32) for k, v in aux_np.items()}
    y = jnp.asarray(law.observation.site_value(data.response, aux_np), jnp.float32)
    points, ours = [], []
    for s in range(4):
        tr = trace(seed(model, jax.random.PRNGKey(s))).get_trace(x, {}, None, aux)
        point = {k: np.asarray(v["value"], np.float64) for k, v in tr.items() if v["type"] == "sample" and k != "y"}
        points.append(point)
        ours.append(float(log_density(model, (x, {}, y, aux), {}, point)[0]))
    free = remove_value_transforms(to_pymc(table, law))
    logp = free.compile_fn(free.logp(), mode="FAST_COMPILE")
    theirs = np.array([float(logp(p)) for p in points])
    np.testing.assert_allclose(theirs, ours, rtol=2e-5, atol=1e-2)
    # control: a different response gives a different density
    moved = table.assign(**{law.response: table[law.response] * 0.9})
    free_moved = remove_value_transforms(to_pymc(moved, law))
    assert abs(float(free_moved.compile_fn(free_moved.logp(), mode="FAST_COMPILE")(points[0])) - ours[0]) > 1e-2


def test_unsupported_likelihood_and_missing_law():
    # censored attempts have no PyMC twin yet: a clear error, not a wrong model
    df = pd.DataFrame({"params": np.geomspace(1e8, 1e10, 6), "passes": 1.0, "budget": 100.0,
                       "attempts": [100.0, 80, 50, 20, 5, 2]})
    with pytest.raises(BayescaleError, match="no PyMC twin"):
        to_pymc(df, get_law("pass-until:attempts"))
    loss = pd.DataFrame({"params": np.geomspace(1e7, 1e9, 6), "loss": np.linspace(3, 2, 6)})
    with pytest.raises(BayescaleError):
        to_pymc(loss.drop(columns="loss"), get_law("power"))


def test_the_twin_of_a_fit_is_that_fits_model():
    """to_pymc(df, fit) takes the fit's own settings (pooling, the walk per family, priors): the
    README's call gives the model bs.fit fitted, which to_pymc(df, law name) (the law alone by
    default) does not. Giving a setting beside the fit is an error, not a silent mix."""
    from bayescale.datasets.demo import demo_data

    runs = demo_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.BayescaleWarning)
        fit = bs.fit(runs, "chinchilla", priors={"alpha": "Normal(0.3, 0.05)"}, chains=1, warmup=30, draws=30,
                     seed=0, progress=False)
    assert fit.has_discrepancy and fit.spec.discrepancy.group == "family"
    twin = to_pymc(runs, fit)
    names = {v.name for v in twin.free_RVs}
    assert {"disc_scale", "disc_z", "log_A0_tau"} <= names
    assert twin.coords["family"] == tuple(fit.spec.coords["family"])
    # the same density as the model written out by hand with bs.fit's defaults and the fit's prior
    by_hand = to_pymc(runs, "chinchilla", priors={"alpha": "Normal(0.3, 0.05)"}, discrepancy="auto")
    other_prior = to_pymc(runs, "chinchilla", priors={"alpha": "Normal(0.35, 0.05)"}, discrepancy="auto")
    point = twin.initial_point()
    logp = [float(m.compile_logp(mode="FAST_COMPILE")(point)) for m in (twin, by_hand, other_prior)]
    assert logp[0] == pytest.approx(logp[1], rel=1e-9) and abs(logp[0] - logp[2]) > 1e-3
    alone = {v.name for v in to_pymc(runs, fit.law.spec).free_RVs}   # control: a name alone, no walk
    assert "disc_scale" not in alone and "log_A0_tau" in alone
    with pytest.raises(BayescaleError, match=r"builds the fit's own model, so \['pool'\] cannot be given too"):
        to_pymc(runs, fit, pool="none")
