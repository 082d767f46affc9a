"""Sampling coordinates for a floor plus power-law terms: the same model, a better geometry.

A law L = E + sum_k exp(log_T_k - exponent_k · x_k) (Chinchilla, the saturating power law) has
natural parameters (E, log_T_k, exponent_k) that the data determine badly one by one: the data
pin down the loss at the reference scales and its slopes there, while the floor E and the
curvature trade against each other along a curved ridge (E rises towards the data as a term's
log_T_k falls and its exponent grows) that a dense mass matrix cannot straighten. With the
discrepancy walk beside the law, which can bend the curve too, the ridge gets longer.

Here NUTS moves in what the data determine and what they do not, separately:

* l = log L0, the log of the curve at the reference scales (L0 = E + sum_k a_k, a_k = exp(log_T_k));
* g_k = log(exponent_k · a_k), the log of the (minus) slope of term k at the reference;
* phi = logit(E / L0), the floor's share of L0;
* rho_1..rho_{K-1}, the terms' shares of L0 - E (softmax with a last logit of 0);

each as an offset from its value at the priors' medians (see :meth:`FloorPlusPowers.centre`).

The map is a bijection onto E > 0, a_k > 0, exponent_k > 0, and the log density gets the
natural priors plus the log-determinant of its Jacobian, so the model (and every result) is
unchanged; only the sampler's coordinates differ. Measured on 160-run Chinchilla simulations
(1 % noise, 4 chains x 1000 + 1000): the law alone went from 13 leapfrog steps per draw and 29-45
divergences (seeds 0, 2, 4, target_accept 0.8) to 6.6 steps and none (seeds 0-3); with the walk,
at target_accept 0.95, from 100-218 steps per draw to 40-70 (benchmarks/law_coordinates.py). On the
power law alone fitted to 5-9 points of the NMT learning curves, 4 of 15 fits have divergences
(22 in all) against 9 of 15 (225), and the worst max r_hat is 1.02 against 1.13. An earlier run
of the same benchmark, before the offsets below were computed once at trace time (in float64
rather than in the sampler's float32), had two stuck chains there (r_hat 1.57); they did not
recur, and whether that change removed them was not isolated. See RESULTS.md, "Sampling health: what was found".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

from ..priors import median as prior_median

SITE = "law_coords"      # the sampler's coordinates (latent, a vector)
DIM = "law_coord"


class Ops(NamedTuple):
    """The array operations the maps use: JAX's for NumPyro, pytensor's for the PyMC twin."""
    exp: Callable
    log: Callable
    expm1: Callable
    softplus: Callable
    log_sigmoid: Callable
    log_softmax: Callable
    concatenate: Callable
    stack: Callable
    zeros: Callable


JAX_OPS = Ops(jnp.exp, jnp.log, jnp.expm1, jax.nn.softplus, jax.nn.log_sigmoid, jax.nn.log_softmax,
              jnp.concatenate, jnp.stack, jnp.zeros)


def pytensor_ops(pt) -> Ops:
    """:class:`Ops` in pytensor (``pt``: pytensor.tensor)."""
    return Ops(pt.exp, pt.log, pt.expm1, pt.softplus, lambda a: -pt.softplus(-a),
               pt.special.log_softmax, pt.concatenate, pt.stack, lambda n, dtype: pt.zeros(n, dtype=dtype))


@dataclass(frozen=True)
class FloorPlusPowers:
    """The law's floor parameter and its terms as (log_T_k, exponent_k) pairs."""

    floor: str
    terms: tuple[tuple[str, str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return (self.floor,) + tuple(n for pair in self.terms for n in pair)

    @property
    def size(self) -> int:
        return 2 * len(self.terms) + 1

    def labels(self) -> list[str]:
        k = len(self.terms)
        return (["log_L0"] + [f"log_slope_{t[0]}" for t in self.terms] + [f"logit_{self.floor}_share"]
                + [f"share_{t[0]}" for t in self.terms[:k - 1]])

    def applies(self, priors: dict, pooled: dict) -> bool:
        """Only for unpooled parameters whose priors live on exactly the supports the map fills
        (floor and exponents > 0, log terms real): else the natural coordinates."""
        for name in self.names:
            prior = priors[name]
            if name in pooled or isinstance(prior, dist.Delta):
                return False
            want = constraints.real if name in {t[0] for t in self.terms} else constraints.positive
            if prior.support is not want:
                return False
        return True

    def centre(self, priors: dict) -> jax.Array:
        """The coordinates of the priors' medians. The sampler's coordinates are offsets from it,
        so that chains start (uniformly within +-2 of 0, as for every site) around values the
        priors find typical, as natural coordinates near 0 do: from wider starts, short warmups
        left chains in a far, slow corner (the floor at the data, a steep exponent, sigma ~ 0)."""
        # exact medians, in numpy: constants of the program, and no JAX work at trace time
        med = {n: float(prior_median(priors[n])) for n in self.names}
        k = len(self.terms)
        log_a = np.array([med[t[0]] for t in self.terms])
        l0 = med[self.floor] + np.sum(np.exp(log_a))
        g = np.array([np.log(med[t[1]]) for t in self.terms]) + log_a
        phi = np.log(med[self.floor]) - np.log(l0 - med[self.floor])
        rho = log_a[:k - 1] - log_a[k - 1]
        return jnp.asarray(np.concatenate([[np.log(l0)], g, [phi], rho]))

    def natural(self, u, ops=None):
        """The natural parameters (in :attr:`names` order) at coordinates ``u`` (not offset);
        ``ops``: :data:`JAX_OPS` (default) or :func:`pytensor_ops` for the PyMC twin."""
        o = ops or JAX_OPS
        k = len(self.terms)
        log_l0, g, phi = u[0], u[1:k + 1], u[k + 1]
        log_w = o.log_softmax(o.concatenate([u[k + 2:], o.zeros(1, u.dtype)]))
        log_a = log_l0 + o.log_sigmoid(-phi) + log_w          # log of each term at the reference
        floor = o.exp(log_l0 + o.log_sigmoid(phi))
        out = [floor]
        for j in range(k):
            out += [log_a[j], o.exp(g[j] - log_a[j])]
        return o.stack(out)

    def log_abs_det_jacobian(self, theta, ops=None):
        """log |det d(natural)/d(coordinates)| = log E + sum_k log exponent_k.

        Ordered as (E, log_T) then exponents against (l, phi, rho) then g, the Jacobian is block
        triangular; d exponent_k / d g_k = exponent_k, and the (E, log_T) block is E times a
        matrix of determinant +-1 (subtract the log E row from each log_T row, then the last
        log_T row from the others: what is left is a permuted identity)."""
        o = ops or JAX_OPS
        return o.log(theta[0]) + sum(o.log(theta[2 + 2 * j]) for j in range(len(self.terms)))

    def sample(self, numpyro, priors: dict) -> dict:
        """Sample the coordinates; add the natural priors and the Jacobian's log-determinant;
        return the natural parameters as deterministic sites."""
        offset = numpyro.sample(SITE, dist.ImproperUniform(constraints.real, (), (self.size,)))
        theta = self.natural(offset + self.centre(priors))
        log_prior = sum(priors[n].log_prob(theta[i]) for i, n in enumerate(self.names))
        numpyro.factor(f"{SITE}_prior", log_prior + self.log_abs_det_jacobian(theta))
        return {n: numpyro.deterministic(n, theta[i]) for i, n in enumerate(self.names)}

    def pymc_sample(self, pm, pt, priors: dict, prior_dist) -> dict:
        """The same in a PyMC model (whose coords must hold :data:`DIM`: :meth:`labels`): a flat
        vector, the priors and the log-determinant as a potential, the natural parameters as
        deterministics. ``prior_dist(prior, name)`` is the PyMC distribution of a NumPyro prior."""
        ops = pytensor_ops(pt)
        offset = pm.Flat(SITE, dims=DIM)
        theta = self.natural(offset + np.asarray(self.centre(priors), dtype=np.float64), ops)
        log_prior = sum(pm.logp(prior_dist(priors[n], n), theta[i]) for i, n in enumerate(self.names))
        pm.Potential(f"{SITE}_prior", log_prior + self.log_abs_det_jacobian(theta, ops))
        return {n: pm.Deterministic(n, theta[i]) for i, n in enumerate(self.names)}


@dataclass(frozen=True)
class FloorTimesExpPower:
    """Coordinates for a term U = E·exp(u·(N/N0)^-gamma), u = exp(log_u) (Farseer's N-term).

    The data fix U at the reference, U0 = E·e^u, and its slope there, -gamma·u·U0; the floor E and
    the curvature trade along a ridge (on Epoch, E, log_u and gamma correlate at +-0.99 in the
    natural coordinates). NUTS moves in

    * l = log U0;
    * g = log(gamma·u·U0), the log of the (minus) slope of U in log N at the reference;
    * q = logit(E / U0) = logit(e^-u), the floor's share of U0;

    each as an offset from its value at the priors' medians, like :class:`FloorPlusPowers`."""

    floor: str
    log_scale: str
    exponent: str

    @property
    def names(self) -> tuple[str, ...]:
        return (self.floor, self.log_scale, self.exponent)

    size = 3

    def labels(self) -> list[str]:
        return ["log_U0", f"log_slope_{self.log_scale}", f"logit_{self.floor}_share"]

    def applies(self, priors: dict, pooled: dict) -> bool:
        """Only for unpooled parameters on the supports the map fills (E, gamma > 0; log_u real)."""
        want = {self.floor: constraints.positive, self.log_scale: constraints.real,
                self.exponent: constraints.positive}
        return all(name not in pooled and not isinstance(priors[name], dist.Delta)
                   and priors[name].support is want[name] for name in self.names)

    def centre(self, priors: dict) -> jax.Array:
        """The coordinates of the priors' medians (see :meth:`FloorPlusPowers.centre`)."""
        e, log_u, gamma = (float(prior_median(priors[n])) for n in self.names)
        u = np.exp(log_u)
        log_u0 = np.log(e) + u
        q = -u - np.log(-np.expm1(-u))
        return jnp.asarray([log_u0, np.log(gamma) + log_u + log_u0, q])

    def natural(self, c, ops=None):
        """(E, log_u, gamma) at coordinates ``c`` (not offset); ``ops`` as for
        :meth:`FloorPlusPowers.natural`."""
        o = ops or JAX_OPS
        log_u0, g, q = c[0], c[1], c[2]
        u = o.softplus(-q)                 # e^-u = sigmoid(q)
        floor = o.exp(log_u0 + o.log_sigmoid(q))
        log_u = o.log(u)
        return o.stack([floor, log_u, o.exp(g - log_u - log_u0)])

    def log_abs_det_jacobian(self, theta, ops=None):
        """log |det d(E, log_u, gamma)/d(l, q, g)| = log E + log gamma + log(1 - e^-u) - log u.

        Lower block triangular in that order: dE/dl = E, d log_u/dq = -sigmoid(-q)/u with
        sigmoid(-q) = 1 - e^-u, d gamma/dg = gamma."""
        o = ops or JAX_OPS
        u = o.exp(theta[1])
        return o.log(theta[0]) + o.log(theta[2]) + o.log(-o.expm1(-u)) - theta[1]

    sample = FloorPlusPowers.sample
    pymc_sample = FloorPlusPowers.pymc_sample
