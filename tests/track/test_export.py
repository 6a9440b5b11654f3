"""The exporters against the real libraries, writing to a temporary folder and read back: TensorBoard's
event files through its EventAccumulator, MLflow's local SQLite store through MlflowClient. And both stay
out of `import nnrecipe`, with a clear error naming the extra when they are missing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nnrecipe.errors import MissingDependencyError
from nnrecipe.track.diff import flatten
from nnrecipe.track.export import export_mlflow, export_run, export_tensorboard

CONFIG = {"data": {"target": "y"}, "model": {"hidden": [64, 64], "dropout": None},
          "train": {"lr": 0.003, "optimizer": "adam", "monitor": "val_loss", "mode": "auto"},
          "task": "binary", "note": "exported", "created": "2026-01-01T10:00:00+0000", "source": None}
HISTORY = [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_accuracy": 0.6, "lr": 0.003},
           {"epoch": 2, "train_loss": 0.5, "val_loss": 0.45, "val_accuracy": 0.8, "lr": 0.003}]


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "runs" / "20260101-100000-t-y"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(CONFIG))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in HISTORY))
    (run / "results.json").write_text(json.dumps({"test": {"loss": 0.5, "accuracy": 0.75}, "best_value": 0.45,
                                                  "monitor": "val_loss", "best_epoch": 2}))
    (run / "journal.json").write_text(json.dumps({"git": {"commit": "abc123"}, "data": {}}))
    return run


def test_tensorboard_event_files_read_back(run_dir, tmp_path):
    pytest.importorskip("tensorboard", reason="the export extra: pip install 'nnrecipe[export]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    log_dir = export_tensorboard(run_dir, tmp_path / "tb")
    events = EventAccumulator(str(log_dir))
    events.Reload()
    for name in ("train_loss", "val_loss", "val_accuracy", "lr"):
        assert [(e.step, round(e.value, 6)) for e in events.Scalars(name)] == [(r["epoch"], r[name]) for r in HISTORY]
    assert [(e.step, e.value) for e in events.Scalars("test_accuracy")] == [(2, 0.75)]
    assert [round(e.value, 6) for e in events.Scalars("best_val_loss")] == [0.45]
    # the settings, from the HParams plugin's summary
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
               for k, v in data.session_start_info.hparams.items()}
    assert hparams["train.lr"] == pytest.approx(0.003) and hparams["train.optimizer"] == "adam"
    assert hparams["model.hidden"] == "[64, 64]" and hparams["model.dropout"] == "None"


def test_tensorboard_goes_into_the_run_folder_by_default(run_dir):
    pytest.importorskip("tensorboard", reason="the export extra: pip install 'nnrecipe[export]'")
    assert export_run(run_dir, "tensorboard") == str(run_dir / "tensorboard")
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tensorboard").iterdir())


@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")  # MLflow's own SQLAlchemy use
def test_mlflow_local_store_reads_back(run_dir, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the export extra: pip install 'nnrecipe[export]'")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # nothing may land in the current folder
    run_id = export_mlflow(run_dir)  # the default: a SQLite store beside the run folders
    uri = f"sqlite:///{run_dir.parent / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.run_name == run_dir.name and run.info.status == "FINISHED"
    expected = {k: str(v) for k, v in flatten(CONFIG).items()}
    assert run.data.params == expected
    assert run.data.tags["mlflow.note.content"] == "exported"
    assert run.data.tags["mlflow.source.git.commit"] == "abc123"
    for name in ("train_loss", "val_loss", "val_accuracy"):
        assert [(m.step, m.value) for m in client.get_metric_history(run_id, name)] == \
            [(r["epoch"], r[name]) for r in HISTORY]
    assert run.data.metrics["test_accuracy"] == 0.75 and run.data.metrics["best_val_loss"] == 0.45
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "nnrecipe"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [run_dir.name, "mlflow.db"]


def test_a_missing_library_is_named_with_the_extra_to_install(run_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` sees when it is not installed
    with pytest.raises(MissingDependencyError) as e:
        export_mlflow(run_dir, tracking_uri="sqlite:///unused.db")
    assert str(e.value).startswith("exporting needs mlflow-skinny, which is not installed (")
    assert str(e.value).endswith("); install it with pip install 'nnrecipe[export]'")
    assert isinstance(e.value, ImportError)


def test_import_nnrecipe_loads_no_exporter_plotting_or_template_library():
    code = ("import sys, nnrecipe, nnrecipe.track, nnrecipe.report, nnrecipe.track.export; "
            "print(sorted(m for m in ('mlflow', 'tensorboard', 'torch.utils.tensorboard', 'matplotlib', 'jinja2') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
