"""The PyMC twin of a bayescale model, built from the same law declaration.

``to_pymc(df, law, pool=..., priors=...)`` returns a ``pm.Model``
with the same variables, names, coords and dims as the NumPyro model of
:func:`bayescale.inference.make_model`: the same priors, pooled parameters as a population value,
``{name}_tau`` and centred ``{name}_u`` or non-centred ``{name}_z`` group values in the unconstrained
space of the prior's support, a deterministic ``{name}_by_{group}``, and the law's observation model (its PyMC twin).
Where bayescale samples a law in its own coordinates (``law_coords``, see
:mod:`bayescale.models.coordinates`), so does the twin, unless ``natural=True``.
"""
from __future__ import annotations

import ast

import numpy as np
from numpyro.distributions import constraints

from .design import centre, extra_columns
from .discrepancy import KNOT_DIM, pymc_term
from .models.coordinates import DIM as COORD_DIM
from .group_offset import pymc_term as offset_pymc_term
from .errors import BayescaleError
from .models import Law, get_law
from .priors import describe
from .spec import build


def _import_pymc():
    try:
        import pymc as pm
        import pytensor.tensor as pt
    except ImportError as exc:
        raise BayescaleError(
            "to_pymc needs PyMC, which is not installed; install it with `pip install bayescale[pymc]`"
        ) from exc
    return pm, pt


def _prior_args(prior) -> tuple[str, dict[str, float]]:
    """('Normal', {'loc': 0.0, 'scale': 1.0}) from a NumPyro prior, via its recorded text form."""
    call = ast.parse(describe(prior, digits=17), mode="eval").body
    return call.func.id, {k.arg: float(ast.literal_eval(k.value)) for k in call.keywords}


def _pymc_family(pm, prior, name: str | None = None):
    """(PyMC distribution class, its arguments) for a NumPyro prior other than Delta (``name``:
    whose prior it is, for the error)."""
    family, a = _prior_args(prior)
    makers = {
        "Normal": lambda: (pm.Normal, dict(mu=a["loc"], sigma=a["scale"])),
        "LogNormal": lambda: (pm.LogNormal, dict(mu=a["loc"], sigma=a["scale"])),
        "HalfNormal": lambda: (pm.HalfNormal, dict(sigma=a["scale"])),
        "HalfCauchy": lambda: (pm.HalfCauchy, dict(beta=a["scale"])),
        "Cauchy": lambda: (pm.Cauchy, dict(alpha=a["loc"], beta=a["scale"])),
        "StudentT": lambda: (pm.StudentT, dict(nu=a["df"], mu=a["loc"], sigma=a["scale"])),
        "Gamma": lambda: (pm.Gamma, dict(alpha=a["concentration"], beta=a["rate"])),
        "InverseGamma": lambda: (pm.InverseGamma, dict(alpha=a["concentration"], beta=a["rate"])),
        "Exponential": lambda: (pm.Exponential, dict(lam=a["rate"])),
        "Beta": lambda: (pm.Beta, dict(alpha=a["concentration1"], beta=a["concentration0"])),
        "Uniform": lambda: (pm.Uniform, dict(lower=a["low"], upper=a["high"])),
        "TruncatedNormal": lambda: (pm.TruncatedNormal, dict(mu=a["loc"], sigma=a["scale"],
                                                             lower=a.get("low"), upper=a.get("high"))),
    }
    if family not in makers:
        whose = f" of {name!r}" if name else ""
        raise BayescaleError(f"prior {describe(prior)}{whose} has no PyMC translation; "
                             f"supported families: {sorted(makers) + ['Delta']}")
    return makers[family]()


def pymc_prior(pm, name: str, prior, dims=None):
    """The PyMC random variable for a NumPyro prior (Delta = a fixed value, as a Deterministic)."""
    family, a = _prior_args(prior)
    if family == "Delta":
        return pm.Deterministic(name, pm.math.constant(a["v"]), dims=dims)
    cls, kwargs = _pymc_family(pm, prior, name)
    return cls(name, **kwargs, dims=dims)


def pymc_dist(pm, prior, name: str | None = None):
    """The unnamed PyMC distribution of a NumPyro prior (for ``pm.logp`` at a computed value);
    ``name``: whose prior it is, for the error."""
    cls, kwargs = _pymc_family(pm, prior, name)
    return cls.dist(**kwargs)


def support_transform(pt, support):
    """(forward, inverse) of NumPyro's ``biject_to(support)`` written in pytensor."""
    if isinstance(support, constraints._Real):
        return (lambda u: u), (lambda v: v)
    if isinstance(support, constraints._Interval):
        lo, hi = float(support.lower_bound), float(support.upper_bound)
        return (lambda u: lo + (hi - lo) * pt.sigmoid(u),
                lambda v: pt.log(v - lo) - pt.log(hi - v))
    if isinstance(support, constraints._GreaterThan):
        lo = float(support.lower_bound)
        return (lambda u: lo + pt.exp(u)), (lambda v: pt.log(v - lo))
    if isinstance(support, constraints._LessThan):
        hi = float(support.upper_bound)
        return (lambda u: hi - pt.exp(u)), (lambda v: pt.log(hi - v))
    raise BayescaleError(f"no PyMC transform for support {support}; supported: real, positive, "
                         "greater than, less than and interval supports")


