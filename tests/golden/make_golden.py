"""Write the golden-prediction fixtures: small saved fits and the predictions made from them.

Run once with the version whose predictions are to be pinned (``python tests/golden/make_golden.py``);
tests/unit/test_golden_predictions.py then checks that every predictive entry point gives the same
numbers from the same saved posterior draws, up to float rounding. The fits are tiny (two chains of
40 draws): the point is the arithmetic after sampling, not the posterior's quality.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
BUDGET = {"chains": 2, "warmup": 150, "draws": 40, "progress": False, "seed": 3, "discrepancy": "none"}


def _fits():
    import bayescale as bs
    from bayescale.datasets.demo import demo_data

    out = {}
    demo = demo_data()
    out["chinchilla"] = (bs.fit(demo, "chinchilla", pool={"log_A0": "family"}, **BUDGET), demo)
    rng = np.random.default_rng(0)
    loss = np.linspace(2.2, 3.6, 12)
    err = 0.1 + 0.8 / (1 + np.exp(-3 * (loss - 3.0)))
    lte = pd.DataFrame({"loss": loss, "trials": 1000.0,
                        "p_correct": np.clip(1 - err + rng.normal(0, 0.01, 12), 0.01, 0.99)})
    out["loss-to-error"] = (bs.fit(lte, "loss-to-error", **BUDGET), lte)
    c = np.geomspace(1e19, 1e23, 8)
    acc = pd.DataFrame({"compute": np.tile(c, 2), "task": np.repeat(["a", "b"], 8), "trials": 500.0,
                        "chance": 0.25})
    acc["p_correct"] = np.clip(0.25 + 0.7 / (1 + np.exp(-(np.log(acc["compute"]) - np.log(1e21)))), 0, 1)
    acc["p_correct"] = np.round(acc["p_correct"] * 500) / 500
    out["accuracy-sigmoid"] = (bs.fit(acc, "accuracy-sigmoid", **BUDGET), acc)
    cm = pd.DataFrame({"compute": np.repeat(c, 10)})
    cm["p_choice_correct"] = np.clip(1 / (1 + np.exp(-(np.log(cm["compute"]) - np.log(1e21)) * 0.5))
                                     + rng.normal(0, 0.05, len(cm)), 0.01, 0.99)
    out["choice-mass"] = (bs.fit(cm, "choice-mass", **BUDGET), cm)
    from bayescale.models.hyperparams import hyperparams_design
    hp = hyperparams_design(np.geomspace(2e8, 8e8, 2), np.geomspace(5e9, 5e10, 2))
    eta = 1.79 * hp["params"] ** -0.713 * hp["tokens"] ** 0.307
    hp["loss"] = 2.5 + 0.02 * np.log(hp["lr"] / eta) ** 2 + 0.01 * np.log(hp["batch_size"] / (0.58 * hp["tokens"] ** 0.571)) ** 2
    hp["loss"] *= np.exp(rng.normal(0, 0.002, len(hp)))
    out["hyperparams"] = (bs.fit(hp, "hyperparams", **BUDGET), hp)
    n = np.geomspace(1e8, 1e10, 6)
    att = pd.DataFrame({"params": np.repeat(n, 6), "passes": 1.0, "budget": 500.0})
    att["attempts"] = np.minimum(np.round(rng.geometric(np.repeat(np.linspace(0.01, 0.3, 6), 6))), 500.0)
    att["problem"] = np.tile(np.arange(6), 6)
    out["pass-until:attempts"] = (bs.fit(att, "pass-until:attempts", **BUDGET), att)
    return out


def predictions(fits: dict) -> dict:
    """Every predictive entry point, on the saved fits: {name: list of numbers}."""
    import bayescale as bs
    from bayescale.baselines import huber_bootstrap
    from bayescale.predict import choice_accuracy
    from bayescale.planning import optimal_hyperparams

    res = {}

    def put(name, frame):
        # the columns the pinned version gave (later versions add variance shares and distances)
        frame = frame.drop(columns=[c for c in frame if c.startswith("share_") or c == "decades_beyond_data"])
        res[name] = np.asarray(frame.select_dtypes("number"), dtype=np.float64).round(12).tolist()

    chin, demo = fits["chinchilla"]
    points = pd.DataFrame({"params": [7e10, 1e9, 3e8], "tokens": [1.4e12, 2e10, 6e9],
                           "family": ["dense", "unseen", "wide"], "dataset": "synthetic-web"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in ("mean", "curve", "observation"):
            put(f"chinchilla/{kind}", chin.predict(points, levels=(0.5, 0.9), kind=kind, seed=1))
        put("chinchilla/allocation", chin.optimal_allocation([1e21, 1e23], family="dense"))
        put("chinchilla/allocation_typical", chin.optimal_allocation([1e22]))
        put("chinchilla/tokens_for_loss", chin.tokens_for_loss(2.3, params=1e9, family="dense"))
        put("chinchilla/min_loss", chin.min_loss())
        lte, _ = fits["loss-to-error"]
        new = pd.DataFrame({"params": [1e9, 1e10], "tokens": [2e10, 2e11], "trials": 1000.0,
                            "family": "dense", "dataset": "synthetic-web"})
        put("chain/mean", bs.chain(chin, lte).predict(new, seed=2))
        put("chain/observation", bs.chain(chin, lte).predict(new, kind="observation",
                                                             loss_kind="observation", seed=2))
        acc, _ = fits["accuracy-sigmoid"]
        grid = pd.DataFrame({"compute": [1e20, 1e22, 1e24], "task": ["a", "b", "new"], "chance": 0.25,
                             "trials": 100.0})
        for kind in ("mean", "curve", "observation"):
            put(f"accuracy-sigmoid/{kind}", acc.predict(grid, kind=kind, seed=4))
        cm, _ = fits["choice-mass"]
        put("choice-mass/accuracy", choice_accuracy(cm, pd.DataFrame({"compute": [1e20, 1e22], "choices": [4, 2]})))
        hp, _ = fits["hyperparams"]
        put("hyperparams/optimal", optimal_hyperparams(hp, params=[3e8, 1e9], tokens=[1e10, 1e11]))
        att, _ = fits["pass-until:attempts"]
        pts = pd.DataFrame({"params": [1e9, 1e11], "passes": 1.0, "budget": 1000.0})
        for kind in ("mean", "observation"):
            put(f"pass-until:attempts/{kind}", att.predict(pts, kind=kind, seed=5))
        boot = huber_bootstrap(demo[demo["family"] == "dense"], "chinchilla", n_boot=20, seed=0)
        at = pd.DataFrame({"params": [7e10, 1e9], "tokens": [1.4e12, 2e10]})
        for kind in ("mean", "observation"):
            put(f"bootstrap/{kind}", boot.predict(at, kind=kind, seed=6))
    return res


if __name__ == "__main__":
    fits = _fits()
    for name, (f, df) in fits.items():
        f.save(HERE / f"{name.replace(':', '_')}.nc")
        df.to_csv(HERE / f"{name.replace(':', '_')}.csv", index=False)
    import bayescale as bs
    loaded = {name: (bs.load(HERE / f"{name.replace(':', '_')}.nc"), df) for name, (_, df) in fits.items()}
    (HERE / "predictions.json").write_text(json.dumps(predictions(loaded), indent=0))
    print("wrote", len(fits), "fits", file=sys.stderr)
