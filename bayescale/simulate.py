"""Simulate observations from a law: from given parameter values, or from the prior (for SBC)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.handlers import seed as seed_handler
from numpyro.handlers import trace

from .data import GROUP_COLUMNS
from .design import centre, extra_columns
from .errors import BayescaleError
from .discrepancy import walk_inputs
from .inference import make_model
from .models import get_law
from .samplers.cache import tracing
from .spec import build
from .checks import check_seed


def _per_row(value, labels: np.ndarray, name: str, g: str | None) -> np.ndarray:
    if isinstance(value, dict):
        if g is None:
            raise BayescaleError(f"'{name}' is shared, give one number, not {value!r}")
        missing = sorted(set(labels) - set(value))
        if missing:
            raise BayescaleError(f"'{name}' has no value for {g} {missing}")
        return np.array([value[lab] for lab in labels], dtype=np.float64)
    return np.full(len(labels), float(value))


def simulate(law, design: pd.DataFrame, params: dict | None = None, *, seed: int = 0,
             pool=None, priors=None, noise: bool = True, discrepancy=None,
             offset=None) -> tuple[pd.DataFrame, dict]:
    """Return (design plus a simulated response column, the true parameter values).

    ``params`` gives each law parameter and noise parameter as a number or, for a parameter that
    varies by group, a dict {label: value}; parameters are on the law's centred scale, with the
    reference scales taken from the design's geometric mean (as a fit of the same rows would).
    Without ``params`` everything is drawn from the prior of the NumPyro model, including the
    model-discrepancy walk when ``discrepancy`` gives its scale's prior, and the group offsets
    when ``offset`` names their grouping (:mod:`bayescale.group_offset`).
    """
    law, seed = get_law(law), check_seed(seed)
    design = design.copy()
    design[law.response] = 1.0  # placeholder for validation; replaced below
    if (discrepancy not in (None, "none") or offset not in (None, "none")) and params is not None:
        raise BayescaleError("simulating with a model discrepancy or group offsets draws everything from "
                             "the prior: give params=None")
    spec, data = build(design, law, pool=pool, priors=priors, duplicates="keep", check_response=False,
                       discrepancy=discrepancy, offset=offset)
    frame = data.frame
    x = centre(law, data.inputs, spec.logref)
    aux_np = extra_columns(frame, law.extras)
    if params is None:
        walk = {} if spec.discrepancy is None else {
            k: jnp.asarray(v, dtype=jnp.float32) for k, v in walk_inputs(spec.discrepancy, x, data.group_index).items()}
        x = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in x.items()}
        idx = {g: jnp.asarray(data.group_index[g]) for g in spec.coords}
        with tracing():   # NumPyro's handler stack is global: one trace at a time
            tr = trace(seed_handler(make_model(spec, natural=True), jax.random.PRNGKey(seed))).get_trace(
                x, idx, None, {k: jnp.asarray(v) for k, v in aux_np.items()}, walk)
        truth = {k: np.asarray(v["value"]) for k, v in tr.items()
                 if v["type"] in ("sample", "deterministic") and k != "y"}
        y = law.observation.from_site(np.asarray(tr["y"]["value"], dtype=np.float64), aux_np)
        if not noise:
            raise BayescaleError("noise=False needs explicit params")
    else:
        expected = set(law.all_params())
        unknown = sorted(set(params) - expected)
        missing = sorted(expected - set(params))
        if unknown or missing:
            raise BayescaleError(f"simulate params: unknown {unknown}, missing {missing}; "
                                 f"law {law.spec!r} needs {sorted(expected)}")
        values = {}
        for name, value in params.items():
            g = _group_of(value, frame) if isinstance(value, dict) else None
            labels = frame[g].to_numpy() if g else np.zeros(len(frame))
            values[name] = _per_row(value, labels, name, g)[None, :]
        mu = np.asarray(law.mean({k: v[None, :] for k, v in x.items()}, values, xp=np), np.float64)[0]
        rng = np.random.default_rng(seed)
        y = law.observation.sample(rng, mu[None, :], values, aux_np)[0] if noise else mu
        truth = dict(params)
    out = design.drop(columns=[law.response]).reset_index(drop=True)
    out[law.response] = y
    out.attrs["logref"] = spec.logref
    return out, truth


def _group_of(value: dict, frame: pd.DataFrame) -> str:
    keys = set(value)
    for g in GROUP_COLUMNS:
        if keys >= set(frame[g]):
            return g
    raise BayescaleError(f"group labels {sorted(keys)} do not match any grouping column's labels")


def log_uniform_design(n: int, seed: int = 0, params=(1e8, 1e10), tokens=(1e10, 1e12)) -> pd.DataFrame:
    """``n`` runs with N and D drawn log-uniformly from the given ranges (a table of any size for
    tests and benchmarks of the samplers)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"params": np.exp(rng.uniform(np.log(params[0]), np.log(params[1]), n)),
                         "tokens": np.exp(rng.uniform(np.log(tokens[0]), np.log(tokens[1]), n))})
