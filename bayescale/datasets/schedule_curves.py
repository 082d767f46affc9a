"""Learning-rate-annealing curves from the Gemstones tables, with both schedule areas (S1, S2) of
the ``lr-annealing`` law."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import schedules
from ..errors import BayescaleError
from . import load


def gemstones_curves(data_home=None, *, table: str = "gemstones", decay: float = schedules.DECAY,
                     warmup: int = 0) -> pd.DataFrame:
    """Gemstones loss curves with S1 and S2: the constant-LR ('hot') checkpoints and the ends of the
    10 %-of-tokens linear cooldown branches (``schedule`` = 'constant' or 'cooldown').

    The learning rate is in units of each run's peak (the peak itself is not in the data; a per-run
    A and C absorb it). ``family`` is set to the model shape so that the law's per-family parameters
    are per model. ``table='gemstones_other_losses'`` gives the hot curves on FineWeb-Edu / DCLM
    (``task``), which have no cooldown branches. Warmup is not in the data and is taken as 0 by
    default: it is short next to the first checkpoint (2,385 steps) in any usual recipe.
    """
    if table == "gemstones":
        hot = load("gemstones", data_home=data_home)
        begin = load("gemstones", data_home=data_home, variant="cool_begin")
        end = load("gemstones", data_home=data_home, variant="cool_end")
        if len(begin) != len(end) or not (begin["run"].to_numpy() == end["run"].to_numpy()).all():
            raise BayescaleError("gemstones: the cool_begin and cool_end tables do not line up row by row; "
                                 "re-fetch gemstones")
        cool = end.assign(branch_step=begin["step"].to_numpy(), schedule="cooldown")
    else:
        hot, cool = load(table, data_home=data_home), None
    hot = hot.assign(branch_step=np.nan, schedule="constant")
    hot["S1"], hot["S2"] = schedules.annealing_areas(np.ones(int(hot["step"].max())), hot["step"],
                                                     warmup=warmup, decay=decay)
    parts = [hot]
    if cool is not None:
        areas = [schedules.cooldown_areas(b, e, warmup=warmup, decay=decay)
                 for b, e in zip(cool["branch_step"], cool["step"])]
        cool["S1"], cool["S2"] = np.asarray(areas).T
        parts.append(cool)
    df = pd.concat(parts, ignore_index=True)
    df["family"] = df["shape"]
    return df
