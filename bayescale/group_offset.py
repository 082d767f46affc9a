"""Group offsets: a shift of the law's curve per group, shared across every scale.

Runs from many labs or model families follow one law only up to a per-family shift: at the same
compute one family is consistently better than another (its data, tokenizer or recipe). On the
response's link scale (log for losses, logit for rates) the model adds, for each offset term k and
the group g_k of each run,

    link(mu_observed) = link(curve(x; theta)) + delta(x) + sum_k b_k[g_k],
    b_k[g] = tau_k · z_k[g],  z_k[g] ~ Normal(0, 1),

with delta the model-discrepancy walk (:mod:`bayescale.discrepancy`) and tau_k the spread of term
k's groups. A term is a grouping column ("family") or an interaction of two ("family*task": one
offset per (family, task) pair, for a family whose advantage differs by task). Terms are crossed
effects: the law's own parameters may vary by another grouping (e.g. level and slope by task)
while a family's offset is shared by all its rows. ``offset=["family", "family*task"]`` gives
each family a shift on every task plus a smaller, task-specific one.

A new run of a group the fit has seen is predicted with that group's offset (learned from its
smaller members); a run of an unseen group gets an offset drawn from Normal(0, tau_k), so its
interval carries the spread between groups.

It is opt-in (``bs.fit(..., offset="family")``): only the user knows whether a grouping names
families that differ in a way the law does not model. A term over a grouping that already pools
one of the law's parameters is refused, since it would duplicate what those parameters let each
group do.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd

from .errors import BayescaleError
from .predict import label_indices, unseen_labels_note
from .priors import describe, parse

# Weakly informative spreads of the groups on the link scale: about 10 % in loss between families
# at equal inputs, or about one unit of logit in a rate. Not learned from the benchmark studies.
DEFAULT_PRIORS = {"log": "HalfNormal(0.1)", "logit": "HalfNormal(1.0)"}
LABEL_JOIN = " / "    # how an interaction's labels read, e.g. "Qwen1.5 / leaderboard_math_hard"


@dataclass
class GroupOffset:
    """One offset term: the grouping (a column, or two joined by '*') and the prior of its spread."""

    group: str
    prior: dist.Distribution

    @property
    def columns(self) -> list[str]:
        return self.group.split("*")

    @property
    def dim(self) -> str:
        """Its grouping's name as a dimension of the posterior: "family", "family_x_task"."""
        return "_x_".join(self.columns)

    @property
    def scale_name(self) -> str:
        return f"offset_{self.dim}_tau"

    @property
    def steps_name(self) -> str:
        return f"offset_{self.dim}_z"

    @property
    def value_name(self) -> str:
        return f"offset_by_{self.dim}"

    def row_labels(self, frame: pd.DataFrame) -> np.ndarray:
        """Each row's group label ('' for a column the frame lacks: an unseen group)."""
        parts = [frame[c].astype(str).to_numpy() if c in frame else np.full(len(frame), "") for c in self.columns]
        out = parts[0]
        for p in parts[1:]:
            out = np.char.add(np.char.add(out.astype(str), LABEL_JOIN), p.astype(str))
        return np.asarray(out, dtype=str)

    def key(self) -> tuple:
        return (self.group, describe(self.prior))

    def to_json(self) -> dict:
        return {"group": self.group, "prior": describe(self.prior, digits=15)}

    @classmethod
    def from_json(cls, d: dict) -> "GroupOffset":
        return cls(group=str(d["group"]), prior=parse(d["prior"]))


def resolve(law, setting, pooled: dict[str, str], data, groupings=("family", "dataset", "task")) -> tuple:
    """The offset terms of a fit: None or "none" for none; a term ("family", "family*task", or
    ``{"group": ..., "prior": ...}``); or a list of terms. Interaction groupings are added to
    ``data``'s group indices and labels, so the model finds them like any grouping."""
    if setting is None or (isinstance(setting, str) and setting.lower() == "none"):
        return ()
    terms = list(setting) if isinstance(setting, (list, tuple)) else [setting]
    out = [_term(law, t, pooled, data, groupings) for t in terms]
    dims = [t.dim for t in out]
    if len(set(dims)) != len(dims):
        raise BayescaleError(f"offset terms repeat a grouping: {[t.group for t in out]}; give each once")
    return tuple(out)


