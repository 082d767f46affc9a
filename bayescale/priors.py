"""Priors as text: describe a NumPyro distribution and parse one back ("Normal(0.3, 0.1)")."""
from __future__ import annotations

import ast
import functools

import jax
import numpy as np
import numpyro.distributions as dist
from scipy import stats

from .errors import BayescaleError

ALLOWED = (
    "Normal", "LogNormal", "HalfNormal", "HalfCauchy", "StudentT", "Gamma", "Exponential",
    "Beta", "Uniform", "TruncatedNormal", "Cauchy", "InverseGamma", "Delta",
)


def describe(d: dist.Distribution, digits: int = 6) -> str:
    """A parseable text form such as 'LogNormal(loc=0.5, scale=0.5)' (``digits`` significant)."""
    name = type(d).__name__
    if name == "TwoSidedTruncatedDistribution" or name.endswith("TruncatedDistribution"):
        base = d.base_dist
        low = getattr(d, "low", None)
        high = getattr(d, "high", None)
        args = [f"loc={float(base.loc):.{digits}g}", f"scale={float(base.scale):.{digits}g}"]
        if low is not None:
            args.append(f"low={float(low):.{digits}g}")
        if high is not None:
            args.append(f"high={float(high):.{digits}g}")
        return f"TruncatedNormal({', '.join(args)})"
    args = []
    for key in d.arg_constraints:
        value = getattr(d, key, None)
        if value is None:
            continue
        arr = np.asarray(value)
        if arr.ndim:
            args.append(f"{key}={arr.tolist()}")
        else:
            args.append(f"{key}={float(arr):.{digits}g}")
    return f"{name}({', '.join(args)})"


def _literal(node: ast.AST, text: str) -> float:
    try:
        value = ast.literal_eval(node)
    except ValueError as exc:
        raise BayescaleError(f"prior {text!r}: arguments must be numbers") from exc
    if not isinstance(value, (int, float)):
        raise BayescaleError(f"prior {text!r}: arguments must be numbers, got {value!r}")
    return float(value)


def parse(text: str) -> dist.Distribution:
    """Parse 'Normal(0.3, 0.1)' or 'LogNormal(loc=0.5, scale=0.5)' into a distribution. Cached by
    text and by the float width in force (some families hold JAX arrays made at construction, so a
    prior made under float64 must not be handed to a float32 caller, or the reverse); distributions
    are not changed after they are made. A saved fit's spec parses its priors again on every load,
    and a batch of fits would otherwise build the same objects for each."""
    return _parse(text, jax.dtypes.canonicalize_dtype(np.float64) == np.float64)


@functools.lru_cache(maxsize=1024)
def _parse(text: str, x64: bool) -> dist.Distribution:
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise BayescaleError(
            f"cannot read prior {text!r}; write it like Normal(0.3, 0.1) or HalfNormal(scale=0.5)"
        ) from exc
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)):
        raise BayescaleError(f"cannot read prior {text!r}; write it like Normal(0.3, 0.1)")
    name = tree.func.id
    if name not in ALLOWED:
        raise BayescaleError(f"unknown prior family {name!r} in {text!r}; choose one of {list(ALLOWED)}")
    args = [_literal(a, text) for a in tree.args]
    kwargs = {k.arg: _literal(k.value, text) for k in tree.keywords}
    try:
        d = getattr(dist, name)(*args, **kwargs, validate_args=True)
    except (TypeError, ValueError) as exc:
        raise BayescaleError(f"invalid prior {text!r}: {exc}") from exc
    # argument checks miss some impossible priors (Uniform(1, 0), an infinite scale). Checked on
    # scipy's twin: a draw with JAX would compile a program per family (a second or more in a new
    # process, for a check of a few numbers)
    twin = scipy_twin(d)
    with np.errstate(all="ignore"):
        centre = median(d)
        ok = np.all(np.isfinite(centre)) and (twin is None or np.all(np.isfinite(twin.logpdf(centre))))
    if not ok:
        raise BayescaleError(
            f"invalid prior {text!r}: it has no finite draws or density; "
            "use finite scales and low < high"
        )
    return d


def scipy_twin(d: dist.Distribution):
    """The frozen ``scipy.stats`` distribution equal to prior ``d`` (every family in ALLOWED but
    Delta, which gives None). For numbers about a prior (its median, a validity check) without
    compiling JAX."""
    name = type(d).__name__
    a = lambda key: np.asarray(getattr(d, key), np.float64)   # noqa: E731
    if name.endswith("TruncatedDistribution"):
        loc, scale = np.asarray(d.base_dist.loc, np.float64), np.asarray(d.base_dist.scale, np.float64)
        low = np.asarray(getattr(d, "low", -np.inf), np.float64)
        high = np.asarray(getattr(d, "high", np.inf), np.float64)
        return stats.truncnorm((low - loc) / scale, (high - loc) / scale, loc=loc, scale=scale)
    twins = {
        "Normal": lambda: stats.norm(a("loc"), a("scale")),
        "LogNormal": lambda: stats.lognorm(a("scale"), scale=np.exp(a("loc"))),
        "HalfNormal": lambda: stats.halfnorm(scale=a("scale")),
        "HalfCauchy": lambda: stats.halfcauchy(scale=a("scale")),
        "StudentT": lambda: stats.t(a("df"), a("loc"), a("scale")),
        "Gamma": lambda: stats.gamma(a("concentration"), scale=1.0 / a("rate")),
        "Exponential": lambda: stats.expon(scale=1.0 / a("rate")),
        "Beta": lambda: stats.beta(a("concentration1"), a("concentration0")),
        "Uniform": lambda: stats.uniform(a("low"), a("high") - a("low")),
        "Cauchy": lambda: stats.cauchy(a("loc"), a("scale")),
        "InverseGamma": lambda: stats.invgamma(a("concentration"), scale=a("rate")),
    }
    return twins[name]() if name in twins else None


def median(d: dist.Distribution) -> np.ndarray:
    """The prior's median, exactly, from its scipy twin (Delta: its value)."""
    twin = scipy_twin(d)
    return np.asarray(d.v if twin is None else twin.median(), np.float64)
