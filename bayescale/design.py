"""The one centring of a law's inputs, and the per-row columns its observation model needs.

A law's mean function sees every input on its reference scale: log(input) - log(reference), or
input - reference for inputs the law lists in ``linear_inputs``. The references are the means of
the fitted data (N0, D0 near the data's geometric mean), so that log A and alpha of
``A·(N/N0)^-alpha`` are nearly uncorrelated in the posterior. Fitting, prediction, allocation and
the baselines all centre through here, in float64.
"""
from __future__ import annotations

import numpy as np


def reference_scales(law, inputs: dict) -> dict[str, float]:
    """Each input's reference: the mean of log(input), or of the input itself for linear inputs."""
    return {k: float(np.mean(np.asarray(inputs[k], dtype=np.float64) if k in law.linear_inputs
                             else np.log(np.asarray(inputs[k], dtype=np.float64))))
            for k in law.inputs}


def centre(law, inputs: dict, logref: dict) -> dict[str, np.ndarray]:
    """The law's inputs on their reference scales (float64), from raw values (any shapes)."""
    return centre_log(law, {k: np.asarray(inputs[k], dtype=np.float64) if k in law.linear_inputs
                            else np.log(np.asarray(inputs[k], dtype=np.float64)) for k in law.inputs},
                      logref)


def centre_log(law, values: dict, logref: dict) -> dict[str, np.ndarray]:
    """As :func:`centre`, from values already on the centring scale (log of the input, or the
    input itself for linear inputs)."""
    return {k: np.asarray(values[k], dtype=np.float64) - logref[k] for k in law.inputs}


def size_inputs(log_params, log_tokens) -> dict:
    """Log of every size input a law may take, from log N and log D: params, tokens, compute = 6ND
    and multiplier = D/N (tokens per parameter)."""
    return {"params": log_params, "tokens": log_tokens, "compute": np.log(6.0) + log_params + log_tokens,
            "multiplier": log_tokens - log_params}


def extra_columns(frame, names) -> dict[str, np.ndarray]:
    """The per-row columns ``names`` of ``frame`` as float64 arrays."""
    return {k: frame[k].to_numpy(np.float64) for k in names}
