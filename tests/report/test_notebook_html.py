"""Issue 23 in a notebook: the `_repr_html_` of a Diagnosis, an Audit and a Run (report/notebook.py) on real
objects, with user text escaped and the run's plots inline; the progress bar's widget in a Jupyter kernel that
can draw it, one plain line elsewhere, and no warning either way."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import sys
import types
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from torch import nn

import nnrecipe
from nnrecipe import ProgressBar, TrainConfig, Verdict
from nnrecipe.testing import blobs, small_table
from nnrecipe.train.callbacks import progress

PLANTED = '<script>alert("x")</script>'


class Cells(HTMLParser):
    """The tags, the text, and each table row's cells as text."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._style = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._style = tag == "style"
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        self._style = False
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._style:  # the page's CSS, not its text
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def _escaped(html: str) -> None:
    """The planted markup is text on the page, never a tag."""
    page = Cells(html)
    assert "script" not in {t for t, _ in page.tags}
    assert PLANTED in "".join(page.text)


def test_a_diagnosis_shows_each_verdict_with_its_coloured_status_and_fix() -> None:
    x, y = blobs(128, features=8, classes=3)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    diagnosis = nnrecipe.doctor(model, (x, y), loss_fn=nn.CrossEntropyLoss(),
                                optimizer=torch.optim.Adam(model.parameters(), 1e-3), checks=["lint", "C2", "C1"])
    diagnosis.append(Verdict("X1", "planted", "warn", f"a summary with {PLANTED}", fix=f"a fix with {PLANTED}"))
    html = diagnosis._repr_html_()
    page = Cells(html)
    assert page.rows[0] == ["id", "check", "status", "summary", "fix"]
    assert [r[:3] for r in page.rows[1:]] == [[v.id, v.name, v.status] for v in diagnosis]
    assert page.rows[-1][3:] == [f"a summary with {PLANTED}", f"a fix with {PLANTED}"]
    assert all(r[4] == "" for r, v in zip(page.rows[1:], diagnosis) if v.status == "pass")  # a pass needs no fix
    colours = [a["style"] for a in page.named("span")]
    assert len(colours) == len(diagnosis) and colours[-1] == "background:#b26a00"  # warn: amber
    _escaped(html)


def test_an_audit_shows_what_was_audited_and_its_findings() -> None:
    df = small_table(120, seed=0)
    df[PLANTED] = [f"id{i}" for i in range(len(df))]  # an ID-like column, which the audit names
    found = nnrecipe.audit(df, "y")
    html = found._repr_html_()
    page = Cells(html)
    assert "".join(page.text).startswith("audit of the table: 120 rows, ")
    assert [r[:3] for r in page.rows[1:]] == [[v.id, v.name, v.status] for v in found]
    assert any(PLANTED in r[3] and r[2] == "warn" for r in page.rows[1:])
    _escaped(html)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    return nnrecipe.train_table(small_table(200, seed=1), "y", out=tmp_path_factory.mktemp("runs"), note=PLANTED,
                                train_config=TrainConfig(epochs=3, seed=0, patience=None, refit="off"),
                                checks=("lint", "C2"))


def test_a_run_shows_its_metrics_beside_the_baselines_its_warnings_and_its_plots(run) -> None:
    html = run._repr_html_()
    page = Cells(html)
    baselines = run.results["baselines"]["models"]
    head = ["test metric", "this run", *baselines]
    assert head == ["test metric", "this run", "majority", "logistic_regression", "hist_gradient_boosting"]
    table = page.rows[page.rows.index(head) + 1:page.rows.index(head) + 1 + len(run.test)]
    assert [r[0] for r in table] == list(run.test)
    accuracy = table[list(run.test).index("accuracy")]
    assert accuracy == ["accuracy", f"{run.test['accuracy']:.4g}",
                        *(f"{baselines[m]['accuracy']:.4g}" for m in baselines)]
    # the verdicts that need attention, failures first; the passes only counted
    attention = [v for s in ("fail", "error", "warn") for v in [*run.verdicts, *run.audit] if v.status == s]
    verdict_head = ["id", "check", "status", "summary", "fix"]
    listed = [r[:3] for r in page.rows[page.rows.index(verdict_head) + 1:]] if attention else []
    assert verdict_head in page.rows or not attention
    assert listed == [[v.id, v.name, v.status] for v in attention]
    # the curves and the label distribution (audit), each a PNG that opens
    from PIL import Image

    images = page.named("img")
    assert [a["alt"] for a in images] == ["curves", "label_distribution.png"]
    for a in images:
        data = base64.b64decode(a["src"].removeprefix("data:image/png;base64,"), validate=True)
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    [link] = page.named("a")
    assert Path(link["href"]).resolve() == (run.run_dir / "report.html").resolve() and link["href"] == os.path.relpath(
        run.run_dir / "report.html")
    _escaped(html)  # the note
    assert json.loads((run.run_dir / "config.json").read_text())["note"] == PLANTED


class _Trainer(types.SimpleNamespace):
    """What ProgressBar reads of a Trainer."""


def _epoch(bar: ProgressBar) -> None:
    trainer = _Trainer(steps_per_epoch=3, batch_in_epoch=0, config=types.SimpleNamespace(epochs=2))
    bar.on_epoch_start(trainer, {"epoch": 1})
    for _ in range(3):
        bar.on_batch_end(trainer, {"loss": torch.tensor(0.5)})
    bar.on_epoch_end(trainer, {"epoch": 1, "train_loss": 0.5, "val_loss": 0.25})


def test_in_notebook_reads_the_kernel_of_the_running_ipython(monkeypatch) -> None:
    def shell(name: str) -> types.ModuleType:
        fake = types.ModuleType("IPython")
        fake.get_ipython = lambda: type(name, (), {})()  # type: ignore[attr-defined]
        return fake

    monkeypatch.setitem(sys.modules, "IPython", shell("ZMQInteractiveShell"))
    assert progress.in_notebook() is True
    monkeypatch.setitem(sys.modules, "IPython", shell("TerminalInteractiveShell"))  # ipython in a terminal
    assert progress.in_notebook() is False
    monkeypatch.delitem(sys.modules, "IPython")  # a script
    assert progress.in_notebook() is False


def test_the_bar_is_the_notebook_widget_in_a_kernel_that_can_draw_it(monkeypatch) -> None:
    import tqdm.notebook
    import tqdm.std

    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: types.SimpleNamespace() if name == "ipywidgets" else find(name, *a))
    assert progress.tqdm_class() is tqdm.notebook.tqdm
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ipywidgets" else find(name, *a))
    assert progress.tqdm_class() is tqdm.std.tqdm  # a kernel without ipywidgets: the plain bar


@pytest.mark.parametrize("kernel", [True, False])
def test_without_ipywidgets_the_bar_is_one_plain_line_and_warns_nothing(monkeypatch, kernel: bool) -> None:
    import tqdm.std

    monkeypatch.setattr(progress, "in_notebook", lambda: kernel)
    if importlib.util.find_spec("ipywidgets") is not None:  # this environment has it: hide it
        monkeypatch.setitem(sys.modules, "ipywidgets", None)
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert progress.tqdm_class() is tqdm.std.tqdm
    stream = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm.auto's TqdmExperimentalWarning or IProgress warning would raise
        _epoch(ProgressBar(stream=stream))
    out = stream.getvalue()
    assert out.startswith("\repoch 1/2:   0%|") and "\n" not in out.split("epoch   1")[0]  # one line, redrawn
    assert out.endswith("epoch   1  train_loss 0.5  val_loss 0.25\n")
