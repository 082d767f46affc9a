"""Downstream calibration: fit small runs, predict held-out large runs' accuracies, score intervals.

Writes the section "Downstream calibration" of benchmarks/RESULTS.md and a plot to benchmarks/out/.
Run: python benchmarks/downstream_suite.py [--quick]. Cases (all on real public data):

* pythia: accuracy-sigmoid:compute pooled by task on Pythia <= 2.8B (final checkpoint, 0-shot,
  standard Pile), predict 6.9B and 12B per task. Baseline: per-task least-squares sigmoid
  (scipy curve_fit) with a pairs bootstrap.
* gadre: loss fit (chinchilla) on gadre_overtraining <= 411M, loss-to-error on the same runs'
  average accuracy over the 46 tasks, chained to predict the 1.4B and 6.9B runs' average top-1
  error. Baseline: Gadre-style point fits (curve_fit of both laws, chained).
* leaderboard: accuracy-sigmoid:compute pooled by task on Open LLM Leaderboard v2 scores
  (obsscaling_leaderboard_v2; GPQA is near chance for small models), the largest-compute model
  of each family held out.
* monkeys pass@k: pass-at-k per (model, benchmark) on coverage at k <= 32, predict coverage at
  the largest k. Baseline: least-squares line of log(-log coverage) in log k, pairs bootstrap.
* monkeys pass-until: pass-until pooled by benchmark on per-problem passes of Pythia <= 2.8B,
  predict the 6.9B and 12B models' mean pass rate over the 128 problems.
* monkeys pass-until:attempts: the same split, with samples until the first pass per problem (from a
  random order of each problem's samples; censored at its sample count) instead of counts.
* choice-mass: per-question correct-choice masses of Gemstones <= 5.4e8 (40 questions per task), predict the
  larger models' mean mass per task and their accuracy (gemstones_downstream); what its figures
  mean is in the section "Downstream calibration: choice-mass".

Every case runs by default; ``--cases`` picks some (with ``--section`` for their own section).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit
from scipy.special import expit, gammaln

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bayescale  # noqa: E402
import bayescale.datasets as datasets  # noqa: E402
from bayescale.chaining import rate_draws  # noqa: E402
from bayescale.report import plot_accuracy  # noqa: E402
from bayescale.scores import LEVELS, score_points  # noqa: E402
from results_file import write_section  # noqa: E402

OUT = Path(__file__).with_name("out")
SECTION = "Downstream calibration"
CHANCE_PYTHIA = {"arc_challenge": 0.25, "arc_easy": 0.25, "logiqa": 0.25, "piqa": 0.5, "sciq": 0.25,
                 "winogrande": 0.5, "wsc": 0.5, "lambada_openai": 0.0}
CHANCE_LEADERBOARD = {"leaderboard_gpqa": 0.25, "leaderboard_mmlu_pro": 0.1, "leaderboard_ifeval": 0.0,
                      "leaderboard_math_hard": 0.0}
N_BOOT = 200


def score(draws, truth) -> dict:
    with np.errstate(divide="ignore", invalid="ignore"):
        pts = score_points(np.asarray(draws, float), np.asarray(truth, float))
    out = {f"cov_{lv:g}": float(np.mean(pts[f"covered_{lv:g}"])) for lv in LEVELS}
    out["crps"] = float(np.mean(pts["crps"]))
    are = pts["are"][np.isfinite(pts["are"])]
    out["median_are"] = float(np.median(are)) if are.size else float("nan")
    out["n"] = int(len(truth))
    return out


def point_score(pred, truth) -> dict:
    are = np.abs(np.asarray(pred) - truth) / np.abs(truth)
    are = are[np.isfinite(are)]
    return {**{f"cov_{lv:g}": float("nan") for lv in LEVELS}, "crps": float(np.mean(np.abs(pred - truth))),
            "median_are": float(np.median(are)), "n": int(len(truth))}


DISCREPANCY = "auto"   # every fit's model discrepancy (--discrepancy)


def fit(df, law, budget, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.BayescaleWarning)
        f = bayescale.fit(df, law, progress=False, seed=0, discrepancy=DISCREPANCY, **budget, **kw)
    return f


def sigmoid_curve(logc, x0, s, lapse, chance):
    return chance + (1 - chance - lapse) * expit((logc - x0) / s)


def sigmoid_against_least_squares(train, test, budget, likelihood: str):
    """accuracy-sigmoid fit on ``train``, scored on ``test`` beside the least-squares sigmoid bootstrap."""
    f = fit(train, "accuracy-sigmoid", budget)
    obs = rate_draws(f, test, "observation")
    base = ls_sigmoid_bootstrap(train, test)
    ok = ~np.isnan(base).any(axis=0)
    rows = {f"bayescale (new run, {likelihood})": score(obs, test.p_correct),
            "bayescale (mean curve)": score(rate_draws(f, test, "mean"), test.p_correct),
            "least-squares sigmoid + bootstrap": score(base[:, ok], test.p_correct[ok])}
    return f, obs, rows


def ls_sigmoid_bootstrap(train, test, seed=0) -> np.ndarray:
    """Per-task least-squares sigmoid in log compute, chance fixed; pairs bootstrap draws."""
    rng = np.random.default_rng(seed)
    draws = np.full((N_BOOT, len(test)), np.nan)
    for task, rows in test.groupby("task").groups.items():
        tr = train[train.task == task]
        x, y, c = np.log(tr.compute.to_numpy()), tr.p_correct.to_numpy(), float(tr.chance.iloc[0])
        xt = np.log(test.loc[rows, "compute"].to_numpy())
        pos = test.index.get_indexer(rows)

        def one(xi, yi, xt=xt, c=c):
            def f(u, x0, s, lapse):
                return sigmoid_curve(u, x0, s, lapse, c)
            p, _ = curve_fit(f, xi, yi, p0=[np.median(xi) + 2, 2.0, 0.1], bounds=([20, 0.05, 0], [80, 20, 0.9]),
                             maxfev=5000)
            return f(xt, *p)

        b = 0
        for _ in range(N_BOOT * 3):
            if b == N_BOOT:
                break
            i = rng.integers(0, len(x), len(x))
            if len(np.unique(i)) < 4:
                continue
            try:
                draws[b, pos] = one(x[i], y[i])
                b += 1
            except (RuntimeError, ValueError):
                continue
    return draws


# ---- cases ------------------------------------------------------------------------------------

def pythia_case(budget, quick):
    df = datasets.load("pythia_evals")
    df = df[(df.family == "pythia") & (df.dataset == "pile") & (df.step == 143000) & (df.shots == 0)].copy()
    mmlu = sorted(t for t in df.task.unique() if t.startswith("hendrycksTest"))[: (4 if quick else 8)]
    df = df[df.task.isin(list(CHANCE_PYTHIA) + mmlu)].copy()
    df["chance"] = [CHANCE_PYTHIA.get(t, 0.25) for t in df.task]
    df = df[["params", "tokens", "compute", "p_correct", "correct", "trials", "chance", "task", "model"]]
    df = df.reset_index(drop=True)
    train, test = df[df.params <= 3e9].reset_index(drop=True), df[df.params > 3e9].reset_index(drop=True)
    f, obs, rows = sigmoid_against_least_squares(train, test, budget, "Beta-Binomial")
    note = (f"{train.task.nunique()} tasks ({len(mmlu)} MMLU subjects), {len(train)} training rows, "
            f"{len(test)} held out (6.9B, 12B); diagnostics {f.diagnostics}")
    return rows, note, (f, train, test)


def gadre_case(budget, quick):
    loss = datasets.load("gadre_overtraining")
    down = datasets.load("gadre_downstream")
    avg = down.groupby("run", as_index=False).agg(p_correct=("p_correct", "mean"))
    runs = loss.merge(avg, on="run")
    runs["trials"] = 0.0          # an average over tasks: a rate, Beta likelihood
    runs["task"] = "average_46"
    small = runs.params <= 4.2e8
    train, test = runs[small].reset_index(drop=True), runs[~small].reset_index(drop=True)
    loss_fit = fit(train[["params", "tokens", "loss", "dataset", "family"]], "chinchilla", budget)
    down_fit = fit(train[["loss", "p_correct", "trials", "task"]], "loss-to-error", budget)
    ch = bayescale.chain(loss_fit, down_fit)
    q = test.drop(columns=["loss", "p_correct"])
    _, obs = ch.predict(q, kind="observation", loss_kind="observation", return_draws=True)
    _, mean = ch.predict(q, kind="mean", loss_kind="mean", return_draws=True)
    err = 1 - test.p_correct.to_numpy()

    # Gadre-style point fits, chained
    def chin(nd, e, a, al, b, be):
        return e + a * (nd[0] / 1e8) ** -al + b * (nd[1] / 1e9) ** -be
    pl, _ = curve_fit(chin, (train.params, train.tokens), train.loss, p0=[2, 1, 0.3, 1, 0.3], maxfev=20000)
    perr, _ = curve_fit(lambda L, e, k, g: e - k * np.exp(-g * L), train.loss, 1 - train.p_correct,
                        p0=[0.75, 1.0, 0.5], maxfev=20000)
    lpred = chin((test.params, test.tokens), *pl)
    epred = perr[0] - perr[1] * np.exp(-perr[2] * lpred)
    _, loss_obs = loss_fit.predict(q, kind="observation", return_draws=True)
    at_true_loss = rate_draws(down_fit, test, "observation")
    # the same chain with Gadre et al.'s own loss law (compute and over-training multiplier)
    overtrain_fit = fit(train[["compute", "multiplier", "loss", "dataset", "family"]], "overtrain", budget)
    _, obs_overtrain = bayescale.chain(overtrain_fit, down_fit).predict(
        q, kind="observation", loss_kind="observation", return_draws=True)
    rows = {"bayescale chain (new run)": score(1 - obs.values, err),
            "bayescale chain (mean curves)": score(1 - mean.values, err),
            "Gadre point fits (chained)": point_score(epred, err),
            "bayescale chain, overtrain loss law (new run)": score(1 - obs_overtrain.values, err),
            "part: loss fit alone, new run's loss (scored on loss)": score(loss_obs.values, test.loss),
            "part: loss-to-error at the measured loss, new run": score(1 - at_true_loss, err)}
    note = (f"{len(train)} training runs (<= 411M), {len(test)} held out (1.4B, 6.9B); response: average "
            f"top-1 error over 46 tasks; loss fit {loss_fit.diagnostics}; overtrain loss fit "
            f"{overtrain_fit.diagnostics}; error fit {down_fit.diagnostics}")
    return rows, note, None


def leaderboard_case(budget, quick):
    df = datasets.load("obsscaling_leaderboard_v2")
    df = df[df.task.isin(list(CHANCE_LEADERBOARD))].copy()
    df["chance"] = df.task.map(CHANCE_LEADERBOARD).astype(float)
    df["trials"] = 0.0  # only rates are published
    clipped = int(((df.p_correct <= 1e-3) | (df.p_correct >= 1 - 1e-3)).sum())
    df["p_correct"] = df.p_correct.clip(1e-3, 1 - 1e-3)
    top = df.groupby("family").compute.transform("max")
    nfam = df.groupby("family").model.transform("nunique")
    held = (df.compute == top) & (nfam >= 3)
    train, test = df[~held].reset_index(drop=True), df[held].reset_index(drop=True)
    f, obs, rows = sigmoid_against_least_squares(
        train[["compute", "p_correct", "trials", "chance", "task", "model"]], test, budget, "Beta")
    gp = test.task == "leaderboard_gpqa"
    rows["bayescale (new run), GPQA only"] = score(obs[:, gp.to_numpy()], test.p_correct[gp])
    note = (f"tasks {sorted(CHANCE_LEADERBOARD)}; {len(train)} training rows, {len(test)} held out (largest-compute "
            f"model of each family with >= 3 models); {clipped} scores of exactly 0 clipped to 1e-3; "
            f"diagnostics {f.diagnostics}")
    return rows, note, None


def pass_at_k(c, n, k):
    """Unbiased pass@k per problem: 1 - C(n-c, k)/C(n, k)."""
    with np.errstate(invalid="ignore"):
        log_fail = (gammaln(n - c + 1) - gammaln(n - c - k + 1)) - (gammaln(n + 1) - gammaln(n - k + 1))
    return np.where(n - c < k, 1.0, 1 - np.exp(log_fail))


def monkeys_coverage() -> pd.DataFrame:
    df = datasets.load("monkeys_pass_at_k")
    rows = []
    for (model, task), g in df.groupby(["model", "task"]):
        n_min = int(g.trials.min())
        ks = sorted({int(2 ** i) for i in range(0, int(np.log2(n_min)) + 1)} | {n_min})
        for k in ks:
            cov = float(np.mean(pass_at_k(g.correct.to_numpy(), g.trials.to_numpy(), k)))
            rows.append({"attempts": float(k), "p_correct": cov, "trials": float(len(g)),
                         "family": f"{model} / {task}", "model": model, "task": task, "k_max": n_min})
    return pd.DataFrame(rows)


def monkeys_k_case(budget, quick):
    cov = monkeys_coverage()
    # a (model, benchmark) with no success in its largest sample has nothing to extrapolate
    cov = cov[cov.groupby("family").p_correct.transform("max") > 0]
    train = cov[cov.attempts <= 32].reset_index(drop=True)
    test = cov[cov.attempts == cov.k_max].reset_index(drop=True)
    f = fit(train[["attempts", "p_correct", "trials", "family"]], "pass-at-k", budget)
    obs = rate_draws(f, test, "observation")
    # baseline: log(-log coverage) linear in log k per group, pairs bootstrap
    rng = np.random.default_rng(0)
    base = np.full((N_BOOT, len(test)), np.nan)
    for j, r in test.iterrows():
        tr = train[(train.family == r.family) & (train.p_correct > 0) & (train.p_correct < 1)]
        x, y = np.log(tr.attempts.to_numpy()), np.log(-np.log(tr.p_correct.to_numpy()))
        for b in range(N_BOOT):
            i = rng.integers(0, len(x), len(x))
            if len(np.unique(x[i])) < 2:
                continue
            slope, icpt = np.polyfit(x[i], y[i], 1)
            base[b, j] = np.exp(-np.exp(icpt + slope * np.log(r.attempts)))
    ok = ~np.isnan(base).all(axis=0)
    base_ok = np.where(np.isnan(base[:, ok]), np.nanmedian(base[:, ok], axis=0), base[:, ok])
    rows = {"bayescale (new coverage, Beta-Binomial)": score(obs, test.p_correct),
            "bayescale (mean curve)": score(rate_draws(f, test, "mean"), test.p_correct),
            "least-squares log(-log cov) + bootstrap": score(base_ok, test.p_correct[ok])}
    note = (f"{train.family.nunique()} (model, benchmark) groups, train k <= 32 ({len(train)} rows), "
            f"predict k = largest common sample count ({', '.join(sorted({str(int(k)) for k in test.k_max}))}); "
            f"diagnostics {f.diagnostics}")
    return rows, note, None


def monkeys_until_case(budget, quick):
    df = datasets.load("monkeys_pass_at_k")
    df = df[["params", "p_correct", "correct", "trials", "task", "model", "problem"]].reset_index(drop=True)
    train, test = df[df.params <= 3e9].reset_index(drop=True), df[df.params > 3e9].reset_index(drop=True)
    f = fit(train, "pass-until", budget)
    obs = rate_draws(f, test, "observation")
    truth, draws = [], []
    for _, g in test.groupby(["model", "task"]):
        truth.append(g.p_correct.mean())
        draws.append(obs[:, g.index.to_numpy()].mean(axis=1))
    rows = {"bayescale (mean pass rate over 128 problems)": score(np.stack(draws, 1), np.array(truth))}
    note = (f"{len(train)} problem rows of Pythia <= 2.8B; held out: mean pass rate of 6.9B and 12B on GSM8K and "
            f"MATH (4 numbers); diagnostics {f.diagnostics}")
    return rows, note, None


def monkeys_attempts(seed=0) -> pd.DataFrame:
    """Samples until the first pass per problem, from the per-problem counts of monkeys_pass_at_k.

    The source keeps only how many of a problem's n samples passed, not their order. Samples are
    drawn independently given the problem, so every order of its c passes among n is equally
    likely; a seeded random order gives the first pass's position (attempts), or attempts = n
    (censored, no pass within the budget) when c = 0."""
    df = datasets.load("monkeys_pass_at_k").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    n, c = df.trials.to_numpy(int), df.correct.to_numpy(int)
    first = [int(rng.choice(ni, ci, replace=False).min()) + 1 if ci else ni for ni, ci in zip(n, c)]
    return df.assign(attempts=np.array(first, float), passes=1.0, budget=n.astype(float))


def monkeys_attempts_case(budget, quick):
    from bayescale.models.pass_until import rate_ab

    df = monkeys_attempts()
    df = df[["params", "attempts", "passes", "budget", "correct", "trials", "task", "model", "problem"]]
    train, test = df[df.params <= 3e9].reset_index(drop=True), df[df.params > 3e9].reset_index(drop=True)
    f = fit(train.drop(columns=["correct", "trials"]), "pass-until:attempts", budget)
    _, obs = f.predict(test, kind="observation", return_draws=True)
    # the mean measured pass rate (correct / trials) over a model's 128 problems: each problem's
    # rate r ~ Beta(p·phi, (1-p)·phi), its passes Binomial(trials, r)
    rng = np.random.default_rng(0)
    p = rate_draws(f, test, "mean")
    phi = f.draws("phi").reshape(-1, 1)[: len(p)]          # draw by draw with p
    a, b = rate_ab(p, phi, xp=np)
    trials = test.trials.to_numpy(int)
    passed = rng.binomial(trials, np.clip(rng.beta(a, b), 1e-12, 1)) / trials
    truth, draws, curve = [], [], []
    for _, g in test.groupby(["model", "task"]):
        i = g.index.to_numpy()
        truth.append((g.correct / g.trials).mean())
        draws.append(passed[:, i].mean(axis=1))
        curve.append(p[:, i].mean(axis=1))
    truth = np.array(truth)
    censored = (test.attempts >= test.budget).to_numpy()
    rows = {"bayescale, attempts until first pass per held-out problem (new problem)": score(obs.values, test.attempts),
            "bayescale, mean pass rate over 128 problems (new problems)": score(np.stack(draws, 1), truth),
            "bayescale, mean pass rate over 128 problems (mean curve)": score(np.stack(curve, 1), truth)}
    upper = np.quantile(obs.values, 0.95, axis=0)
    uncensored = score(obs.values[:, ~censored], test.attempts[~censored])["cov_0.9"]
    note = (f"{len(train)} problem rows of Pythia <= 2.8B (GSM8K, MATH), attempts = position of the first "
            f"pass in a seeded random order of each problem's samples (the source has counts only), budget = "
            f"its sample count ({int(df.budget.min())}-{int(df.budget.max())}); "
            f"{int((train.attempts >= train.budget).sum())} training and {int(censored.sum())} of {len(test)} "
            f"held-out rows censored. Held out: 6.9B and 12B, each problem's attempts and the mean measured pass "
            f"rate per (model, benchmark) (4 numbers; measured {', '.join(f'{t:.4f}' for t in truth)}). "
            f"Attempts are discrete and capped: {int(np.sum(upper >= test.budget))} held-out 90 % intervals reach "
            f"the budget and so cover every censored row; on the {int((~censored).sum())} uncensored rows alone "
            f"the 90 % coverage is {uncensored:.3g} (conditional on no censoring, so not a calibration target); "
            f"diagnostics {f.diagnostics}")
    return rows, note, None


GEMSTONES_TASKS = {"arc_challenge": ("arc:challenge", 4), "arc_easy": ("arc:easy", 4),
                   "coqa": ("commonsense_qa", 5), "openbookqa": ("openbookqa", 4), "piqa": ("piqa", 2),
                   "siqa": ("siqa", 3), "winogrande": ("winogrande", 2)}


def choice_mass_case(budget, quick):
    """choice-mass on Gemstones per-question correct masses (final checkpoint), N <= 5.4e8; predict the
    held-out 1B/2B models' mean correct mass per task and, via the Dirichlet, their accuracy."""
    from bayescale.predict import choice_accuracy

    df = datasets.load("gemstones_task_losses")
    small = df.params <= 5.4e8
    # the same 40 questions of each task for every model (all 165k training rows: > 10 min of NUTS)
    rng = np.random.default_rng(0)
    keep = {t: rng.choice(g.question.unique(), 40, replace=False) for t, g in df.groupby("task")}
    sub = df[small & np.array([q in keep[t] for t, q in zip(df.task, df.question)])]
    train = sub[["compute", "p_choice_correct", "task", "question", "shape"]].reset_index(drop=True)
    f = fit(train, "choice-mass", budget, pool={"a": "task", "log_b": "task", "phi": "task"})
    held = df[~small].groupby(["shape", "task"], as_index=False).agg(
        compute=("compute", "first"), mass=("p_choice_correct", "mean"), n=("p_choice_correct", "size"))
    m = rate_draws(f, held, "mean")
    phi = np.asarray(f.posterior["phi_by_task"].sel(task=held.task.to_numpy()).values, float)
    phi = phi.reshape(-1, len(held))[: len(m)]
    # a task's mean over its n questions scatters around m by the Beta's sd / sqrt(n)
    sd = np.sqrt(m * (1 - m) / (phi + 1) / held.n.to_numpy())
    mass_draws = m + sd * np.random.default_rng(1).standard_normal(m.shape)
    down = datasets.load("gemstones_downstream")
    down = down[down.step == down.step.max()]
    held["choices"] = [GEMSTONES_TASKS[t][1] for t in held.task]
    acc_truth = held.merge(down.assign(task=down.task.map({v[0]: k for k, v in GEMSTONES_TASKS.items()})),
                           on=["shape", "task"], how="left").p_correct.to_numpy()
    _, acc = choice_accuracy(f, held, return_draws=True)
    rows = {"bayescale mean correct mass per (model, task)": score(mass_draws, held.mass),
            "bayescale accuracy from the mass model (kappa = 1)": score(acc, acc_truth)}
    note = (f"{len(train)} training rows (per-question masses of {train.task.nunique()} tasks x "
            f"{train['shape'].nunique()} models <= 5.4e8), pool a, log_b, phi by task; held out "
            f"{held['shape'].nunique()} models x {held.task.nunique()} tasks; mean measured accuracy "
            f"{np.mean(acc_truth):.3f}, mean predicted {acc.mean():.3f}; diagnostics {f.diagnostics}")
    return rows, note, None