def to_pymc(df, law: str | Law = "chinchilla", *, pool=None, priors=None, columns=None,
            duplicates: str = "error", parametrisation: str = "auto", discrepancy="none", offset=None,
            discrepancy_by="auto", natural: bool = False):
    """The ``pm.Model`` equivalent to ``bayescale.fit(df, law, pool=pool, priors=priors,
    discrepancy=discrepancy, offset=offset, discrepancy_by=discrepancy_by)``, in the coordinates
    bayescale samples: where the law has sampling coordinates (:mod:`bayescale.models.coordinates`)
    and they apply (the law's parameters unpooled, none fixed), a flat vector ``law_coords`` with the
    natural parameters as deterministics; ``natural=True`` samples the natural parameters directly
    (the same model and posterior). PyMC cannot draw from the flat vector, so prior sampling
    (``pm.sample_prior_predictive``) needs ``natural=True``.

    ``law`` may be a fitted :class:`bayescale.Fit`: the twin of *that* model (its law, pooling,
    priors, discrepancy walk, offsets and column names, as saved) on ``df``'s rows. With a law's
    name the defaults here are the law alone (``discrepancy="none"``); ``bayescale.fit``'s default
    model has the walk (``discrepancy="auto"``)."""
    pm, pt = _import_pymc()
    if hasattr(law, "spec") and hasattr(law, "config"):   # a Fit: its own settings, none given twice
        from .comparison import refit_options

        given = {k: v for k, v in dict(pool=pool, priors=priors, columns=columns, discrepancy=discrepancy,
                                        offset=offset, discrepancy_by=discrepancy_by).items()
                 if v != {"discrepancy": "none", "discrepancy_by": "auto"}.get(k)}
        if given:
            raise BayescaleError(f"to_pymc(df, fit) builds the fit's own model, so {sorted(given)} cannot be given "
                                 "too; pass the law's name (fit.law.spec) with the settings you want instead")
        options = refit_options(law)
        options.pop("target_accept")
        if duplicates == "error":   # the default: repeated rows read as the fit read them
            duplicates = law.config.get("duplicates") or duplicates
        return to_pymc(df, law.law, duplicates=duplicates, parametrisation=parametrisation, natural=natural,
                       **options)
    law = get_law(law)
    spec, data = build(df, law, pool=pool, priors=priors, columns=columns, duplicates=duplicates,
                       parametrisation=parametrisation, discrepancy=discrepancy, offset=offset,
                       discrepancy_by=discrepancy_by)
    x_np = centre(law, data.inputs, spec.logref)
    aux_np = extra_columns(data.frame, law.extras)
    y_np = law.observation.site_value(data.response, aux_np)
    coords = {**{g: list(v) for g, v in spec.coords.items()}, "obs": np.arange(data.n)}
    if spec.discrepancy is not None and spec.discrepancy.size:
        coords[KNOT_DIM] = spec.discrepancy.labels()
    reparam = law.coordinates if spec.law_coordinates and not natural else None
    if reparam is not None:
        coords[COORD_DIM] = reparam.labels()
    with pm.Model(coords=coords) as model:
        x = {k: pm.Data(f"x_{k}", v, dims="obs") for k, v in x_np.items()}
        idx = {g: pm.Data(f"{g}_index", data.group_index[g].astype(np.int64), dims="obs")
               for g in spec.coords}
        values = {} if reparam is None else reparam.pymc_sample(pm, pt, spec.priors, lambda p, n: pymc_dist(pm, p, n))
        for name in law.all_params():
            if name in values:
                continue
            prior = spec.priors[name]
            pop = pymc_prior(pm, name, prior)
            g = spec.pooled.get(name)
            if g is None:
                values[name] = pop
                continue
            tau = pymc_prior(pm, f"{name}_tau", spec.priors[f"{name}_tau"])
            forward, inverse = support_transform(pt, prior.support)
            if name in spec.centred:
                u = pm.Normal(f"{name}_u", mu=inverse(pop), sigma=tau, dims=g)
            else:
                u = inverse(pop) + tau * pm.Normal(f"{name}_z", mu=0.0, sigma=1.0, dims=g)
            by_group = pm.Deterministic(f"{name}_by_{g}", forward(u), dims=g)
            values[name] = by_group[idx[g]]
        mu = law.mean(x, values, xp=pt)
        make_prior = lambda name, prior: pymc_prior(pm, name, prior)  # noqa: E731
        shift = 0.0
        if spec.discrepancy is not None:
            shift = shift + pymc_term(pm, pt, spec.discrepancy, x, make_prior, idx)
        for term in spec.offsets:
            shift = shift + offset_pymc_term(pm, term, idx[term.dim], make_prior)
        if spec.discrepancy is not None or spec.offsets:
            obs = law.observation
            mu = obs.inverse_link(obs.link(mu, pt) + shift, pt)
        law.observation.pymc_observe(pm, pt, mu, values, y_np, aux_np)
    return model
