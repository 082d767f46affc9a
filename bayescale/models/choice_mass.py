"""Probability mass on the correct choice of multiple-choice questions, and the accuracy it implies.

Each row is one question answered by one run: ``p_choice_correct`` is the mass the model puts on
the correct choice. Its mean over questions is a sigmoid in log compute, and questions scatter
around it by a Beta with concentration phi:

    p_c ~ Beta(m·phi, (1 - m)·phi),   m = sigma(a + b·log(C/C0)).

The K - 1 incorrect choices share the rest, 1 - p_c, by a symmetric Dirichlet(kappa). A question
is answered correctly when p_c exceeds every incorrect mass, so the accuracy follows from the mass
model (:func:`bayescale.predict.choice_accuracy`): acc = E[P(p_c > (1 - p_c)·max D)], D ~ Dirichlet(kappa·1_{K-1}).
Correct masses alone do not identify kappa; it is an argument of :func:`bayescale.predict.choice_accuracy`
(kappa = 1: the incorrect mass is split uniformly at random).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd
from scipy.special import betainc

from ..errors import BayescaleError
from .base import Law, Param
from .observations import BetaMass, clip_rate
from .registry import register

N_GRID = 400          # quadrature bins over the correct mass
N_DIRICHLET = 20000   # Monte-Carlo draws of the largest incorrect share


@register
class ChoiceMass(Law):
    """m = sigma(a + b·log(C/C0)); per-question correct mass ~ Beta(m·phi, (1 - m)·phi)."""

    name = "choice-mass"
    formula = "p_c ~ Beta(m·phi, (1-m)·phi), m = sigma(a + b·log(C/C0)); acc = P(p_c > max incorrect)"
    derived_doc = {'log_C_half': 'log compute at which the mean correct mass reaches 1/2'}
    inputs = ("compute",)
    response = "p_choice_correct"
    observation = BetaMass()
    params = {
        "a": Param(dist.Normal(-2.0, 2.0), pool="task", group_scale=1.5,
                   doc="logit of the mean correct mass at the reference compute C0"),
        "log_b": Param(dist.Normal(-1.5, 1.0), pool="task", group_scale=0.5,
                       doc="log slope of the mean mass's logit per unit of log(C/C0)"),
    }

    def mean(self, x, p, xp=jnp):
        z = p["a"] + xp.exp(p["log_b"]) * x["compute"]
        return clip_rate(xp.exp(-xp.logaddexp(0.0, -z)), xp)

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