CASES = {"pythia": pythia_case, "gadre": gadre_case, "leaderboard": leaderboard_case,
         "monkeys pass@k": monkeys_k_case, "monkeys pass-until": monkeys_until_case,
         "monkeys pass-until:attempts": monkeys_attempts_case,
         "choice-mass": choice_mass_case}


def table(rows: dict) -> str:
    cols = [f"cov_{lv:g}" for lv in LEVELS] + ["crps", "median_are", "n"]
    lines = ["| method | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for name, s in rows.items():
        cells = [("–" if not np.isfinite(s[c]) else f"{s[c]:.3g}") if c != "n" else str(s[c]) for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sampling budget (a smoke run)")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--section", default=SECTION, help="RESULTS.md section to write (a case run alone "
                    "writes its own section, so the others' figures stay)")
    ap.add_argument("--discrepancy", default="auto", help="every fit's model discrepancy: auto (default), none, "
                    "or a prior for the walk's scale")
    args = ap.parse_args(argv)
    global DISCREPANCY
    DISCREPANCY = args.discrepancy
    budget = ({"chains": 2, "warmup": 200, "draws": 200} if args.quick
              else {"chains": 2, "warmup": 600, "draws": 600})
    parts = [f"Script: `benchmarks/downstream_suite.py` (NUTS {budget['chains']} chains x {budget['warmup']} warmup "
             f"+ {budget['draws']} draws, seed 0; model discrepancy `{DISCREPANCY}`). Coverage of central intervals of held-out measured values "
             "(target for 90 %: 0.80-0.97); CRPS in the response's units; ARE = |median - truth| / truth. "
             "'new run' intervals include a new run's scatter and the finite number of questions; "
             "'mean curve' intervals are the law's curve only. Baselines give parameter intervals only."]
    plot = None
    for name in args.cases.split(","):
        t0 = time.perf_counter()
        rows, note, extra = CASES[name](budget, args.quick)
        parts.append(f"### {name}\n\n{note}; {time.perf_counter() - t0:.0f} s\n\n{table(rows)}")
        print(parts[-1], flush=True)
        if name == "pythia" and extra is not None:
            f, train, test = extra
            plot = plot_accuracy(
                f, train, OUT / "downstream_pythia_arc_easy.png", heldout=test, labels={"task": "arc_easy"},
                title="Pythia 0-shot ARC-Easy: fit <= 2.8B, held out 6.9B and 12B")
            parts.append(f"Plot: `benchmarks/out/{plot.name}`.")
    if not args.no_write:
        write_section(args.section, f"## {args.section}\n\n" + "\n\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