def _term(law, setting, pooled, data, groupings) -> GroupOffset:
    example = "e.g. 'family', 'family*task' or {'group': 'family', 'prior': 'HalfNormal(0.5)'}"
    prior = None
    if isinstance(setting, dict):
        unknown = sorted(set(setting) - {"group", "prior"})
        if unknown or "group" not in setting:
            raise BayescaleError(f"an offset term as a dict takes keys 'group' and optionally 'prior', got "
                                 f"{sorted(setting)}; {example}")
        group, prior = setting["group"], setting.get("prior")
    else:
        group = setting
    columns = group.split("*") if isinstance(group, str) else [group]
    if not 1 <= len(columns) <= 2 or any(c not in groupings for c in columns) or len(set(columns)) != len(columns):
        raise BayescaleError(f"an offset term must be a grouping column {list(groupings)} or two joined by '*', "
                             f"got {group!r}; {example}")
    term = GroupOffset(group=group, prior=parse(DEFAULT_PRIORS[law.observation.link_name]))
    labels = term.row_labels(data.frame)
    known = sorted(set(labels.tolist()))
    if len(known) < 2:
        raise BayescaleError(f"offset by {group!r} needs at least two {group} labels in the data, found "
                             f"{len(known)} ({known}); add a '{columns[0]}' column naming each run's "
                             f"{columns[0]}, or fit without offset")
    clash = sorted(k for k, g in pooled.items() if g in columns and k in law.params)
    if clash and len(columns) == 1:
        raise BayescaleError(f"offset by {group!r} would duplicate the law parameter(s) {clash} pooled by {group}; "
                             f"pool them by another grouping (pool={{...}}) or drop the offset")
    if prior is not None:
        prior = parse(prior) if isinstance(prior, str) else prior
        if not isinstance(prior, dist.Distribution):
            raise BayescaleError(f"the offset's spread prior must be a distribution such as 'HalfNormal(0.5)', "
                                 f"got {prior!r}")
        draws = np.asarray(prior.sample(__import__("jax").random.PRNGKey(0), (256,)))
        if not np.all(draws >= 0):
            raise BayescaleError(f"the offset's spread prior {describe(prior)} must be on tau >= 0; "
                                 "use e.g. HalfNormal(0.5)")
        term.prior = prior
    if term.dim not in data.coords:   # an interaction: its labels and row indices join the data's
        index = {lab: i for i, lab in enumerate(known)}
        data.coords[term.dim] = known
        data.group_index[term.dim] = np.array([index[lab] for lab in labels], dtype=np.int64)
    return term


def sample_term(off: GroupOffset, n_groups: int, idx):
    """NumPyro: sample the spread and each group's standardised offset; return b at the rows
    (``idx``: each row's group index)."""
    tau = numpyro.sample(off.scale_name, off.prior)
    with numpyro.plate(off.dim, n_groups):
        z = numpyro.sample(off.steps_name, dist.Normal(0.0, 1.0))
    b = numpyro.deterministic(off.value_name, tau * z)
    return b[idx]


def pymc_term(pm, off: GroupOffset, idx, prior_maker):
    """PyMC: the same term (``prior_maker(name, prior)`` builds the spread's prior)."""
    tau = prior_maker(off.scale_name, off.prior)
    z = pm.Normal(off.steps_name, mu=0.0, sigma=1.0, dims=off.dim)
    b = pm.Deterministic(off.value_name, tau * z, dims=off.dim)
    return b[idx]


def predict_term(off: GroupOffset, known: list[str], table: np.ndarray, tau: np.ndarray, frame: pd.DataFrame,
                 rng: np.random.Generator, notes: list[str]) -> np.ndarray:
    """Draws (samples x rows) of b at the rows of ``frame``: the posterior offset of a group the fit
    has seen (``table``: samples x known groups), a fresh Normal(0, tau) draw per unseen group (one
    per group, shared by its rows)."""
    columns, unseen = label_indices(known, off.row_labels(frame).tolist())
    if unseen:
        table = np.concatenate([table, tau[:, None] * rng.standard_normal((len(tau), len(unseen)))], axis=1)
        notes.append(unseen_labels_note(off.group, unseen,
                                        f"their offset is drawn from the spread between {off.group} labels"))
    return np.asarray(table[:, columns], dtype=np.float64)
