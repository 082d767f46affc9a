"""Multiple-choice accuracy as a sigmoid with a chance floor, in log-compute or in loss.

acc = chance + (1 - chance)·(floor + (1 - floor)·(1 - lapse)·sigma((x - x0)/s)), written with
a = -x0/s and b = 1/s about the reference scale. The chance level is data (column ``chance`` =
1 / number of choices), so the law's curve (``mean``) is the accuracy above chance, normalised:
q = (acc - chance)/(1 - chance) = floor + (1 - floor)·(1 - lapse)·sigma(.), which the observation
model (a Beta-Binomial rate with a chance floor) maps back to accuracy per row.

The floor is the share above chance that models score before the ability rises: exact-match tasks
have chance 0, yet small models score about 0.5 % on MATH by format luck, and multiple-choice
models sit a little above 1/choices. Without it the sigmoid's lower tail has to pass through those
flat points, so its slope is learned from the floor and the rise beyond the runs is predicted far
too low (on the leaderboard's MATH-hard, 12 of 27 held-out models above the 90 % interval with
the 50 % origin). One floor is shared by the tasks by default (pooling it by task mixed badly:
r_hat 1.3 on the leaderboard); ``pool={"a": "task", "log_b": "task", "floor": "task"}`` gives each
task its own (a ``pool`` dict replaces the default pooling, so name a and log_b too).
``priors={"floor": "Delta(0.0)"}`` is the law without a floor (bayescale 0.1.0's).

``Fit.predict(df, kind="mean")`` gives the expected accuracy (it needs column ``chance``); ``kind="curve"`` gives q itself.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .base import Param
from .loss_to_error import RateLaw
from .observations import BetaBinomialRate, clip_rate
from .registry import register


@register
class AccuracySigmoid(RateLaw):
    """q = floor + (1 - floor)·(1 - lapse)·sigma(a + b·u) with u = log(C/C0) (``:compute``) or -(L - L0) (``:loss``)."""
    derived_doc = {"log_C_mid": "log compute at the midpoint of the rise (sigma = 1/2)", "L_mid": "the loss at the midpoint of the rise (sigma = 1/2)", "width": "the width of the rise, 1/b, in the input's log units"}

    name = "accuracy-sigmoid"
    options = ("compute", "loss")
    observation = BetaBinomialRate(chance_floor=True)

    def __init__(self, option=None):
        self.option = option or "compute"
        self.inputs = (self.option,)
        self.linear_inputs = ("loss",) if self.option == "loss" else ()
        x = "log(C/C0)" if self.option == "compute" else "-(L - L0)"
        self.formula = f"acc = chance + (1 - chance)·(floor + (1 - floor)·(1 - lapse)·sigma(a + b·{x}))"
        self.params = {
            "a": Param(dist.Normal(-1.0, 2.0), pool="task", group_scale=1.5,
                       doc="logit of the rise at the reference (C0 or L0)"),
            "log_b": Param(dist.Normal(-0.5 if self.option == "compute" else 1.5, 1.0), pool="task",
                           group_scale=0.5, doc=f"log slope of the logit per unit of {x}"),
            "lapse": Param(dist.Beta(1.0, 9.0), doc="share of the range above the floor never reached"),
            # a few per cent at most: mean 0.05, 95 % below 0.15 of the above-chance range
            "floor": Param(dist.Beta(1.0, 19.0), doc="share of the above-chance range scored before the rise"),
        }

    def mean(self, x, p, xp=jnp):
        # slope-intercept form: for tasks still near chance the logit's (a, b) ridge is linear,
        # which NUTS handles far better than the midpoint/width form (x - x0)/s
        u = x["compute"] if self.option == "compute" else -x["loss"]
        z = p["a"] + xp.exp(p["log_b"]) * u
        # (1 - lapse)·sigmoid(z) = exp(log(1 - lapse) - log(1 + e^-z)), stable for large |z|
        rise = xp.exp(xp.log1p(-p["lapse"]) - xp.logaddexp(0.0, -z))
        return clip_rate(p["floor"] + (1.0 - p["floor"]) * rise, xp)

    def derived(self, p, logref):
        """Midpoint of the rise (sigma = 1/2) and its width (1/b) in the input's units."""
        mid = -p["a"] * np.exp(-p["log_b"])
        if self.option == "compute":
            return {"log_C_mid": logref["compute"] + mid, "width": np.exp(-p["log_b"])}
        return {"L_mid": logref["loss"] - mid, "width": np.exp(-p["log_b"])}

    @property
    def spec(self):
        return self.name if self.option == "compute" else f"{self.name}:{self.option}"
