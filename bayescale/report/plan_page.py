"""`bayescale plan --report DIR`: the chosen runs, what they are expected to teach, and the ranking."""
from __future__ import annotations

import html
from pathlib import Path

from .html import embedded_image, page, table_html


def plan_report(result, out_dir) -> Path:
    """Write ``out_dir/report.html`` (and ``width_vs_cost.png``) for a :class:`bayescale.next_runs.Plan`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = result.chosen
    target = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                       for k, v in result.target.iloc[0].items())
    if len(chosen):
        headline = (f"Training the {len(chosen)} run(s) below ({chosen['cost'].sum():.3g} FLOP"
                    + (f" of the {result.budget:.3g} FLOP budget" if result.budget else "")
                    + f") is expected to narrow the 90% interval of the target ({target}) from "
                    f"{result.width_now:.4g} to {chosen['width_90_after'].iloc[-1]:.4g} ({result.response}).")
    else:
        headline = "No candidate fits within the budget."
    plot = result.plot(out_dir / "width_vs_cost.png")
    body = [f"<p class='headline'>{html.escape(headline)}</p>",
            f"<p>{html.escape(_method_text(result.method))}</p>",
            embedded_image(plot, "expected width of the target's interval against cumulative cost"),
            table_html("chosen runs, in the order picked", chosen),
            table_html("every candidate, best value per FLOP first (each alone)", result.candidates)]
    if result.notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in result.notes) + "</ul>")
    return page(out_dir, "bayescale plan: which runs to train next", body)


def _method_text(method: str) -> str:
    what = "predictive variance" if method == "gaussian" else "squared 90 % width"
    common = (f"Each pick is the candidate that removes the most of the target's remaining {what} "
              f"per FLOP (or, if that ends lower, the most {what} outright), given the runs picked before it. ")
    if method == "gaussian":
        return common + ("Expected widths treat the fit's draws at the target and the candidates as jointly "
                         "Gaussian on the link scale, with each run's noise variance from the fit.")
    return common + ("Expected widths reweight the fit's draws by simulated outcomes of the chosen runs "
                     "(importance sampling); with few effective draws they are too optimistic.")
