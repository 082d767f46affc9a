"""Learning-rate schedules and the two areas of the LR-annealing law (Tissue et al. 2024).

The law L(s) = L0 + A·S1^-alpha - C·S2 (``bayescale.models.lr_annealing``) reads a schedule
through two numbers per step s:

* S1, the forward area: the sum of the learning rates of steps 1..s;
* S2, the annealing area with momentum: m_i = lambda·m_{i-1} + (eta_{i-1} - eta_i) and
  S2 = m_1 + ... + m_s, with decay factor lambda (0.999 in the paper). Warmup steps do not count
  in S2 (a rising learning rate is not annealing); they do count in S1.

Areas are in units of the peak learning rate times ``unit`` steps, by default the momentum's time scale
1 / (1 - lambda) (1000 steps for lambda = 0.999). Then S2 of a long decay from the peak to 0 is close to
1 whatever lambda, so C is about the loss drop of a full anneal and the law's priors do not depend on
how long a run is. Runs with another peak learning rate: pass ``peak`` relative to the reference run.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from .errors import BayescaleError

SCHEDULES = ("constant", "cosine", "wsd")
DECAY = 0.999


def lr_schedule(name: str, total_steps: int, *, warmup: int = 0, peak: float = 1.0, final: float = 0.0,
                cooldown: float = 0.1) -> np.ndarray:
    """The learning rate of steps 1..total_steps (index 0 is step 1).

    ``constant``: linear warmup then ``peak``; ``cosine``: warmup then a half cosine from ``peak`` to
    ``final`` at the last step; ``wsd``: warmup, ``peak``, then a linear decay to ``final`` over the
    last ``cooldown`` fraction of the steps.
    """
    if name not in SCHEDULES:
        raise BayescaleError(f"unknown schedule {name!r}; choose one of {list(SCHEDULES)} or pass an array "
                             "of learning rates per step")
    total_steps = int(total_steps)
    if total_steps < 1 or not 0 <= warmup < total_steps:
        raise BayescaleError(f"need total_steps >= 1 and 0 <= warmup < total_steps, got {total_steps} and {warmup}")
    if not 0 < cooldown <= 1:
        raise BayescaleError(f"cooldown is a fraction of the steps in (0, 1], got {cooldown}")
    s = np.arange(1, total_steps + 1, dtype=np.float64)
    lr = np.full(total_steps, float(peak))
    after = s > warmup
    if name == "cosine":
        frac = (s - warmup) / (total_steps - warmup)
        lr = final + (peak - final) * 0.5 * (1 + np.cos(np.pi * frac))
    elif name == "wsd":
        start = total_steps - cooldown * total_steps
        frac = np.clip((s - start) / (total_steps - start), 0.0, 1.0)
        lr = peak - (peak - final) * frac
    if warmup:
        lr = np.where(after, lr, peak * s / warmup)
    return lr


def annealing_areas(lrs, steps=None, *, warmup: int = 0, decay: float = DECAY,
                    unit: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(S1, S2) after each step in ``steps`` (1-based; default every step) of the schedule ``lrs``.

    ``lrs[i]`` is the learning rate of step i + 1; the first ``warmup`` steps add to S1 only.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    if lrs.ndim != 1 or lrs.size == 0 or not np.all(np.isfinite(lrs)) or np.any(lrs < 0):
        raise BayescaleError("lrs must be a non-empty 1-d array of finite learning rates >= 0, one per step")
    if not 0 <= decay < 1:
        raise BayescaleError(f"decay (lambda) must lie in [0, 1), got {decay}")
    unit = 1.0 / (1.0 - decay) if unit is None else float(unit)
    drop = np.zeros_like(lrs)
    drop[1:] = lrs[:-1] - lrs[1:]
    drop[: max(int(warmup), 1)] = 0.0
    momentum = lfilter([1.0], [1.0, -decay], drop)  # m_i = decay * m_{i-1} + drop_i
    s1, s2 = np.cumsum(lrs) / unit, np.cumsum(momentum) / unit
    if steps is None:
        return s1, s2
    idx = np.asarray(steps, dtype=np.int64)
    if np.any(idx < 1) or np.any(idx > lrs.size):
        raise BayescaleError(f"steps must lie in 1..{lrs.size} (the schedule's length), got "
                             f"{int(idx.min())}..{int(idx.max())}")
    return s1[idx - 1], s2[idx - 1]


def schedule_areas(name: str, total_steps: int, steps=None, *, warmup: int = 0, peak: float = 1.0,
                   final: float = 0.0, cooldown: float = 0.1, decay: float = DECAY,
                   unit: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(S1, S2) of a named schedule (see :func:`lr_schedule`) after each step in ``steps``."""
    lrs = lr_schedule(name, total_steps, warmup=warmup, peak=peak, final=final, cooldown=cooldown)
    return annealing_areas(lrs, steps, warmup=warmup, decay=decay, unit=unit)


def cooldown_areas(begin: int, end: int, *, warmup: int = 0, peak: float = 1.0, decay: float = DECAY,
                   unit: float | None = None) -> tuple[float, float]:
    """(S1, S2) at step ``end`` of a branch that holds ``peak`` until step ``begin`` and then decays
    linearly to 0 at step ``end`` (a WSD cooldown, as in the Gemstones cooldown branches)."""
    begin, end = int(begin), int(end)
    if not 0 < begin < end:
        raise BayescaleError(f"a cooldown needs 0 < begin < end, got begin={begin}, end={end}")
    s = np.arange(1, end + 1, dtype=np.float64)
    lr = np.where(s <= begin, peak, peak * (end - s) / (end - begin))
    if warmup:
        lr = np.where(s > warmup, lr, peak * s / warmup)
    s1, s2 = annealing_areas(lr, [end], warmup=warmup, decay=decay, unit=unit)
    return float(s1[0]), float(s2[0])
