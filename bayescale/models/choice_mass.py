"""Probability mass on the correct choice of multiple-choice questions, and the accuracy it implies.

Each row is one question answered by one run: ``p_choice_correct`` is the mass the model puts on
the correct choice. Its mean over questions is a sigmoid in log compute, and questions scatter
around it by a Beta with concentration phi:

    p_c ~ Beta(m·phi, (1 - m)·phi),   m = sigma(a + b·log(C/C0)).

The K - 1 incorrect choices share the rest, 1 - p_c, by a symmetric Dirichlet(kappa). A question
is answered correctly when p_c exceeds every incorrect mass, so the accuracy follows from the mass
model (:func:`choice_accuracy`): acc = E[P(p_c > (1 - p_c)·max D)], D ~ Dirichlet(kappa·1_{K-1}).
Correct masses alone do not identify kappa; it is an argument of :func:`choice_accuracy`
(kappa = 1: the incorrect mass is split uniformly at random).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from scipy.special import betainc

from ..errors import BayescaleError
from .base import Law, Param
from .loss_to_error import RATE_MAX, RATE_MIN, clip_rate
from .registry import register

N_GRID = 400          # quadrature bins over the correct mass
N_DIRICHLET = 20000   # Monte-Carlo draws of the largest incorrect share


@register
class ChoiceMass(Law):
    """m = sigma(a + b·log(C/C0)); per-question correct mass ~ Beta(m·phi, (1 - m)·phi)."""

    name = "choice-mass"
    formula = "p_c ~ Beta(m·phi, (1-m)·phi), m = sigma(a + b·log(C/C0)); acc = P(p_c > max incorrect)"
    inputs = ("compute",)
    response = "p_choice_correct"
    params = {
        "a": Param(dist.Normal(-2.0, 2.0), pool="task", group_scale=1.5,
                   doc="logit of the mean correct mass at the reference compute C0"),
        "log_b": Param(dist.Normal(-1.5, 1.0), pool="task", group_scale=0.5,
                       doc="log slope of the mean mass's logit per unit of log(C/C0)"),
    }

    def mean(self, x, p, xp=jnp):
        z = p["a"] + xp.exp(p["log_b"]) * x["compute"]
        return clip_rate(xp.exp(-xp.logaddexp(0.0, -z)), xp)

    def noise_params(self):
        # shared by default: pooled by task (pool={"phi": "task"}) its non-centred funnel slows NUTS
        return {"phi": Param(dist.LogNormal(np.log(10.0), 1.5), group_scale=0.5,
                             doc="concentration of questions' correct masses around the mean m")}

    def observe(self, mu, p, y, aux):
        numpyro.sample("y", dist.Beta(mu * p["phi"], (1 - mu) * p["phi"]), obs=y)

    def site_value(self, y, aux):
        return np.clip(y, RATE_MIN, RATE_MAX)

    def from_site(self, value, aux):
        return np.clip(value, RATE_MIN, RATE_MAX)  # float32 draws can round to 0 or 1

    def sample_observation(self, rng, mu, p, aux):
        phi = np.broadcast_to(p["phi"], mu.shape)
        return np.clip(rng.beta(mu * phi, (1 - mu) * phi), RATE_MIN, RATE_MAX)

    def check_response(self, y, aux):
        # masses of exactly 0 or 1 (rounding) are clipped into the Beta's support by site_value
        bad = ~((y >= 0) & (y <= 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BayescaleError(
                f"law {self.spec!r}: column '{self.response}' (mass on the correct choice) must lie in [0, 1], "
                f"but row {i} is {y[i]:g} ({int(bad.sum())} such row(s)); fix or drop those rows")

    def derived(self, p, logref):
        """log compute at which the mean correct mass reaches 1/2."""
        return {"log_C_half": logref["compute"] - p["a"] * np.exp(-p["log_b"])}

    def sbc_design(self):
        """8 runs over five decades of compute, 25 questions each."""
        c = np.geomspace(1e18, 1e23, 8)
        return pd.DataFrame({"compute": np.repeat(c, 25), "question": np.tile(np.arange(25), 8)})


def win_probability(t, choices: int, kappa: float, seed: int = 0):
    """P(max D < t) for D ~ Dirichlet(kappa·1_{K-1}): the chance that a correct mass p_c with
    t = p_c / (1 - p_c) beats all K - 1 incorrect choices (Monte Carlo over D with a fixed seed)."""
    t = np.asarray(t, dtype=np.float64)
    if choices == 2:
        return (t > 1).astype(np.float64)
    g = np.random.default_rng(seed).gamma(kappa, size=(N_DIRICHLET, choices - 1))
    top = np.sort(g.max(axis=1) / g.sum(axis=1))
    return np.searchsorted(top, t, side="left") / N_DIRICHLET


def accuracy_from_mass(m, phi, choices: int, kappa: float = 1.0):
    """Expected accuracy E_{p_c ~ Beta(m·phi, (1-m)·phi)}[P(p_c beats every incorrect choice)]."""
    if int(choices) != choices or choices < 2:
        raise BayescaleError(f"the number of choices must be an integer >= 2, got {choices!r}")
    if not kappa > 0:
        raise BayescaleError(f"kappa (Dirichlet concentration of the incorrect masses) must be > 0, got {kappa!r}")
    m, phi = np.broadcast_arrays(np.asarray(m, np.float64), np.asarray(phi, np.float64))
    # p_c can only win above 1/K; integrate the win probability against the Beta over [1/K, 1]
    edges = 1.0 / choices + (1 - 1.0 / choices) * np.linspace(0.0, 1.0, N_GRID + 1) ** 2
    mid = 0.5 * (edges[1:] + edges[:-1])
    win = win_probability(mid / (1 - mid), int(choices), kappa)
    cdf = betainc((m * phi)[..., None], ((1 - m) * phi)[..., None], edges)
    return np.sum(np.diff(cdf, axis=-1) * win, axis=-1)


def _mean_draws(fit, df, seed):
    """Posterior draws (samples x rows) of the mean mass m and of the parameters, as in chain.rate_draws."""
    from ..data import GROUP_COLUMNS, validate

    data = validate(df, fit.law.inputs, response=None, duplicates="keep", groups=GROUP_COLUMNS)
    frame = data.frame
    values = fit.param_draws(frame, np.random.default_rng(seed), data.notes)
    x = {k: np.log(frame[k].to_numpy(np.float64))[None, :] - fit.spec.logref[k] for k in fit.law.inputs}
    mu = np.asarray(fit.law.mean(x, values, xp=np), dtype=np.float64)
    return np.broadcast_to(mu, (fit._n_samples(), len(frame))), values


def choice_accuracy(fit, df: pd.DataFrame, *, kappa: float = 1.0, levels=(0.5, 0.9), seed: int = 0,
                    return_draws: bool = False):
    """Predicted accuracy at the rows of ``df`` (column ``choices``: number of choices per row) from a
    ``choice-mass`` fit: mean and central intervals over posterior draws of (m, phi)."""
    if fit.law.name != "choice-mass":
        raise BayescaleError(f"choice_accuracy needs a 'choice-mass' fit, got law {fit.law.spec!r}")
    if "choices" not in df.columns:
        raise BayescaleError("choice_accuracy needs a column 'choices' (number of answer choices per row, e.g. 4)")
    mu, values = _mean_draws(fit, df, seed)
    phi = np.broadcast_to(np.asarray(values["phi"], np.float64), mu.shape)
    k = df["choices"].to_numpy()
    draws = np.empty_like(mu)
    for c in np.unique(k):
        cols = np.flatnonzero(k == c)
        draws[:, cols] = accuracy_from_mass(mu[:, cols], phi[:, cols], int(c), kappa)
    out = pd.DataFrame({"mean": draws.mean(axis=0)}, index=df.index)
    for lv in levels:
        out[f"lower_{lv:g}"] = np.quantile(draws, (1 - lv) / 2, axis=0)
        out[f"upper_{lv:g}"] = np.quantile(draws, (1 + lv) / 2, axis=0)
    return (out, draws) if return_draws else out
