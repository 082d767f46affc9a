"""Simulation-based calibration (SBC) of a law's fits.

SBC (Talts, Betancourt, Simpson, Vehtari & Gelman 2018, arXiv:1804.06788): draw parameters
theta* from the prior, data y from the model given theta*, fit the same model to y and record the
rank of theta* among L (thinned) posterior draws. If the sampler and the model are correct, every
rank is uniform on {0, ..., L}. A fit that is too narrow gives U-shaped ranks, one that is too wide
a hump, a biased one a slope.

The uniformity test used here is a chi-square goodness-of-fit test over ``bins`` bins of the rank
range. The expected count of a bin is ``n_ok * (number of rank values in the bin) / (L + 1)``, so
bins need not be of exactly equal width; the p-value is ``chi2.sf(stat, bins - 1)``.

Held-out scoring against the baselines is in :mod:`bayescale.heldout`.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pandas as pd
from scipy import stats

from .checks import check_positive_int, check_seed, check_target_accept
from .errors import BayescaleError, BayescaleWarning
from .models import get_law
from .progress import bar as progress_bar, resolve as resolve_progress
from .simulate import simulate

__all__ = ["SBCResult", "default_design", "rank_uniformity", "sbc"]


def default_design(law) -> pd.DataFrame:
    """A small grid over the law's inputs (one family, one dataset).

    One input: 10 log-spaced sizes over three decades (N 1e7-1e10, D 1e9-1e12, C 1e17-1e21).
    N and D: a 5 x 4 grid (N 1e7-1e9, D 1e9-1e11), 20 runs; C and M: the same grid as 6ND and D/N.
    """
    law = get_law(law)
    # laws with inputs other than sizes bring their own small grid; None means the default grid
    design = law.sbc_design()
    if design is not None:
        return design
    ranges = {"params": (1e7, 1e10), "tokens": (1e9, 1e12), "compute": (1e17, 1e21)}
    inputs = tuple(law.inputs)
    if len(inputs) == 1:
        lo, hi = ranges[inputs[0]]
        return pd.DataFrame({inputs[0]: np.geomspace(lo, hi, 10)})
    if set(inputs) == {"params", "tokens"}:
        n, d = np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 4), indexing="ij")
        return pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})
    if set(inputs) == {"compute", "multiplier"}:  # the same (N, D) grid, as C = 6ND and M = D/N
        n, d = np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e9, 1e11, 4), indexing="ij")
        return pd.DataFrame({"compute": 6.0 * (n * d).ravel(), "multiplier": (d / n).ravel()})
    raise BayescaleError(f"no default SBC design for law {law.spec!r} with inputs {list(inputs)}; "
                         "pass design=")


def rank_uniformity(ranks: np.ndarray, n_draws: int, bins: int) -> tuple[float, float]:
    """Chi-square test that ``ranks`` (integers in 0..n_draws) are uniform; returns (stat, p)."""
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.size == 0:
        return float("nan"), float("nan")
    bins = int(min(bins, n_draws + 1))
    # rank value r falls in bin floor(r * bins / (L + 1)); bins differ by at most one rank value
    which = np.minimum((ranks * bins) // (n_draws + 1), bins - 1)
    observed = np.bincount(which, minlength=bins)
    values = np.arange(n_draws + 1)
    per_bin = np.bincount(np.minimum((values * bins) // (n_draws + 1), bins - 1), minlength=bins)
    expected = ranks.size * per_bin / (n_draws + 1)
    stat = float(np.sum((observed - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, bins - 1))


MAX_FAILED_SHARE = 0.1   # failed simulations beyond this share: the ranks are a selected subset


@dataclass
class SBCResult:
    """Ranks and uniformity p-values of one SBC run.

    ``ranks[name]`` holds one rank in 0..``n_draws`` per successful simulation (``sim_index``
    gives their simulation numbers, ``divergences`` their fits' divergent-transition counts and
    ``fit_seconds`` their fit times, all aligned); ``pvalues[name]`` is the chi-square uniformity
    p-value over ``bins`` bins. ``failures`` lists (simulation index,
    reason) for every simulation whose data or fit failed; those contribute no rank (so a high
    failure count means the ranks describe only the prior region where things worked).
    """

    law: str
    n_sims: int
    n_draws: int
    bins: int
    ranks: dict[str, np.ndarray]
    pvalues: dict[str, float]
    chi2: dict[str, float]
    truths: dict[str, np.ndarray]
    n_divergent_fits: int
    divergences: np.ndarray
    failures: list[tuple[int, str]] = field(default_factory=list)
    fit_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sim_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    settings: dict = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    @property
    def n_ok(self) -> int:
        return self.n_sims - self.n_failed

    @property
    def min_pvalue(self) -> float:
        return float(min(self.pvalues.values())) if self.pvalues else float("nan")

    def passes(self, level: float = 0.01) -> bool:
        """Uniformity not rejected for any parameter at family-wise ``level`` (Bonferroni), from
        at most MAX_FAILED_SHARE failed simulations: the ranks of the rest describe only the prior
        region where things worked, so more failures are no pass whatever the p-values."""
        if not self.pvalues or self.n_failed > MAX_FAILED_SHARE * self.n_sims:
            return False
        return self.min_pvalue > level / len(self.pvalues)

    def failure_reasons(self) -> dict[str, int]:
        """How many simulations failed for each reason (the reason's first line)."""
        out: dict[str, int] = {}
        for _, reason in self.failures:
            key = reason.splitlines()[0][:200]
            out[key] = out.get(key, 0) + 1
        return out

    def summary(self) -> pd.DataFrame:
        rows = {}
        for name, r in self.ranks.items():
            rows[name] = {"n": len(r), "mean_rank": float(np.mean(r)) / self.n_draws,
                          "chi2": self.chi2[name], "p_value": self.pvalues[name]}
        return pd.DataFrame.from_dict(rows, orient="index")

    def histogram(self, name: str) -> np.ndarray:
        r = self.ranks[name]
        return np.bincount(np.minimum((r * self.bins) // (self.n_draws + 1), self.bins - 1),
                           minlength=self.bins)

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.3g}" for k, v in self.pvalues.items())
        return (f"<SBCResult law={self.law} sims={self.n_sims} failed={self.n_failed} "
                f"divergent_fits={self.n_divergent_fits} L={self.n_draws} bins={self.bins} p: {ps}>")


def _is_fixed(prior) -> bool:
    return type(prior).__name__ == "Delta"


def _scalar_items(name: str, value, spec) -> list[tuple[str, float, tuple]]:
    """(label, value, index) for each scalar element of a parameter."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return [(name, float(arr), ())]
    g = name.split("_by_")[-1] if "_by_" in name else None
    labels = spec.coords.get(g, list(range(arr.shape[0]))) if g else list(range(arr.shape[0]))
    return [(f"{name}[{labels[i]}]", float(arr[i]), (i,)) for i in range(arr.shape[0])]


def sbc(law, design: pd.DataFrame | None = None, *, n_sims: int = 100, seed: int = 0, chains: int = 1,
        warmup: int = 200, draws: int = 400, thin: int = 4, pool=None, priors=None, fit_priors=None,
        params=None, bins: int | None = None, target_accept: float | None = None,
        dense_mass=None, sampler: str = "nuts", scheduler: str | None = None,
        batch_options: dict | None = None, progress: bool | None = None, discrepancy=None,
        fit_discrepancy="same") -> SBCResult:
    """Simulation-based calibration of ``law`` (see the module docstring).

    Each simulation draws every parameter and the data from the prior of the NumPyro model
    (``simulate(Law, design, None, seed=...)`` with ``pool`` and ``priors``), fits it with NUTS
    (``chains`` x ``warmup`` + ``draws``; with ``fit_priors`` instead of ``priors`` when given, which
    is how a deliberately misspecified control is built), keeps every ``thin``-th draw of each chain
    (L = chains * ceil(draws / thin) draws) and records, for each parameter in ``params`` (default:
    every law and noise parameter that is sampled, not fixed, in both models), the number of kept
    draws below the true value. Vector-valued parameters (e.g. ``"log_A0_by_family"``) are ranked
    element by element.

    The sampler is compiled once: every simulation has the same law, shapes and settings, so
    :func:`bayescale.inference.sample_posterior` reuses its cached MCMC object. Simulations whose
    data the fit refuses (its own checks: a loss of 0 is refused, a pass rate of 0 of 1000 is
    data) or whose fit fails or returns non-finite draws are counted in ``failures`` with the
    reason; they contribute no rank, and more than MAX_FAILED_SHARE of them is no pass.
    ``bins`` defaults to ``min(20, n_ok // 5)`` (>= 5 expected per bin), at least 2.

    ``sampler="hmc"`` fits all simulations in one compiled batch with
    :func:`bayescale.batch.fit_many` (fixed-length HMC; ``scheduler``, a Dask address, spreads the
    batch over a cluster) instead of one NUTS fit after another; ``batch_options`` are passed on to
    it (e.g. ``{"trajectory": 1.0}``).

    ``progress`` (None: only when stderr is a terminal) shows a bar of finished simulations on
    stderr: one step per NUTS fit, or per compiled batch (``sampler="hmc"``) or Dask chunk as each
    finishes.

    ``discrepancy`` (the prior of the model-discrepancy walk's scale) simulates the data with the
    walk drawn from its prior and fits with it too; ``fit_discrepancy="none"`` fits the law alone
    to those data, the control that must fail.
    """
    from .inference import build, default_target_accept

    law = get_law(law)
    for name, value in (("n_sims", n_sims), ("thin", thin), ("chains", chains), ("warmup", warmup),
                        ("draws", draws)):   # checked before any simulation, not failed in each
        check_positive_int(value, name)
    target_accept = check_target_accept(target_accept)
    if bins is not None and (isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2):
        raise BayescaleError(f"bins must be a whole number >= 2 (a rank histogram of one bin tests nothing), "
                             f"got {bins!r}")
    design = default_design(law) if design is None else design.reset_index(drop=True)
    fit_priors = priors if fit_priors is None else fit_priors
    fit_discrepancy = discrepancy if isinstance(fit_discrepancy, str) and fit_discrepancy == "same" \
        else fit_discrepancy
    if sampler != "nuts" and not (discrepancy in (None, "none") and fit_discrepancy in (None, "none")):
        raise BayescaleError("SBC with a model discrepancy runs with sampler='nuts'")

    # which parameters to rank: sampled (not fixed) in both the simulating and the fitting model
    sim_spec, _ = build(design.assign(**{law.response: 1.0}), law, pool=pool, priors=priors,
                        duplicates="keep")
    fit_spec0, _ = build(design.assign(**{law.response: 1.0}), law, pool=pool, priors=fit_priors,
                         duplicates="keep", discrepancy=fit_discrepancy)
    if params is None:
        params = [k for k in law.all_params()
                  if not _is_fixed(sim_spec.priors[k]) and not _is_fixed(fit_spec0.priors[k])]
        if discrepancy not in (None, "none") and fit_spec0.discrepancy is not None:
            params.append("disc_scale")
    elif isinstance(params, str):
        params = [params]
    params = list(params)
    if not params:
        raise BayescaleError("no parameter to rank: every parameter is fixed in one of the models")
    if target_accept is None:
        target_accept = default_target_accept(fit_spec0)

    rng = np.random.default_rng(check_seed(seed))
    sim_seeds = rng.integers(0, 2**31 - 1, size=n_sims)
    fit_seeds = rng.integers(0, 2**31 - 1, size=n_sims)
    tie_rng = np.random.default_rng([seed, 1])
    n_kept = chains * len(range(0, draws, thin))
    ranks: dict[str, list[int]] = {}
    truths: dict[str, list[float]] = {}
    failures: list[tuple[int, str]] = []
    divergences, seconds, ok_index = [], [], []
    simulated = []
    for i in range(n_sims):
        try:
            df, truth = simulate(law, design, None, seed=int(sim_seeds[i]), pool=pool, priors=priors,
                                 discrepancy=discrepancy)
        except (BayescaleError, ValueError, FloatingPointError) as exc:
            failures.append((i, f"simulation failed: {exc}"))
            continue
        try:   # the fit's own checks of its data: a rate of 0 of 1000 is data, a loss of 0 is not
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BayescaleWarning)   # the fit says its notes
                build(df, law, pool=pool, priors=fit_priors, duplicates="keep", discrepancy=fit_discrepancy)
        except (BayescaleError, ValueError, FloatingPointError) as exc:   # as a failed fit would be counted
            failures.append((i, f"simulated data the fit refuses: {exc}"))
            continue
        missing = [p for p in params if p not in truth]
        if missing:
            raise BayescaleError(f"cannot rank {missing}: the simulating model has {sorted(truth)}")
        simulated.append((i, df, truth))
    with progress_bar(total=n_sims, initial=n_sims - len(simulated), desc=f"SBC {law.spec}", unit="sim",
                      disable=not resolve_progress(progress)) as bar:
        fitted = _sbc_fits(law, simulated, fit_seeds, sampler=sampler, scheduler=scheduler, pool=pool,
                           priors=fit_priors, chains=chains, warmup=warmup, draws=draws,
                           target_accept=target_accept, dense_mass=dense_mass, failures=failures,
                           options=batch_options or {}, on_done=bar.update, discrepancy=fit_discrepancy)
    for i, _, truth in simulated:
        if i not in fitted:
            continue
        idata, spec, secs = fitted[i]
        seconds.append(secs)
        post = idata.posterior
        items, bad = [], []
        for name in params:
            if name not in post:
                raise BayescaleError(f"cannot rank {name!r}: the fitted model has {sorted(post.data_vars)}")
            kept = np.asarray(post[name].values, dtype=np.float64)[:, ::thin]
            kept = kept.reshape((-1,) + kept.shape[2:])
            if not np.all(np.isfinite(kept)):
                bad.append(name)
            for label, value, index in _scalar_items(name, truth[name], spec):
                column = kept[(slice(None),) + index]
                # rank = draws below the truth, ties (a stuck chain, float32 rounding) broken at random
                ties = int(np.sum(column == value))
                rank = int(np.sum(column < value)) + (int(tie_rng.integers(0, ties + 1)) if ties else 0)
                items.append((label, rank, value))
        if bad:
            failures.append((i, f"non-finite posterior draws of {bad}"))
            continue
        divergences.append(int(np.asarray(idata.sample_stats["diverging"]).sum()))
        ok_index.append(i)
        for label, r, value in items:
            ranks.setdefault(label, []).append(r)
            truths.setdefault(label, []).append(value)

    n_ok = n_sims - len(failures)
    if bins is None:
        bins = int(max(2, min(20, n_ok // 5)))
    out_ranks = {k: np.asarray(v, dtype=np.int64) for k, v in ranks.items()}
    chi2, pvalues = {}, {}
    for k, r in out_ranks.items():
        chi2[k], pvalues[k] = rank_uniformity(r, n_kept, bins)
    divergences = np.asarray(divergences, dtype=np.int64)
    return SBCResult(
        law=law.spec, n_sims=n_sims, n_draws=n_kept, bins=int(min(bins, n_kept + 1)),
        ranks=out_ranks, pvalues=pvalues, chi2=chi2,
        truths={k: np.asarray(v) for k, v in truths.items()},
        n_divergent_fits=int(np.sum(divergences > 0)), divergences=divergences,
        failures=failures, fit_seconds=np.asarray(seconds), sim_index=np.asarray(ok_index, dtype=np.int64),
        settings={"seed": seed, "sampler": sampler, "chains": chains, "warmup": warmup, "draws": draws,
                  "thin": thin,
                  "pool": pool, "priors": priors, "fit_priors": fit_priors, "params": params,
                  "target_accept": target_accept, "design_rows": len(design),
                  "discrepancy": None if discrepancy is None else str(discrepancy),
                  "fit_discrepancy": None if fit_discrepancy is None else str(fit_discrepancy),
                  "batch_options": batch_options},
    )


def _sbc_fits(law, simulated, fit_seeds, *, sampler, scheduler, pool, priors, chains, warmup, draws,
              target_accept, dense_mass, failures, options, on_done, discrepancy=None) -> dict:
    """Fit every simulation: {index: (InferenceData, ModelSpec, seconds)}; failures are appended.
    ``on_done(n)`` is called as fits finish (n of them), failed ones included."""
    from .inference import build, sample_posterior

    fitted = {}
    if sampler == "nuts" and scheduler is None:
        for i, df, _ in simulated:
            t0 = time.perf_counter()
            try:
                spec, data = build(df, law, pool=pool, priors=priors, duplicates="keep", discrepancy=discrepancy)
                idata, _ = sample_posterior(spec, data, seed=int(fit_seeds[i]), chains=chains,
                                            warmup=warmup, draws=draws, progress=False,
                                            target_accept=target_accept, dense_mass=dense_mass)
            except (BayescaleError, ValueError, FloatingPointError, RuntimeError) as exc:
                failures.append((i, f"fit failed: {type(exc).__name__}: {exc}"))
            else:
                fitted[i] = (idata, spec, time.perf_counter() - t0)
            on_done(1)
        return fitted
    from .batch import fit_many

    if not simulated:
        return fitted
    try:
        fits = fit_many([df for _, df, _ in simulated], law, pool=pool, priors=priors,
                        seed=[int(fit_seeds[i]) for i, _, _ in simulated], sampler=sampler,
                        chains=chains, warmup=warmup, draws=draws, target_accept=target_accept,
                        dense_mass=dense_mass, duplicates="keep", scheduler=scheduler,
                        on_done=on_done, **options)
    except (BayescaleError, ValueError, FloatingPointError, RuntimeError) as exc:
        failures.extend((i, f"batched fit failed: {type(exc).__name__}: {exc}") for i, _, _ in simulated)
        return fitted
    for (i, _, _), f in zip(simulated, fits):
        # the posterior and sample stats only: a deferred posterior predictive stays undrawn
        record = az.InferenceData(posterior=f.posterior, sample_stats=f.group("sample_stats"))
        fitted[i] = (record, f.spec, f.config["stats"]["sampling_seconds"])
    return fitted
