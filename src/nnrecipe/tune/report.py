"""The study's report, one self-contained HTML file in the study folder: the trials table, the parameter
importances (fANOVA, Hutter et al. 2014), the optimization history (a PNG inline), and the retrained best model's
test score beside the search's best validation score (R2); study.json holds the same figures."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from ..report.build import render
from ..report.plots import to_uri
from ..figures import plain_text
from ..io import atomic_write, write_json


def write_report(study: Any, result: Any, best: Any) -> Path:
    """study.json and report.html in the study folder. `best`: the best trial (a FrozenTrial) that `result`
    names."""
    importances = _importances(study)
    refit = None
    if result.refit is not None:
        refit = {"run_dir": str(result.refit.run_dir), "test": result.refit.test}
    summary = {"study": result.study, "storage": result.storage, "metric": result.metric,
               "direction": result.direction, "counts": result.counts, "best_trial": result.best_trial,
               "best_value": result.best_value, "best_params": result.best_params,
               "best_trial_test": best.user_attrs.get("test"), "refit": refit,
               "importances": importances, "trials": result.trials}
    write_json(result.study_dir / "study.json", summary)
    path = result.study_dir / "report.html"
    atomic_write(path, render("study.html.j2", **_context(summary, _history_png(study, result.metric))))
    return path


# fANOVA fits a random forest to (parameters, score) pairs: on a handful of trials its shares are the forest's
# noise (tune --trials 4 printed them to three decimals), so they are shown from MIN_TRIALS completed trials,
# and at least two per parameter searched
MIN_TRIALS = 10


def _importances(study: Any) -> dict[str, float] | str:
    """Each parameter's share of the variance of the score (fANOVA, Hutter et al. 2014: optuna's seeded
    random-forest estimate), or why there is none (too few completed trials, or parameters that never vary)."""
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    needed = max(MIN_TRIALS, 2 * len({k for t in done for k in t.params}))
    if len(done) < needed:
        return (f"not shown: {len(done)} completed trials; importances need {needed} or more to say more than "
                "the noise of the forest that estimates them (--trials)")
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
        return {k: round(float(v), 4) for k, v in found.items()}
    except (ValueError, RuntimeError) as e:
        return f"not available: {e}"


@plain_text
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


def _context(s: dict[str, Any], png: str) -> dict[str, Any]:
    """What study.html.j2 shows, from study.json's figures (`s`) and the history plot."""
    metric = s["metric"]
    test_name = metric.removeprefix("val_")  # val_rmse or val_accuracy (study._metric): the test metric's name
    best_test = (s["best_trial_test"] or {}).get(test_name)
    refit_test = (s["refit"] or {}).get("test", {}).get(test_name)
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    scores = ["", metric, f"test {test_name}", "model"]
    refit = f"trained on train+validation: {s['refit']['run_dir']}" if s["refit"] else "not retrained"
    importances = s["importances"]
    if isinstance(importances, dict):
        importances = [{"parameter": k, "importance": f"{v:.2f}"} for k, v in importances.items()]
    names = sorted({k for t in s["trials"] for k in t["params"]})
    columns = ["trial", "state", metric, "best epoch", *names]
    rows = [dict(zip(columns, [t["number"], t["state"] + (f" ({t['lost']})" if t.get("lost") else ""),
                               fmt(t["value"]), t.get("best_epoch") or "-",
                               *(_short(t["params"].get(n)) for n in names)])) for t in s["trials"]]
    numeric = ["trial", metric, "best epoch", *(n for n in names if all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for t in s["trials"]
        if (v := t["params"].get(n)) is not None))]
    return {"study": s["study"], "direction": s["direction"], "metric": metric, "storage": s["storage"],
            "counts": ", ".join(f"{n} {k.lower()}" for k, n in s["counts"].items()),
            "scores": {"columns": scores, "rows": [
                dict(zip(scores, [f"search: best trial {s['best_trial']}", fmt(s["best_value"]), fmt(best_test),
                                  "trained on train"])),
                dict(zip(scores, ["R2: best retrained", "-", fmt(refit_test), refit]))]},
            "best_params": str(s["best_params"]), "importances": importances, "history": png,
            "trials": {"columns": columns, "rows": rows, "numeric": numeric}}


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)
