"""report.html: a run folder made readable in one page, from the folder alone (so `nnrecipe report RUN`
makes it again at any time). Order: the network's test metrics beside the simple models' (C4), the test
rows per class, the recipe's verdicts (what to fix), then the curves, the labels (with each class's recall on
the test rows), the errors, the worst rows, the predictions over training, the inputs, and the record.

Every section reads its own file and says what is missing when the file is not there (a run made before
that file was recorded, or one that stopped early), so the report never fails on an older run."""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import atomic_write
from ..track.diff import flatten, short_key
from ..track.predictions import SAMPLES, VAL_PREDICTIONS, WATCH
from ..track.runs import RunInfo, compare_runs, read_run, record
from . import plots

log = logging.getLogger("nnrecipe")

REPORT = "report.html"
COMPARE = "compare.html"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WORST_ROWS = 10
EVIDENCE_CHARS = 300
EVIDENCE_ITEMS = 12  # a list's first items shown
EVIDENCE_ROWS = 40  # rows of one verdict's evidence table
LABEL_PLOT = "label_distribution.png"  # the data audit's D1 plot (data/audit), embedded when present


def _env() -> Any:
    import jinja2

    # autoescape: notes, column names and class labels are user text
    return jinja2.Environment(loader=jinja2.PackageLoader("nnrecipe.report", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _common() -> dict[str, Any]:
    from .. import __version__

    return {"version": __version__, "made": time.strftime("%Y-%m-%d %H:%M:%S")}


def render(template: str, **context: Any) -> str:
    """One page from templates/`template` (which extends base.html.j2): the run report, the compare page,
    the study report (tune/report.py)."""
    return _env().get_template(template).render(**context, **_common())


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(_fmt, v))
    return "-" if v is None else str(v)


def verdicts(path: Path) -> list[dict[str, Any]]:
    """The audit's findings (audit.json) then the doctor's verdicts (checks.json), each with its origin."""
    audit = record(path, "audit.json") or {}
    checks = record(path, "checks.json") or []
    out = []
    for origin, items in (("audit", audit.get("findings", [])), ("doctor", checks)):
        for v in items:
            out.append({"fault": "", "consistent_with": [],  # runs recorded before verdicts named faults
                        **v, "origin": origin, "evidence": evidence_rows(v.get("evidence") or {})})
    return out


def evidence_rows(evidence: dict[str, Any], prefix: str = "") -> list[dict[str, str]]:
    """A verdict's evidence as rows to read (issue 19: not raw JSON): nested entries as 'a / b', lists of
    numbers or names on one line (the first EVIDENCE_ITEMS and a count), each value at most EVIDENCE_CHARS."""
    rows: list[dict[str, str]] = []
    for key, value in evidence.items():
        name = f"{prefix}{key}".replace("_", " ")
        if isinstance(value, dict) and value and len(rows) < EVIDENCE_ROWS:
            rows += evidence_rows(value, f"{prefix}{key} / ")
            continue
        if isinstance(value, (list, tuple)):
            shown = ", ".join(_fmt(x) if not isinstance(x, (dict, list)) else json.dumps(x, default=str)
                              for x in value[:EVIDENCE_ITEMS])
            text = shown + (f" … ({len(value)} in all)" if len(value) > EVIDENCE_ITEMS else "")
        else:
            text = _fmt(value) if not isinstance(value, dict) else "-"
        rows.append({"item": name, "value": text if len(text) <= EVIDENCE_CHARS else text[:EVIDENCE_CHARS] + " …"})
    return rows[:EVIDENCE_ROWS]


def _labels(path: Path, journal: dict[str, Any], report: dict[str, Any] | None = None) -> dict[str, Any]:
    """The D1 plot and each split's label counts, with each class's recall on the test rows beside them."""
    image = None
    plot = path / LABEL_PLOT
    if plot.is_file() and (data := plot.read_bytes())[:8] == PNG_SIGNATURE:
        image = plots.png_uri(data)
    labels = (journal.get("data") or {}).get("labels") or {}
    splits = list(labels)
    keys = list(dict.fromkeys(k for counts in labels.values() for k in counts))
    recall = dict(zip(map(str, report["classes"]), report["recall"])) if report and report.get("classes") else {}
    shown = bool(recall) and any(k in recall for k in keys)
    rows = [{"label": k, **{s: _fmt(labels[s].get(k)) for s in splits},
             **({"test recall": _fmt(recall.get(k))} if shown else {})} for k in keys]
    return {"image": image, "rows": rows, "columns": ["label", *splits, *(["test recall"] if shown else [])]}


def _errors(frame: pd.DataFrame | None, task: str, classes: Sequence[str]) -> dict[str, Any]:
    if frame is None:
        return {"title": "Errors on the validation rows", "image": None, "text": ""}
    if task == "regression":
        rmse = float(np.sqrt(np.mean(frame["error"] ** 2)))
        return {"title": "Residuals on the validation rows", "image": plots.residuals(frame["prediction"].to_numpy(),
                frame["error"].to_numpy()), "text": f"{len(frame)} rows, RMSE {rmse:.4g}"}
    if task == "multilabel":
        rates = {c: float(np.mean((frame[f"p_{c}"] > 0.5) != frame["target"].fillna("").str.split("|").map(
            lambda labels, c=c: c in labels))) for c in classes}
        return {"title": "Errors per label on the validation rows", "image": plots.label_errors(rates), "text": ""}
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(frame["target"].astype(str), frame["prediction"].astype(str)):
        matrix[index[t], index[p]] += 1
    right = int(np.trace(matrix))
    return {"title": "Confusion matrix on the validation rows", "image": plots.confusion(matrix, classes),
            "text": f"{right} of {len(frame)} right ({right / max(len(frame), 1):.1%})"}


def _per_class(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """results.json's test_report: each class's precision, recall, F1 and support on the test rows, and the
    confusion matrix (one label per row)."""
    if not report or not report.get("classes"):
        return None
    columns = ["class", "precision", "recall", "f1", "support"]
    rows = [{"class": c, **{k: _fmt(report[k][i]) for k in columns[1:]}} for i, c in enumerate(report["classes"])]
    image = plots.confusion(np.asarray(report["confusion"]), report["classes"]) if report.get("confusion") else None
    return {"rows": rows, "columns": columns, "image": image}


def _worst(frame: pd.DataFrame | None, task: str) -> dict[str, Any]:
    if frame is None:
        return {"rows": [], "text": ""}
    if task == "regression":
        wrong, what = frame, "largest absolute error first"
    elif task == "multilabel":
        wrong, what = frame[frame["wrong"] > 0], "a label or more wrong, highest loss first"
    else:
        wrong, what = frame[frame["target"].astype(str) != frame["prediction"].astype(str)], \
            "mispredicted, most confident mistakes (highest loss) first"
    if wrong.empty:
        return {"rows": [], "text": f"every one of the {len(frame)} validation rows is predicted right"}
    top = wrong.sort_values("loss", ascending=False, kind="stable").head(WORST_ROWS)
    columns = list(top.columns)
    rows = [{c: _fmt(v) for c, v in r.items()} for r in top.to_dict("records")]
    return {"rows": rows, "columns": columns,
            "numeric": [c for c in columns if c not in ("target", "prediction", "text", "text terms")],
            "text": f"{len(wrong)} of {len(frame)} validation rows; {what}; "
                    + ("'file' is the image's path in the source" if "file" in columns else
                       "'row' is the 0-based data row of the input file")}


def _watch(watch: dict[str, Any] | None) -> dict[str, Any] | None:
    if not watch or not watch.get("epochs"):
        return None
    classes, task, preds = watch.get("classes") or [], watch["task"], watch["predictions"]
    picks = sorted({0, len(preds) // 2, len(preds) - 1})
    columns = ["row", "target", *(f"epoch {watch['epochs'][k]}" for k in picks)]

    def shown(p: Any, target: Any) -> str:
        if task == "regression":
            return _fmt(p)
        if task == "binary":
            return _fmt(p if target == 1 else 1 - p)
        if task == "multiclass":
            return _fmt(p[target])
        return _fmt(float(np.mean([q if t else 1 - q for q, t in zip(p, target)])))

    rows = []
    for i, (row, target) in enumerate(zip(watch["rows"], watch["targets"])):
        label = _fmt(target) if task in ("regression", "multilabel") else classes[target]
        rows.append({"row": row, "target": label, **{columns[2 + j]: shown(preds[k][i], target)
                                                     for j, k in enumerate(picks)}})
    return {"image": plots.watched(watch), "rows": rows, "columns": columns}


def _inputs(samples: dict[str, Any] | None) -> dict[str, Any] | None:
    if not samples or not samples.get("features"):
        return None
    names, rows = samples["feature_names"], samples["rows"]
    features = np.asarray([[np.nan if v is None else v for v in r] for r in samples["features"]], dtype=np.float64)
    shown = names[:20]  # the table shows the first 20 features; the picture shows them all
    texts = samples.get("texts") or [None] * len(rows)
    table = [{"row": r, **{n: _fmt(v) for n, v in zip(shown, f)}, "target": _fmt(t),
              **({"codes": _fmt(c)} if "codes" in samples else {}), **({"text terms": x} if x is not None else {})}
             for r, f, t, c, x in zip(rows, features, samples["targets"], samples.get("codes") or [None] * len(rows),
                                      texts)]
    text = (f"{len(rows)} training rows after preprocessing: {len(names)} features"
            + (" (the first 20 shown in the table)" if len(names) > 20 else "")
            + (f", and the codes of the embedded columns {', '.join(samples['embedding_names'])}"
               if "codes" in samples else "")
            + (", and the terms the text model reads (TF-IDF weights, heaviest first)" if "texts" in samples else "")
            + "; the target as the loss gets it")
    extra = ["codes"] if "codes" in samples else []
    extra += ["text terms"] if "texts" in samples else []
    return {"image": plots.samples_heatmap(features, rows, names) if len(names) else None, "rows": table,
            "columns": ["row", *shown, "target", *extra], "text": text}


def _journal(journal: dict[str, Any]) -> dict[str, Any] | None:
    if not journal:
        return None
    git = journal.get("git")
    if git is None:
        git_text = "not in a git repository (or git not installed)"
    else:
        git_text = (f"{git.get('commit') or '(no commit yet)'} on {git.get('branch')} in {git.get('root')}; "
                    + (f"uncommitted changes: {git.get('diff_file', 'no diff')} ({git.get('diff_bytes', 0)} bytes), "
                       f"{git.get('untracked_count', 0)} untracked" if git.get("dirty") else "clean"))
    data = journal.get("data") or {}
    parent = journal.get("parent")
    changed = [{"setting": k, "parent": _fmt(v[0]), "this run": _fmt(v[1])}
               for k, v in (parent or {}).get("changed", {}).items()]
    return {"command": shlex.join(map(str, journal.get("argv") or [])), "cwd": journal.get("cwd", ""),
            "git": git_text,
            "data": f"{data.get('source') or 'DataFrame'}: sha256 {data.get('sha256')}, {data.get('rows')} rows, "
                    f"{len(data.get('columns') or [])} columns",
            "parent": f"{parent['run']} ({len(changed)} settings changed)" if parent else "none",
            "launch": ", ".join(journal.get("launch") or []) or "nothing copied (no --config file, no .py script)",
            "environment": ", ".join(f"{k} {v}" for k, v in (journal.get("environment") or {}).items()),
            "changed": changed}


def refit_line(refit: dict[str, Any] | None) -> str:
    """The R2 pair in words (results.json's `refit`): '' for a run that kept its early-stopped network."""
    if not refit:
        return ""
    alone = ", ".join(f"{k} {_fmt(v)}" for k, v in (refit.get("early_stopped_test") or {}).items() if k != "loss")
    return (f"the early-stopped network averaged with a second one trained on the training and validation rows for "
            f"{refit.get('epochs')} epochs (R2); the early-stopped network alone on the test rows: {alone}")


def _headline_name(task: str) -> str:
    """The metric a run of `task` is judged by (tasks/: accuracy for classes, rmse for regression)."""
    return "rmse" if task in ("regression", "reconstruction") else "accuracy"


def distillation_line(record: dict[str, Any] | None, headline: str) -> str:
    """T12 in words (results.json's `distillation`): the student beside its teacher and beside the same
    model trained alone, on the test rows; '' for a run without a teacher."""
    if not record:
        return ""
    value = {k: _fmt((record.get(k) or {}).get(headline)) for k in ("student", "teacher", "alone")}
    return (f"{headline} {value['student']} as the student of {record.get('teacher_run')} (teacher {value['teacher']}; "
            f"the same model trained alone {value['alone']}); temperature {_fmt(record.get('temperature'))}, "
            f"labels' weight {_fmt(record.get('alpha'))}")


def robustness_line(record: dict[str, Any] | None, headline: str) -> str:
    """T13 in words (results.json's `robustness`): the headline metric clean and under FGSM and PGD; ''
    when it was not measured."""
    if not record:
        return ""
    trained = record.get("method_trained") or "off"
    return (f"{headline} clean {_fmt((record.get('clean') or {}).get(headline))}, under FGSM "
            f"{_fmt((record.get('fgsm') or {}).get(headline))}, under PGD ({record.get('pgd_steps')} steps) "
            f"{_fmt((record.get('pgd') or {}).get(headline))}, at epsilon {_fmt(record.get('epsilon'))} on the "
            f"continuous inputs; adversarial training: {trained}")


def pruning_line(doc: dict[str, Any] | None) -> str:
    """M14 in words (RUN/prune.json, `nnrecipe prune`): each method's test metric by sparsity beside the
    unpruned model's; '' when the run was not pruned."""
    if not isinstance(doc, dict) or not doc.get("methods"):
        return ""
    metric = doc.get("metric", "accuracy")
    unpruned = _fmt(((doc.get("unpruned") or {}).get("test") or {}).get(metric))
    parts = [f"{method}: " + ", ".join(f"{_fmt(step.get('sparsity'))} {_fmt((step.get('test') or {}).get(metric))}"
                                       for step in entry.get("steps") or [])
             for method, entry in doc["methods"].items()]
    return f"test {metric} by sparsity (unpruned {unpruned}): {'; '.join(parts)}; the models: pruned/, the plot: prune.png"


def ensemble_line(cv: dict[str, Any] | None) -> str:
    """A cross-validation ensemble's members and out-of-fold scores, in words (T14); '' for one model."""
    if not cv:
        return ""
    epochs = sorted(m["best_epoch"] or 0 for m in cv["members"])
    scores = ", ".join(f"{k} {_fmt(v)}" for k, v in cv["out_of_fold"].items())
    return (f"{cv['folds']} members, one per fold of the training and validation rows, averaged; best epochs "
            f"{epochs[0]}-{epochs[-1]}; out of fold (each row by the member that did not train on it): {scores}; "
            "the validation predictions (val_predictions.csv) are out of fold; the curves and watched rows are member 1's")


# the simple models of results.json's "baselines" (checks/simple_models.py), as the page and summary.txt name them
BASELINE_NAMES = {"majority": "majority", "mean": "mean", "logistic_regression": "LogisticRegression",
                  "ridge": "Ridge", "hist_gradient_boosting": "HistGradientBoosting"}
# the metrics the baselines line shows, of those the test rows have
BASELINE_METRICS = ("accuracy", "balanced_accuracy", "rmse", "r2")
RECALL_CLASSES = 10  # classes named in the recall line; more are counted


def baselines_line(baselines: dict[str, Any] | None, test: dict[str, Any]) -> str:
    """The network's test metrics beside the simple models' (C4 after training), in words; '' when the run
    recorded none (an older run, a task they do not serve)."""
    record: dict[str, Any] = baselines or {}
    models = record.get("models") or {}
    names = [k for k in BASELINE_METRICS if k in test]
    if not models or not names:
        return ""

    def values(scores: dict[str, Any]) -> str:
        return " / ".join(_metric(scores.get(k)) for k in names)

    shown = ", ".join(f"{BASELINE_NAMES.get(m, m)} {values(v)}" for m, v in models.items())
    rows, fit = record.get("rows"), record.get("fit_rows")
    sampled = f", {fit} of them sampled for the linear model and the trees" if fit and rows and fit < rows else ""
    skipped = "; ".join(f"{BASELINE_NAMES.get(m, m)} not scored ({why})"
                        for m, why in (record.get("skipped") or {}).items())
    return (f"{' / '.join(names)} on the test rows: network {values(test)}; {shown} (fit on the {rows} "
            f"{record.get('fit_on', '')} rows{sampled})" + (f"; {skipped}" if skipped else ""))


def _metric(v: Any) -> str:
    """A metric as summary.txt's test line writes it (4 decimals), a large RMSE in full."""
    if not isinstance(v, (int, float)):
        return "-"
    text = f"{v:.4f}" if abs(v) < 1000 else f"{v:.6g}"
    return "0.0000" if text == "-0.0000" else text


def recall_line(report: dict[str, Any] | None) -> str:
    """Each class's (label's) recall on the test rows and its rows there, from results.json's test_report;
    '' without one."""
    if not report or not report.get("classes"):
        return ""
    pairs = list(zip(report["classes"], report["recall"], report["support"]))
    shown = ", ".join(f"'{c}' {r:.3f} of {n}" for c, r, n in pairs[:RECALL_CLASSES])
    return shown + (f" ... ({len(pairs) - RECALL_CLASSES} more in results.json)" if len(pairs) > RECALL_CLASSES else "")


def _headline(results: dict[str, Any]) -> dict[str, Any] | None:
    """The network's test metrics beside the simple models' on the same rows: a table."""
    models = (results.get("baselines") or {}).get("models") or {}
    test = results.get("test") or {}
    if not models or not test:
        return None
    columns = ["model", *test]
    rows = [{"model": "the network", **{k: _fmt(v) for k, v in test.items()}},
            *({"model": BASELINE_NAMES.get(m, m), **{k: _fmt(v.get(k)) for k in test}} for m, v in models.items())]
    metric = next((k for k in ("accuracy", "rmse") if isinstance(test.get(k), (int, float))), None)
    scores = {"the network": test[metric], **{BASELINE_NAMES.get(m, m): v[metric] for m, v in models.items()
                                               if isinstance(v.get(metric), (int, float))}} if metric else {}
    return {"rows": rows, "columns": columns, "text": baselines_line(results.get("baselines"), test),
            "image": plots.headline(scores, metric) if metric else None}


def _with_recall(found: list[dict[str, Any]], report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The audit's D1 finding (made before training) with the test rows' per-class recall after it: the
    number an imbalance is judged by."""
    line = recall_line(report)
    if not line:
        return found
    return [{**v, "summary": f"{v['summary']} (after training, recall per class on the test rows: {line})"}
            if v["origin"] == "audit" and v["id"] == "D1" else v for v in found]


# an image run's pictures (recipes/images.py, data/audit/images.py), in the order the report shows them
PICTURES = (("worst_test_images.png", "The test images of the highest loss, by the final model: label -> "
             "prediction and its probability (C9)"),
            ("worst_images.png", "The validation images of the highest loss: label -> prediction and its "
             "probability (C9)"),
            ("watched_images.png", "Fixed validation images and the probability the model gave their label after "
             "the first, middle and last epoch (C10)"),
            ("batch.png", "Training images as the network gets them, augmented as in training (D14, D11)"),
            ("samples.png", "Images of each class, as read and resized (the audit)"))


def _pictures(path: Path) -> list[dict[str, str]]:
    """The image run's pictures that are in the folder, embedded."""
    found = []
    for name, text in PICTURES:
        file = path / name
        if file.is_file() and (data := file.read_bytes())[:8] == PNG_SIGNATURE:
            found.append({"image": plots.png_uri(data), "text": text, "alt": name})
    return found


def _predictions(path: Path, task: str, damaged: list[str]) -> pd.DataFrame | None:
    """val_predictions.csv (C9), its labels and texts as written (a row of no label is '', not NaN; a class
    'NA' stays 'NA'); None when there is none, or when it cannot be read as the run wrote it (added to
    `damaged`)."""
    file = path / VAL_PREDICTIONS
    if not file.is_file():
        return None
    try:
        frame = pd.read_csv(file)
        words = [c for c in ("target", "prediction", "text", "text terms") if c in frame.columns
                 and (c.startswith("text") or task != "regression")]
        if words:
            frame[words] = pd.read_csv(file, usecols=words, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError):
        frame = None
    needed = {"target", "prediction", "loss"} | ({"error"} if task == "regression" else set())
    if frame is None or not needed <= set(frame.columns) or task == "multilabel" and "wrong" not in frame.columns:
        damaged.append(VAL_PREDICTIONS)
        log.warning("%s cannot be read as the run wrote it (damaged or edited): the validation rows' errors are "
                    "left out; restore it, or train the run again", file)
        return None
    return frame


def report_context(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Everything report.html shows, read from the run folder."""
    run = read_run(run_dir)
    path, config, results, damaged = run.path, run.config, run.results, list(run.damaged)
    model = record(path, "model.json", damaged) or {}
    task = config.get("task", model.get("task", ""))
    frame = _predictions(path, task, damaged)
    watch = record(path, WATCH, damaged)
    classes = model.get("classes") or (watch or {}).get("classes") or (
        sorted(set(frame["target"].astype(str)) | set(frame["prediction"].astype(str))) if frame is not None else [])
    if frame is not None and task in ("binary", "multiclass") and not set(frame["target"]) | set(frame["prediction"]) \
            <= set(map(str, classes)):  # a label the model does not know: the file is not this run's
        damaged.append(VAL_PREDICTIONS)
        frame = None
    found = record(path, "lr_find.json", damaged)
    samples = record(path, SAMPLES, damaged)
    pruned = record(path, "prune.json", damaged)
    all_verdicts = _with_recall(verdicts(path), results.get("test_report"))
    return {
        # a folder of images has no target column: its labels are the subfolders' names (model.json's "label")
        "run": {"id": run.id, "note": run.note, "data": run.data, "kind": model.get("kind", "table"),
                "target": config.get("data", {}).get("target") or model.get("target"),
                "task": task, "date": run.date, "test": {k: _fmt(v) for k, v in (results.get("test") or {}).items()},
                "best": f"{results['best_epoch']} of {results.get('epochs_run')} by {run.monitor} = {_fmt(run.best)}"
                + (" (member 1's)" if results.get("cv") else "") if results.get("best_epoch") else "",
                "ensemble": ensemble_line(results.get("cv")),
                "final": refit_line(results.get("refit")),
                "distillation": distillation_line(results.get("distillation"), _headline_name(task)),
                "robustness": robustness_line(results.get("robustness"), _headline_name(task)),
                "pruning": pruning_line(pruned),
                "optimises": "{metric}: {why}".format(**config["optimises"]) if config.get("optimises") else "",
                # no test split: the test line's figures are the validation rows' (trained on by R2 or T14)
                "test_measured_on": str(results.get("test_measured_on") or ""),
                "finished": run.finished, "path": str(path)},
        "damaged": damaged,
        "unread_verdicts": f"the verdicts of {' and '.join(unread)} cannot be read (above): not shown"
        if (unread := [f for f in ("audit.json", "checks.json") if f in damaged]) else "",
        "headline": _headline(results),
        "verdicts": all_verdicts,
        "attention": [v for s in ("error", "fail", "warn") for v in all_verdicts if v["status"] == s],
        "verdict_counts": {s: n for s in ("error", "fail", "warn", "pass", "skipped")
                           if (n := sum(v["status"] == s for v in all_verdicts))},
        "curves": plots.curves(run.history, results.get("best_epoch")) if run.history else None,
        "lr_find": {**found, "image": plots.lr_range(found), "suggestion": _fmt(found.get("suggestion"))}
        if found and found.get("lrs") else None,
        "labels": _labels(path, run.journal, results.get("test_report")),
        "errors": _errors(frame, task, classes),
        "per_class": _per_class(results.get("test_report")),
        "worst": _worst(frame, task),
        "pictures": _pictures(path),
        "watch": _watch(watch),
        "inputs": _inputs(samples),
        "journal": _journal(run.journal),
        "config": [{"setting": k, "value": _fmt(v)} for k, v in flatten(config).items()],
    }


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write run_dir/report.html (or `out`) and return its path: `nnrecipe report RUN`."""
    context = report_context(run_dir)
    out = Path(out) if out is not None else Path(run_dir) / REPORT
    atomic_write(out, render("report.html.j2", **context))
    return out


def compare_context(run_dirs: Sequence[str | os.PathLike], comparison: Any = None) -> dict[str, Any]:
    """The compare page's content; `comparison`: compare_runs(run_dirs) when the caller has it already."""
    comparison = comparison if comparison is not None else compare_runs(run_dirs)
    runs: list[RunInfo] = comparison.runs
    keys = sorted({k for r in runs for k in r.flat()})
    names = ["loss", *dict.fromkeys(m for r in runs for m in plots.metric_names(r.history))]
    # two runs of one name (copies in two folders) were one curve: each keeps its folder's name then
    ids = [r.id for r in runs]
    labels = [f"{r.path.parent.name}/{r.id}" if ids.count(r.id) > 1 else r.id for r in runs]
    histories = {name: r.history for name, r in zip(labels, runs)}
    rows = [{"id": name, "date": r.date, "note": r.note, "data": r.data,
             "best": "-" if r.best is None else f"{r.monitor} {r.best:.4g}",
             "test": "-" if r.test is None else f"{r.test_metric} {r.test:.4g}"} for name, r in zip(labels, runs)]
    return {"runs": runs, "diff": {k: [_fmt(v) for v in vals] for k, vals in comparison.diff.items()},
            "changed": comparison.changed, "changed_short": short_key(comparison.changed, keys)
            if comparison.changed else None, "rows": rows, "columns": ["id", "date", "note", "data", "best", "test"],
            "apart": comparison.apart,
            "curves": plots.overlay(histories, names)}


def write_compare(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike = COMPARE,
                  comparison: Any = None) -> Path:
    """R7: one HTML page with the runs' curves overlaid and their differing settings, the single changed
    one highlighted (R3): `nnrecipe compare RUN RUN ... [--out compare.html]`."""
    context = compare_context(run_dirs, comparison)
    out = Path(out)
    atomic_write(out, render("compare.html.j2", **context))
    return out
