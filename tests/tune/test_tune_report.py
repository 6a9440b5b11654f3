"""The study report without training: a study of made-up trials, rendered through the run report's Jinja
templates (study.html.j2 extends base.html.j2): every section, user text escaped, a lost trial's reason, and
no retrained model."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from nnrecipe.io import read_json
from nnrecipe.tune import report
from nnrecipe.tune.report import write_report
from nnrecipe.tune.study import TuneResult


def test_the_study_report_renders_every_section_through_the_templates(tmp_path: Path, monkeypatch):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    lr, act = FloatDistribution(1e-4, 1e-1, log=True), CategoricalDistribution(["relu", "<gelu>"])
    for number, (value, rate, name) in enumerate([(0.7, 0.0123456, "relu"), (0.8, 0.001, "<gelu>")]):
        study.add_trial(create_trial(value=value, params={"lr": rate, "activation": name},
                                     distributions={"lr": lr, "activation": act},
                                     user_attrs={"best_epoch": 3, "test": {"accuracy": 0.75 + number / 10}}))
    study.add_trial(create_trial(state=TrialState.FAIL, params={"lr": 0.05, "activation": "relu"},
                                 distributions={"lr": lr, "activation": act}))
    rows = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
             "best_epoch": t.user_attrs.get("best_epoch"), "lost": "worker w1 is gone" if t.number == 2 else None}
            for t in study.trials]
    result = TuneResult("a<b>", "sqlite:///x.db", tmp_path, "val_accuracy", "maximize", 1, 0.8,
                        dict(study.trials[1].params), {"COMPLETE": 2, "FAIL": 1}, trials=rows)

    page = write_report(study, result, best=study.trials[1]).read_text()
    assert page.startswith("<!DOCTYPE html>") and "made by nnrecipe" in page  # base.html.j2's frame
    assert "<title>study a&lt;b&gt;</title>" in page and "<h1>study a&lt;b&gt;</h1>" in page
    assert "maximize val_accuracy over 3 trials (2 complete, 1 fail); storage sqlite:///x.db" in page
    for heading in ("scores", "parameter importances", "optimization history", "trials"):
        assert f"<h2>{heading}</h2>" in page
    assert ('<tr><td>search: best trial 1</td><td class="num">0.8000</td><td class="num">0.8500</td>'
            "<td>trained on train</td></tr>") in page
    assert ('<tr><td>R2: best retrained</td><td class="num">-</td><td class="num">-</td>'
            "<td>not retrained</td></tr>") in page
    assert "best parameters: {&#39;lr&#39;: 0.001, &#39;activation&#39;: &#39;&lt;gelu&gt;&#39;}" in page
    assert '<img alt="optimization history" src="data:image/png;base64,' in page
    # the trials: the lost reason beside the state, "-" for no score, params by _short, numbers right-aligned
    assert ("<tr><th>trial</th><th>state</th><th>val_accuracy</th><th>best epoch</th><th>activation</th>"
            "<th>lr</th></tr>") in page
    assert ('<tr><td class="num">0</td><td>COMPLETE</td><td class="num">0.7000</td><td class="num">3</td>'
            '<td>relu</td><td class="num">0.0123</td></tr>') in page
    assert ('<tr><td class="num">2</td><td>FAIL (worker w1 is gone)</td><td class="num">-</td>'
            '<td class="num">-</td><td>relu</td><td class="num">0.05</td></tr>') in page
    assert "<gelu>" not in page and "&lt;gelu&gt;" in page
    summary = read_json(tmp_path / "study.json")
    assert summary["refit"] is None and summary["best_trial_test"] == {"accuracy": 0.85}
    # two completed trials: too few for fANOVA's shares to mean anything, and the page says how many it needs
    assert summary["importances"] == ("not shown: 2 completed trials; importances need 10 or more to say more than "
                                      "the noise of the forest that estimates them (--trials)")
    assert "not shown: 2 completed trials" in page

    # no importances: why, across the table
    monkeypatch.setattr(report, "_importances", lambda study: "not available: <too few>")
    page = write_report(study, result, best=study.trials[1]).read_text()
    assert ("<tr><th>parameter</th><th>importance</th></tr>\n"
            '<tr><td colspan="2">not available: &lt;too few&gt;</td></tr>') in page


def test_importances_need_enough_completed_trials():
    import optuna

    def objective(trial):
        return trial.suggest_float("x", -1, 1) ** 2 + 0.01 * trial.suggest_float("y", -1, 1)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=9)
    assert report._importances(study).startswith("not shown: 9 completed trials; importances need 10 or more")
    study.optimize(objective, n_trials=1)
    found = report._importances(study)  # 10 trials of 2 parameters: shown, x first
    assert isinstance(found, dict) and list(found) == ["x", "y"] and found["x"] > 0.5
