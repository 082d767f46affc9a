"""Model discrepancy: what the law misses, growing with the distance from the fitted design.

A law is never exactly right. On the response's link scale (log for losses, logit for rates) the
model adds a zero-mean term delta(x) to the law's curve:

    link(mu_observed) = link(curve(x; theta)) + delta(x),
    delta(x) = sum over inputs k of an integrated random walk W_k(v_k), anchored at v_k = 0,

where v_k is axis k centred on its reference scale, in decades (log inputs) or in standard
deviations of the fitted data (linear inputs). The axes are the law's inputs, and for a law in
parameters N and tokens D also compute (N·D) and tokens per parameter (D/N): a run larger in both
lies beyond the ladder in compute even when N and D each lie inside their own ranges, and a sum of
walks along N and D alone, or along compute and ratio alone, cannot bend the curve along the
other pair (on Epoch's runs with the largest 10 % by compute held out, walks along compute and
ratio alone covered 0.71 of them at 90 %, the four walks 1.0). An integrated random walk is the cubic
smoothing-spline prior: it starts at 0 with slope 0 at the reference (the law's level and exponent
already fit those), bends with curvature whose size is set by one scale s, and its variance grows
as s^2 |v|^3 / 3, so the term is small where the runs are and widens with every decade beyond.
Inside the fitted range the data inform both the bends (the law's misfit) and s; beyond it the
walk continues with fresh increments, drawn at prediction time. It is discretised with knots
every ``h`` (the larger half-span of the data divided by one to four: one knot per side for
every 8 distinct values along the axis, so the walk bends more coarsely than the data are spaced
and cannot pass through every point in place of the noise), each knot carrying an increment
z_j ~ Normal(0, 1):

    W(v) = s · sum_j sqrt(h) · z_j · (v - t_j)_+     (knots t_j > 0; mirrored for t_j < 0).

A walk fitted to fewer than 8 distinct runs (a 5-point curve) has no knots inside the runs: a
bend there could pass through every point, and on such curves the noise and the walk traded the
scatter between two modes that chains did not leave (small noise and a large walk, or the
reverse). It is zero over the runs and starts at their edge, with knots every half decade (or half
a standard deviation, for a linear input) beyond them, so a prediction past the runs still
widens; the data then say nothing about s, which keeps its prior. The same holds along an axis
the runs do not spread along (a fixed tokens-per-parameter ladder). With a walk per group (below)
asked for on such thin groups, each group's walk starts at the edge of its own runs.

Where the law's own parameters vary by a grouping (ten task curves, three corpora), each group's
curve misses the law in its own way: one walk shared by all would bend them alike, and its scale
would grow to cover misfits of opposite sign. So by default (``discrepancy_by="auto"``) each
label of that grouping gets its own walk, all with the one scale s (the cross-study prior speaks
of s): z_j becomes z_{g,j}, and an unseen group's walk is drawn from its prior at prediction time.

Why this form (and not a squared-exponential Gaussian process, or a variance term outside the
data only): a stationary process reverts to a fixed variance far from the data, so its intervals
stop widening just where extrapolation is hardest; a term that is zero inside the data cannot
learn from the law's visible misfit. The walk does both, costs a handful of latent variables, and
is sampled with the law, so it appears in SBC, in the PyMC twin and in the saved fit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np
import numpyro
import numpyro.distributions as dist

from .errors import BayescaleError
from .priors import describe, parse

KNOTS_PER_SIDE = 4        # at most, on each side of the reference
POINTS_PER_KNOT = 8       # distinct values of an axis per knot on each side (at least one knot)
SCALE = "disc_scale"   # the walk's scale s (latent)
STEPS = "disc_z"       # its standardised increments at the knots (latent)
KNOT_DIM = "disc_knot"


@dataclass
class Discrepancy:
    """The discretised walks of one fit: per input its unit, knot spacing and signed knots."""

    prior: dist.Distribution
    inputs: list[str]                # the law's inputs (the walks' axes follow from them)
    units: dict[str, float]          # axis -> divisor turning the centred axis into v
    steps: dict[str, float]          # input -> knot spacing h (in v)
    knots: dict[str, list[float]]    # input -> knot positions t_j (in v), signed
    group: str | None = None         # a walk per label of this grouping, sharing the scale s
    n_groups: int = 1
    # input -> [lowest, highest] v of the fitted runs along an axis without fitted knots: its walk
    # is zero up to there and starts beyond
    edges: dict[str, list[float]] = field(default_factory=dict)
    # with a walk per group: input -> each group's [lowest, highest] v along such an axis, where its
    # own walk starts (a group whose runs end earlier widens from there)
    group_edges: dict[str, list[list[float]]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(t) for t in self.knots.values())

    def labels(self) -> list[str]:
        return [f"{k}:{t:+.3g}" for k in self.knots for t in self.knots[k]]

    def key(self) -> tuple:
        return (describe(self.prior), tuple((k, len(t)) for k, t in self.knots.items()), self.group, self.n_groups)

    def to_json(self) -> dict:
        return {"prior": describe(self.prior, digits=15), "inputs": self.inputs, "units": self.units,
                "steps": self.steps, "knots": self.knots, "group": self.group, "n_groups": self.n_groups,
                "edges": self.edges, "group_edges": self.group_edges}

    @classmethod
    def from_json(cls, d: dict) -> "Discrepancy":
        return cls(prior=parse(d["prior"]), inputs=list(d["inputs"]),
                   units={k: float(v) for k, v in d["units"].items()},
                   steps={k: float(v) for k, v in d["steps"].items()},
                   knots={k: [float(t) for t in v] for k, v in d["knots"].items()},
                   group=d.get("group"), n_groups=int(d.get("n_groups", 1)),
                   edges={k: [float(e) for e in v] for k, v in d.get("edges", {}).items()},
                   group_edges={k: [[float(e) for e in g] for g in v] for k, v in d.get("group_edges", {}).items()})


PRIOR_FILE = "discrepancy_prior.json"


def learned_prior(link: str) -> dist.Distribution:
    """The cross-study prior of the walk's scale for a link ("log" or "logit"), shipped with the
    package (see the file's provenance and benchmarks/discrepancy_prior.py, which rebuilds it)."""
    from importlib import resources

    try:
        table = json.loads(resources.files("bayescale").joinpath(PRIOR_FILE).read_text())
    except FileNotFoundError as exc:
        raise BayescaleError(f"this installation has no learned discrepancy prior ({PRIOR_FILE}); "
                             "give discrepancy='none' or a prior such as 'LogNormal(-5, 1)'") from exc
    if link not in table["priors"]:
        raise BayescaleError(f"no learned discrepancy prior for the {link} link (have {sorted(table['priors'])}); "
                             "give discrepancy='none' or a prior such as 'LogNormal(-5, 1)'")
    return parse(table["priors"][link])


def coordinates(inputs, x: dict) -> dict:
    """The axes the walks run along, from the law's centred inputs: the inputs themselves, and for
    a law in parameters and tokens also compute (log N + log D) and tokens per parameter
    (log D - log N): four directions in the (log N, log D) plane, so that a run beyond the runs
    along any of them (larger in both N and D, or with more parameters than any fitted run) gets
    a widening term, and a misfit along any of them can bend the curve."""
    if {"params", "tokens"} <= set(inputs):
        out = {k: x[k] for k in inputs}
        out.update(compute=x["params"] + x["tokens"], tokens_per_param=x["tokens"] - x["params"])
        return out
    return {k: x[k] for k in inputs}


GROUP_WALK_MIN_POINTS = 8   # "auto": a walk per group only where every group has this many distinct runs


def walk_group(law, by, pooled: dict[str, str], data, groupings=("family", "dataset", "task")) -> tuple[str | None, list[str]]:
    """Which grouping gets its own walk (sharing one scale), and notes. ``by="auto"``: the grouping
    the law's own parameters vary by, when there is exactly one and every group has at least
    :data:`GROUP_WALK_MIN_POINTS` distinct runs (curves that differ by group miss the law
    differently, and one walk shared by all would bend them alike; but a group's own walk is only
    identified by a curve of its own); ``None``/"none": one walk for every row; or a grouping
    column (taken as given). A grouping with one label in the data gives one walk."""
    if by is None or (isinstance(by, str) and by.lower() == "none"):
        return None, []
    auto = isinstance(by, str) and by.lower() == "auto"
    if auto:
        found = sorted({g for k, g in pooled.items() if k in law.params})
        if len(found) != 1:
            notes = [] if not found else [f"the law's parameters vary by {found}: one discrepancy walk is shared by "
                                          "every row (give discrepancy_by=<grouping> for a walk per group)"]
            return None, notes
        by = found[0]
    if by not in groupings:
        raise BayescaleError(f"discrepancy_by must be 'auto', 'none' or a grouping column {list(groupings)}, got {by!r}")
    if len(data.coords.get(by, [])) < 2:
        return None, []
    if auto:
        runs = np.column_stack([np.asarray(data.inputs[k], np.float64) for k in law.inputs])
        counts = {lab: len(np.unique(runs[data.group_index[by] == i], axis=0)) for i, lab in enumerate(data.coords[by])}
        thin = {lab: c for lab, c in counts.items() if c < GROUP_WALK_MIN_POINTS}
        if thin:
            return None, [f"one discrepancy walk is shared by every {by}: a walk per {by} needs "
                          f"{GROUP_WALK_MIN_POINTS} distinct runs in each, and {len(thin)} have fewer "
                          f"(e.g. {next(iter(thin))!r}: {next(iter(thin.values()))}); "
                          f"discrepancy_by={by!r} asks for one per {by} anyway"]
    return by, []


FLAT_AXIS = 1e-6       # decades: an axis the runs spread less than this along has no fitted knots
STEP_OFF_AXIS = 0.5    # decades between the walk's knots beyond the runs along an axis without fitted knots


def knots_per_side(values: np.ndarray, rows_group: np.ndarray | None = None) -> int:
    """How finely the walk may bend along an axis: one knot per side for every
    :data:`POINTS_PER_KNOT` distinct values of it (in the thinnest group, for a walk per group),
    from 1 to :data:`KNOTS_PER_SIDE`. A walk with about as many bends as there are points can
    pass through every point: on 5-9 point curves it then competes with the noise for the
    scatter, and the posterior has a second mode (tiny noise, large walk) that chains do not leave
    (and below :data:`POINTS_PER_KNOT` runs there are no fitted knots at all: :func:`fitted_runs`)."""
    values = np.round(np.asarray(values, dtype=np.float64), 9)
    if rows_group is None:
        distinct = len(np.unique(values))
    else:
        distinct = min(len(np.unique(values[rows_group == g])) for g in np.unique(rows_group))
    return int(np.clip(distinct // POINTS_PER_KNOT, 1, KNOTS_PER_SIDE))


def fitted_runs(inputs, x: dict, rows_group: np.ndarray | None = None,
                labels: np.ndarray | None = None) -> int:
    """Distinct runs one walk is fitted to (a run: its inputs and, where the law is pooled over
    groupings, its group labels ``labels``, rows x groupings): all of them, or for a walk per
    group the thinnest group's."""
    runs = np.round(np.column_stack([np.asarray(x[k], dtype=np.float64) for k in inputs]), 9)
    if labels is not None and np.size(labels):
        runs = np.column_stack([runs, np.asarray(labels, dtype=np.float64).reshape(len(runs), -1)])
    if rows_group is None:
        return len(np.unique(runs, axis=0))
    return min(len(np.unique(runs[rows_group == g], axis=0)) for g in np.unique(rows_group))


def resolve(law, setting, x: dict, group: str | None = None, n_groups: int = 1,
            rows_group: np.ndarray | None = None, labels: np.ndarray | None = None) -> Discrepancy | None:
    """The discrepancy of a fit: ``"none"`` (or None) for the law alone, ``"auto"`` for the prior
    learned across the public studies (:func:`learned_prior`), or a prior for the walk's scale s
    (text such as "HalfNormal(0.01)" or a NumPyro distribution, in link units per decade^1.5), with
    knots placed over the centred inputs ``x`` of the data (:func:`knots_per_side`); with
    ``group``, one walk per of its ``n_groups`` labels (``rows_group``: each row's), all with the
    one scale s. ``labels`` (rows x groupings the law is pooled over) tells runs of different
    groups at the same inputs apart when counting the runs a walk is fitted to (:func:`fitted_runs`)."""
    if setting is None or (isinstance(setting, str) and setting.lower() == "none"):
        return None
    if isinstance(setting, str) and setting.lower() == "auto":
        setting = learned_prior(law.observation.link_name)
    try:
        prior = parse(setting) if isinstance(setting, str) else setting
    except BayescaleError as exc:
        raise BayescaleError(f"discrepancy must be 'auto', 'none' or a prior for its scale such as "
                             f"'HalfNormal(0.01)': {exc}") from None
    if not isinstance(prior, dist.Distribution):
        raise BayescaleError(f"discrepancy must be 'none', 'auto' or a prior for its scale such as 'HalfNormal(0.01)', "
                             f"got {setting!r}")
    support = prior.support
    draws = np.asarray(prior.sample(__import__("jax").random.PRNGKey(0), (256,)))
    if not np.all(draws >= 0):
        raise BayescaleError(f"the discrepancy scale's prior {describe(prior)} must be on s >= 0 "
                             f"(support {support}); use e.g. HalfNormal(0.01) or LogNormal(-4, 1)")
    units, steps, knots, edges, group_edges = {}, {}, {}, {}, {}
    few_runs = fitted_runs(law.inputs, x, rows_group if group else None, labels) < POINTS_PER_KNOT
    for k, values in coordinates(law.inputs, x).items():
        unit = float(np.std(values)) if k in law.linear_inputs else float(np.log(10.0))
        if k in law.linear_inputs and not unit > 0:
            continue                      # a constant linear input: no scale to walk along
        v = np.asarray(values, dtype=np.float64) / (unit if unit > 0 else 1.0)
        half = max(float(v.max()), float(-v.min()))
        units[k] = unit if unit > 0 else 1.0
        if few_runs or half < FLAT_AXIS:
            # too few runs to tell a bend from the noise (or no spread along this axis: a fixed
            # tokens-per-parameter ladder): no fitted knots, but beyond the runs the walk goes on
            # from their edge, so a prediction off them is wider, not a silent law-only guess
            steps[k], knots[k], edges[k] = STEP_OFF_AXIS, [], [float(v.min()), float(v.max())]
            if group and rows_group is not None:
                group_edges[k] = [[float(v[rows_group == g].min()), float(v[rows_group == g].max())]
                                  for g in range(n_groups)]
            continue
        h = half / knots_per_side(v, rows_group if group else None)
        pos = np.arange(h / 2, float(v.max()), h)
        neg = -np.arange(h / 2, float(-v.min()), h)
        steps[k] = h
        knots[k] = sorted([float(t) for t in np.concatenate([neg, pos])])
    return Discrepancy(prior=prior, inputs=list(law.inputs), units=units, steps=steps, knots=knots,
                       group=group, n_groups=n_groups if group else 1, edges=edges, group_edges=group_edges)


def basis(disc: Discrepancy, x: dict, xp, knots: dict | None = None):
    """Rows x knots: sqrt(h) · (v - t)_+ for knots t > 0, sqrt(h) · (t - v)_+ for t < 0 (knots in
    their sorted order, axis by axis). ``x`` holds the law's centred inputs, 1-d rows (the walks'
    axes are computed from them, see :func:`coordinates`); ``xp`` is numpy, jax.numpy or
    pytensor.tensor."""
    knots = disc.knots if knots is None else knots
    x = coordinates(disc.inputs, x)
    cols = []
    for k, ts in knots.items():
        ts = np.sort(np.asarray(ts, dtype=np.float64))
        if not len(ts):
            continue
        v = (x[k] / disc.units[k])[:, None]
        root_h = float(np.sqrt(disc.steps[k]))
        neg, pos = ts[ts < 0], ts[ts > 0]
        if len(neg):
            cols.append(xp.maximum(neg[None, :] - v, 0.0) * root_h)
        if len(pos):
            cols.append(xp.maximum(v - pos[None, :], 0.0) * root_h)
    if not cols:    # no axis has knots here: a basis with no columns
        rows = np.broadcast_shapes(*[np.shape(v) for v in x.values()])[0]
        return xp.zeros((rows, 0))
    return xp.concatenate(cols, axis=1)


def walk_inputs(disc: Discrepancy, x: dict, group_index: dict | None = None) -> dict:
    """The walk's data for the sampler: its basis at the fitted rows (rows x knots) and, for a walk
    per group, each row's group index. It is passed to the compiled model as data, not built into
    it, so one compiled program serves every data set of the same shape whatever its knots (a
    program built with one data set's knots and reused for another's would bend the curve at the
    wrong places)."""
    out = {"basis": np.asarray(basis(disc, x, np), dtype=np.float64)}
    if disc.group:
        out["group"] = np.asarray(group_index[disc.group], dtype=np.int32)
    return out


def sample_term(disc: Discrepancy, walk: dict):
    """NumPyro: sample the scale and the increments; return delta at the fitted rows (``walk``:
    :func:`walk_inputs`, padded like the rows)."""
    s = numpyro.sample(SCALE, disc.prior)
    if not disc.size:     # no fitted knots: the walk is zero over the runs, s keeps its prior
        return 0.0
    if not disc.group:
        with numpyro.plate(KNOT_DIM, disc.size):
            z = numpyro.sample(STEPS, dist.Normal(0.0, 1.0))
        return s * (walk["basis"] @ z)
    with numpyro.plate("disc_group", disc.n_groups, dim=-2), numpyro.plate(KNOT_DIM, disc.size, dim=-1):
        z = numpyro.sample(STEPS, dist.Normal(0.0, 1.0))      # groups x knots
    return s * (walk["basis"] * z[walk["group"]]).sum(axis=-1)


def pymc_term(pm, pt, disc: Discrepancy, x: dict, prior_maker, idx=None):
    """PyMC: the same term (``prior_maker(name, prior)`` builds the scale's prior; ``idx``: the
    rows' group indices by grouping)."""
    s = prior_maker(SCALE, disc.prior)
    if not disc.size:
        return 0.0 * s
    if not disc.group:
        z = pm.Normal(STEPS, mu=0.0, sigma=1.0, dims=KNOT_DIM)
        return s * pt.dot(basis(disc, x, pt), z)
    z = pm.Normal(STEPS, mu=0.0, sigma=1.0, dims=(disc.group, KNOT_DIM))
    return s * (basis(disc, x, pt) * z[idx[disc.group]]).sum(axis=1)


def extended_knots(disc: Discrepancy, v_lo: dict, v_hi: dict) -> dict:
    """Knots beyond the fitted ones, at the same spacing, out to [v_lo, v_hi] per input (on an axis
    without fitted knots, from the runs' edges ``disc.edges``)."""
    out = {}
    for k, ts in disc.knots.items():
        h = disc.steps[k]
        lo, hi = disc.edges.get(k, (0.0, 0.0))   # the walk starts at the runs' edge on an axis without knots
        top = max([t for t in ts if t > 0], default=hi - h / 2)
        bottom = min([t for t in ts if t < 0], default=lo + h / 2)
        up = np.arange(top + h, v_hi[k] + h, h) if v_hi[k] > top + h / 2 else np.array([])
        down = -np.arange(-bottom + h, -v_lo[k] + h, h) if v_lo[k] < bottom - h / 2 else np.array([])
        out[k] = [float(t) for t in np.concatenate([down, up])]
    return out


def predict_term(disc: Discrepancy, scale: np.ndarray, steps: np.ndarray, x: dict,
                 rng: np.random.Generator, row_group: np.ndarray | None = None) -> np.ndarray:
    """Draws (samples x rows) of delta at centred inputs ``x`` (each rows, or samples x rows), given
    posterior draws of the scale (samples) and increments (samples x knots; for a walk per group
    samples x groups x knots, with ``row_group`` each row's index into the groups); beyond the
    fitted knots each walk goes on with fresh increments from its prior."""
    n = len(scale)
    shape = np.broadcast_shapes(*[np.shape(v) for v in x.values()], (n, 1))
    if row_group is not None and disc.group_edges:
        # each group's walk starts at its own runs' edge (a group unseen by the fit: all the runs')
        row_group = np.asarray(row_group)
        full = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), shape) for k, v in x.items()}
        delta = np.zeros(shape)
        for g in np.unique(row_group):
            cols = row_group == g
            own = {k: e[g] for k, e in disc.group_edges.items() if g < len(e)}
            one = replace(disc, group=None, n_groups=1, edges={**disc.edges, **own}, group_edges={})
            delta[:, cols] = predict_term(one, scale, steps[:, g, :], {k: v[:, cols] for k, v in full.items()}, rng)
        return delta
    flat = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), shape).reshape(-1) for k, v in x.items()}
    axes = coordinates(disc.inputs, flat)

    def walk(knots, z):
        b = basis(disc, flat, np, knots=knots).reshape(shape + (-1,))
        if row_group is None:
            return scale[:, None] * np.einsum("drk,dk->dr", b, z)
        return scale[:, None] * np.einsum("drk,drk->dr", b, z[:, row_group, :])

    delta = walk(None, steps) if disc.size else np.zeros(shape)
    v_lo = {k: float(np.min(axes[k] / disc.units[k])) for k in disc.knots}
    v_hi = {k: float(np.max(axes[k] / disc.units[k])) for k in disc.knots}
    more = extended_knots(disc, v_lo, v_hi)
    n_more = sum(len(t) for t in more.values())
    if n_more:
        fresh = (n, n_more) if row_group is None else (n, steps.shape[1], n_more)
        delta = delta + walk(more, rng.standard_normal(fresh))
    return delta
