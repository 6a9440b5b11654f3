"""report.html, parsed with the standard library: the sections in the recipe's order, every image a PNG
that decodes, nothing loaded from the network, user text escaped, and the page made again from the run
folder alone."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from nnrecipe.report import write_report

SECTIONS = ["attention", "curves", "labels", "errors", "worst", "watch", "inputs", "verdicts", "record"]


def test_the_sections_come_in_the_recipes_order(classification_run, page):
    # the network beside the simple models first (issue 18), then (classes) the test rows per class
    assert page(classification_run / "report.html").sections == ["baselines", "test", *SECTIONS]


def test_the_test_rows_per_class_are_results_jsons(classification_run, page):
    results = json.loads((classification_run / "results.json").read_text())
    report = results["test_report"]
    p = page(classification_run / "report.html")
    section = p.text[p.text.index("The test rows, per class"):]
    for i, name in enumerate(report["classes"]):  # the row of each class: its name, precision, recall, F1, support
        at = section.index(name)
        assert section[at + 1:at + 5] == [f"{report[k][i]:.4g}" for k in ("precision", "recall", "f1")] + \
            [str(report["support"][i])]
    matrix = report["confusion"]
    assert sum(map(sum, matrix)) == results["rows"]["test"]  # every test row once
    right = sum(matrix[i][i] for i in range(len(matrix)))
    assert right / results["rows"]["test"] == pytest.approx(results["test"]["accuracy"])


def test_every_image_is_an_embedded_png_and_nothing_is_loaded_from_elsewhere(classification_run, page, check_images):
    html = (classification_run / "report.html").read_text()
    # curves, LR range test, confusion matrix, predictions over epochs, input samples, the audit's D1 plot
    check_images(page(classification_run / "report.html"), at_least=6)
    for needle in ("<script", "<link", "@import", "url(", "<iframe"):
        assert needle not in html.lower()


def test_the_answer_then_what_needs_attention_then_every_verdict_folded(classification_run, page):
    p = page(classification_run / "report.html")
    html = (classification_run / "report.html").read_text()
    checks = json.loads((classification_run / "checks.json").read_text())
    findings = json.loads((classification_run / "audit.json").read_text())["findings"]
    assert findings and checks
    every = [*findings, *checks]
    # every verdict in the folded table, in the order they ran
    rows = [a for t, a in p.tags if t == "tr" and a.get("class") in ("pass", "warn", "fail", "skipped")]
    assert [r["class"] for r in rows] == [v["status"] for v in every]
    text = "".join(p.text)
    assert text.index("The answer") < text.index("What needs attention") < text.index("Curves (R5)") \
        < text.index("Every verdict of the recipe") < text.index("The record")
    # what needs attention: the failures, then the warnings, each with its fix; none of the passes
    attention = text[text.index("What needs attention"):text.index("Curves (R5)")]
    shown = [v for s in ("fail", "warn") for v in every if v["status"] == s]
    at = [attention.index(v["summary"]) for v in shown]
    assert at == sorted(at) and all(f"fix: {v['fix']}" in attention for v in shown)
    assert not any(v["summary"] in attention for v in every if v["status"] == "pass")
    assert all(v["summary"] in text for v in checks)
    # evidence as a table to read under each verdict, folded; no raw JSON object
    assert html.count("<details><summary>evidence</summary>") == sum(bool(v["evidence"]) for v in every)
    assert '{"' not in html
    assert '<img class="chart" src="data:image/png;base64,' in html  # the headline chart


def test_user_text_is_escaped(classification_run, page):
    html = (classification_run / "report.html").read_text()
    assert "first &lt;b&gt;try&lt;/b&gt; &amp; see" in html
    assert "first <b>try</b> & see" in "".join(page(classification_run / "report.html").text)


def test_classification_shows_the_confusion_matrix_and_the_worst_rows_by_loss(classification_run, page):
    p = page(classification_run / "report.html")
    text = "".join(p.text)
    assert "Confusion matrix on the validation rows" in text
    frame = pd.read_csv(classification_run / "val_predictions.csv")
    wrong = frame[frame["target"] != frame["prediction"]]
    assert f"{len(wrong)} of {len(frame)} validation rows; mispredicted" in text
    first_worst = str(wrong.sort_values("loss", ascending=False)["row"].iloc[0])
    assert first_worst in text[text.index("Worst mispredicted"):]
    assert "Predictions over the epochs" in text and "epoch 1" in text


def test_the_inputs_and_the_record_are_shown(classification_run, page):
    text = "".join(page(classification_run / "report.html").text)
    inputs = text[text.index("Samples as they enter the network"):]
    for name in ("color=blue", "color=green", "color=red"):
        assert name in inputs
    journal = json.loads((classification_run / "journal.json").read_text())
    assert journal["data"]["sha256"] in text
    assert f"torch {journal['environment']['torch']}" in text


def test_the_report_is_made_again_from_the_run_folder_alone(classification_run, tmp_path, page):
    copy = tmp_path / classification_run.name
    shutil.copytree(classification_run, copy)
    (copy / "report.html").unlink()
    assert write_report(copy) == copy / "report.html"
    again, first = page(copy / "report.html"), page(classification_run / "report.html")
    assert again.sections == ["baselines", "test", *SECTIONS]
    assert again.images == first.images  # the same figures, byte for byte


def test_regression_shows_the_residuals_and_the_largest_errors(regression_run, page, check_images):
    p = page(regression_run / "report.html")
    check_images(p, at_least=5)
    text = "".join(p.text)
    assert "Residuals on the validation rows" in text and "largest absolute error first" in text
    assert p.sections == ["baselines", *SECTIONS]


def test_a_run_folder_from_before_the_journal_still_gets_a_report(tmp_path, page, check_images):
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": {"target": "y"}, "task": "binary", "note": ""}))
    (run / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 0.7, "val_loss": 0.6}\n')
    p = page(write_report(run))
    assert p.sections == SECTIONS
    check_images(p, at_least=1)
    text = "".join(p.text)
    for missing in ("no checks.json or audit.json in this run folder", "no val_predictions.csv in this run folder",
                    "no watch.json in this run folder", "no samples.json in this run folder",
                    "no journal.json in this run folder"):
        assert missing in text


def test_a_multilabel_run_shows_errors_per_label(tmp_path, page, check_images):
    import torch

    from nnrecipe.track.predictions import WATCH, record_predictions

    run = tmp_path / "ml"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": {"target": "a,b"}, "task": "multilabel", "note": ""}))
    (run / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 0.7, "val_loss": 0.6, "val_accuracy": 0.5}\n'
                                       '{"epoch": 2, "train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.75}\n')
    frame = record_predictions(run, torch.tensor([[2.0, -2.0], [2.0, 2.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
                               [4, 5], "multilabel", ["a", "b"])
    assert frame.to_dict("list")["prediction"] == ["a|b", "a"] and frame["wrong"].tolist() == [1, 0]
    (run / WATCH).write_text(json.dumps({"task": "multilabel", "classes": ["a", "b"], "rows": [4, 5],
                                         "targets": [[1, 0], [0, 1]], "epochs": [1, 2],
                                         "predictions": [[[0.6, 0.4], [0.3, 0.7]], [[0.8, 0.1], [0.2, 0.9]]]}))
    p = page(write_report(run))
    assert p.sections == SECTIONS
    check_images(p, at_least=3)  # curves, errors per label, predictions over the epochs
    text = "".join(p.text)
    assert "Errors per label on the validation rows" in text and "a label or more wrong" in text
