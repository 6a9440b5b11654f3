"""The study's report, one self-contained HTML file in the study folder: the trials table, the parameter
importances (fANOVA, Hutter et al. 2014), the optimization history (a PNG inline), and the retrained best model's
test score beside the search's best validation score (R2); study.json holds the same figures."""

from __future__ import annotations

import html
import itertools
from pathlib import Path
from typing import Any

from ..report.plots import to_uri
from ..track import write_json


def write_report(study: Any, result: Any, best: Any = None) -> Path:
    """study.json and report.html in the study folder. `best`: the best trial (a FrozenTrial) that `result`
    names; None picks it now (study.best_trial)."""
    importances = _importances(study)
    refit = None
    if result.refit is not None:
        refit = {"run_dir": str(result.refit.run_dir), "test": result.refit.test}
    from .study import best_trial as pick_best

    best_trial = pick_best(study) if best is None else best
    summary = {"study": result.study, "storage": result.storage, "metric": result.metric,
               "direction": result.direction, "counts": result.counts, "best_trial": result.best_trial,
               "best_value": result.best_value, "best_params": result.best_params,
               "best_trial_test": best_trial.user_attrs.get("test"), "refit": refit,
               "importances": importances, "trials": result.trials}
    write_json(result.study_dir / "study.json", summary)
    path = result.study_dir / "report.html"
    path.write_text(_html(summary, _history_png(study, result.metric)))
    return path


def _importances(study: Any) -> dict[str, float] | str:
    """Each parameter's share of the variance of the score (fANOVA, Hutter et al. 2014: optuna's seeded
    random-forest estimate), or why there is none (it needs completed trials whose parameters vary)."""
    import optuna

    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
        return {k: round(float(v), 4) for k, v in found.items()}
    except (ValueError, RuntimeError) as e:
        return f"not available: {e}"


def _history_png(study: Any, metric: str) -> str:
    """The optimization history as a PNG data URI: each completed trial's score, and the best so far."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figures stay as they are
    from matplotlib.ticker import MaxNLocator
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    numbers, values = [t.number for t in done], [t.value for t in done]
    pick = max if study.direction.name == "MAXIMIZE" else min
    best = list(itertools.accumulate(values, pick))  # the best so far
    fig = Figure(figsize=(6, 3.2), dpi=100)
    ax = fig.subplots()
    ax.plot(numbers, values, "o", color="#4c72b0", label="trial")
    ax.step(numbers, best, where="post", color="#c44e52", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title("optimization history")
    ax.legend(loc="best")
    fig.tight_layout()
    return to_uri(fig)


def _html(s: dict[str, Any], png: str) -> str:
    e = html.escape
    metric = s["metric"]
    test_name = metric.removeprefix("val_")  # val_rmse or val_accuracy (study._metric): the test metric's name
    best_test = (s["best_trial_test"] or {}).get(test_name)
    refit_test = (s["refit"] or {}).get("test", {}).get(test_name)
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    scores = (f"<tr><td>search: best trial {s['best_trial']}</td><td>{fmt(s['best_value'])}</td>"
              f"<td>{fmt(best_test)}</td><td>trained on train</td></tr>"
              f"<tr><td>R2: best retrained</td><td>-</td><td>{fmt(refit_test)}</td>"
              f"<td>trained on train+validation: {e(str((s['refit'] or {}).get('run_dir', 'not retrained')))}</td></tr>")
    if isinstance(s["importances"], dict):
        importances = "".join(f"<tr><td>{e(k)}</td><td>{v:.3f}</td></tr>" for k, v in s["importances"].items())
    else:
        importances = f"<tr><td colspan=2>{e(s['importances'])}</td></tr>"
    names = sorted({k for t in s["trials"] for k in t["params"]})
    head = "".join(f"<th>{e(n)}</th>" for n in ["trial", "state", metric, "best epoch", *names])
    rows = "".join(
        "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in [
            t["number"], t["state"] + (f" ({t['lost']})" if t.get("lost") else ""),
            fmt(t["value"]), t.get("best_epoch") or "-", *(_short(t["params"].get(n)) for n in names)]) + "</tr>"
        for t in s["trials"])
    counts = ", ".join(f"{n} {k.lower()}" for k, n in s["counts"].items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>study {e(s['study'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:2px 6px;text-align:right}}</style></head><body>
<h1>study {e(s['study'])}</h1>
<p>{e(s['direction'])} {e(metric)} over {len(s['trials'])} trials ({e(counts)}); storage {e(s['storage'])}</p>
<h2>scores</h2><table><tr><th></th><th>{e(metric)}</th><th>test {test_name}</th><th></th></tr>{scores}</table>
<p>best parameters: {e(str(s['best_params']))}</p>
<h2>parameter importances</h2><table><tr><th>parameter</th><th>importance</th></tr>{importances}</table>
<h2>optimization history</h2><img alt="optimization history" src="{png}">
<h2>trials</h2><table><tr>{head}</tr>{rows}</table>
</body></html>
"""


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)
