"""R3, R4, R7: configs flattened and compared, the single changed setting named; run folders listed,
filtered and sorted (`nnrecipe runs`). Hand-made run folders: the reading is what is tested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnrecipe.config import TrainConfig
from nnrecipe.errors import ConfigError
from nnrecipe.track import compare_runs, config_diff, filter_runs, flatten, format_runs, list_runs, single_change, \
    sort_runs
from nnrecipe.track.diff import MISSING, short_key
from nnrecipe.track.runs import read_metrics, read_run, varying_params

BASE = {"data": {"target": "y", "drop": []}, "model": {"hidden": [128, 128], "dropout": 0.2},
        "train": {"lr": 0.001, "optimizer": "adam", "batch_size": 32, "monitor": "val_loss", "mode": "auto"},
        "task": "binary", "source": "/data/table.csv", "note": "", "created": "2026-01-01T10:00:00+0000"}


def make_run(folder: Path, name: str, *, note: str = "", created: str = "2026-01-01T10:00:00+0000",
             best: float | None = 0.5, losses: tuple[float, ...] = (0.9, 0.6, 0.5), **train: object) -> Path:
    run = folder / name
    run.mkdir(parents=True)
    config = json.loads(json.dumps(BASE))
    config["train"].update(train)
    config.update(note=note, created=created)
    (run / "config.json").write_text(json.dumps(config))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "train_loss": v + 0.1, "val_loss": v,
                                                           "val_accuracy": 1 - v}) + "\n"
                                               for i, v in enumerate(losses)))
    if best is not None:
        (run / "results.json").write_text(json.dumps({"best_value": best, "monitor": "val_loss", "best_epoch": 3,
                                                      "epochs_run": 3, "test": {"loss": best, "accuracy": 0.8}}))
    return run


def test_flatten_joins_keys_with_dots_and_keeps_lists_as_values():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == {"a.b": 1, "a.c.d": [1, 2], "e": None}


def test_config_diff_names_each_changed_setting_with_every_value():
    other = json.loads(json.dumps(BASE))
    other["train"]["lr"] = 0.003
    other["note"], other["created"] = "faster", "2026-02-02"  # when and why: not a change of setting
    diff = config_diff([BASE, other])
    assert diff == {"train.lr": [0.001, 0.003]}
    assert single_change(diff) == "train.lr"
    assert short_key("train.lr", list(flatten(BASE))) == "lr"


def test_a_setting_one_config_lacks_shows_as_absent_and_two_changes_name_no_single_one():
    other = json.loads(json.dumps(BASE))
    other["train"]["lr"], other["model"]["batchnorm"] = 0.003, True
    diff = config_diff([BASE, other])
    assert diff == {"train.lr": [0.001, 0.003], "model.batchnorm": [MISSING, True]}
    assert single_change(diff) is None
    assert single_change({}) is None


def test_floats_written_back_from_json_compare_equal():
    assert config_diff([{"lr": 0.1 + 0.2}, {"lr": 0.30000000000000004}]) == {}
    assert config_diff([{"lr": 0.3}, {"lr": 0.30000001}]) == {"lr": [0.3, 0.30000001]}


def test_list_runs_reads_every_run_folder_oldest_first_and_skips_other_folders(tmp_path):
    make_run(tmp_path, "b", created="2026-01-02T00:00:00+0000", lr=0.003)
    make_run(tmp_path, "a", created="2026-01-01T00:00:00+0000")
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "mlflow.db").write_text("")
    runs = list_runs(tmp_path)
    assert [r.id for r in runs] == ["a", "b"]
    assert list_runs(tmp_path / "a")[0].id == "a"  # a run folder itself


def test_a_run_without_results_takes_its_best_from_the_metrics_and_a_torn_line_is_skipped(tmp_path):
    run = make_run(tmp_path, "running", best=None, losses=(0.9, 0.4, 0.7))
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "val_lo')  # killed mid-write
    assert len(read_metrics(run)) == 3
    assert read_run(run).best == 0.4


def test_format_runs_shows_the_settings_that_differ_and_the_best_metric(tmp_path):
    make_run(tmp_path, "r1", note="baseline")
    make_run(tmp_path, "r2", note="lr x3", lr=0.003, best=0.4)
    runs = list_runs(tmp_path)
    assert varying_params(runs) == ["train.lr"]
    lines = format_runs(runs).splitlines()
    assert lines[0].split() == ["id", "date", "note", "data", "lr", "best", "test"]
    assert lines[1].split() == ["r1", "2026-01-01", "10:00:00", "baseline", "table.csv", "0.001", "val_loss", "0.5",
                                "accuracy", "0.8"]
    assert lines[2].split()[-6:] == ["table.csv", "0.003", "val_loss", "0.4", "accuracy", "0.8"]


def test_runs_that_share_every_setting_show_the_key_parameters(tmp_path):
    make_run(tmp_path, "r1")
    make_run(tmp_path, "r2")
    header = format_runs(list_runs(tmp_path)).splitlines()[0].split()
    assert header == ["id", "date", "note", "data", "hidden", "optimizer", "lr", "batch_size", "best", "test"]


def test_filter_by_note_text_and_by_a_setting_value(tmp_path):
    make_run(tmp_path, "r1", note="Baseline run")
    make_run(tmp_path, "r2", note="lr x3", lr=0.003)
    make_run(tmp_path, "r3", note="baseline, other seed", lr=0.003)
    runs = list_runs(tmp_path)
    assert [r.id for r in filter_runs(runs, ["note~baseline"])] == ["r1", "r3"]
    assert [r.id for r in filter_runs(runs, ["lr=3e-3"])] == ["r2", "r3"]  # numbers compare as numbers
    assert [r.id for r in filter_runs(runs, ["note~baseline", "train.lr=0.003"])] == ["r3"]
    assert [r.id for r in filter_runs(runs, ["optimizer=adam"])] == ["r1", "r2", "r3"]


def test_sort_by_a_setting_or_a_column_descending_with_a_minus(tmp_path):
    make_run(tmp_path, "r1", best=0.5, lr=0.01)
    make_run(tmp_path, "r2", best=0.3, lr=0.001)
    make_run(tmp_path, "r3", best=None, lr=0.1, losses=())
    runs = list_runs(tmp_path)
    assert [r.id for r in sort_runs(runs, "lr")] == ["r2", "r1", "r3"]
    assert [r.id for r in sort_runs(runs, "best")] == ["r2", "r1", "r3"]  # no value: last
    assert [r.id for r in sort_runs(runs, "-best")] == ["r1", "r2", "r3"]


def test_an_unknown_key_or_filter_is_refused_with_the_fix(tmp_path):
    make_run(tmp_path, "r1")
    runs = list_runs(tmp_path)
    with pytest.raises(ConfigError) as e:
        sort_runs(runs, "lrr")
    assert str(e.value) == ("'lrr' is neither a column (id, date, note, data, best, test) nor a setting of these runs "
                            "(did you mean 'lr'?)")
    with pytest.raises(ConfigError) as e:
        filter_runs(runs, ["note"])
    assert str(e.value) == "--filter 'note': write KEY~text (contains) or KEY=value (equals), e.g. note~baseline " \
                           "or lr=0.001"
    with pytest.raises(ConfigError) as e:
        list_runs(tmp_path / "nope")
    assert str(e.value) == (f"{tmp_path / 'nope'}: no such folder; give the folder `nnrecipe train --out` wrote "
                            "runs to (default: runs)")


def test_compare_names_the_single_changed_setting(tmp_path):
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b", lr=0.003, note="only the rate")
    c = make_run(tmp_path, "c", lr=0.003, optimizer="sgd")
    two = compare_runs([a, b])
    assert two.diff == {"train.lr": [0.001, 0.003]} and two.changed == "train.lr"
    three = compare_runs([a, b, c])
    assert three.diff == {"train.lr": [0.001, 0.003, 0.003], "train.optimizer": ["adam", "adam", "sgd"]}
    assert three.changed is None


def test_compare_needs_two_run_folders(tmp_path):
    a = make_run(tmp_path, "a")
    with pytest.raises(ConfigError) as e:
        compare_runs([a])
    assert str(e.value) == "compare needs two run folders or more, got 1; e.g. nnrecipe compare runs/A runs/B"
    with pytest.raises(ConfigError) as e:
        compare_runs([a, tmp_path])
    assert str(e.value) == (f"{tmp_path}: no config.json there; give a run folder that `nnrecipe train` made "
                            "(`nnrecipe runs DIR` lists them)")


def test_a_damaged_run_folder_is_named_and_skipped_by_the_listing(tmp_path, caplog):
    make_run(tmp_path, "good")
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "config.json").write_text('{"data": ')
    assert [r.id for r in list_runs(tmp_path)] == ["good"]
    assert caplog.messages == [f"{tmp_path / 'torn' / 'config.json'} cannot be read as a JSON object; the run folder "
                               "is damaged: restore the file or remove the folder"]


@pytest.mark.parametrize("monitor, mode, best", [
    ("val_loss", "auto", 0.1), ("val_precision", "auto", 0.8), ("val_recall", "auto", 0.8),
    ("val_acc", "auto", 0.8), ("val_macro_f1", "auto", 0.8), ("val_rmse", "auto", 0.1), ("val_score", "max", 0.8)])
def test_a_running_runs_best_follows_the_trainers_direction(tmp_path, monitor, mode, best):
    """`runs` reads the best of a run still training as the Trainer picks it: one rule (config.monitor_mode)."""
    run = make_run(tmp_path, "running", best=None, monitor=monitor, mode=mode)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": i + 1, monitor: v}) + "\n"
                                               for i, v in enumerate((0.5, 0.8, 0.1))))
    assert read_run(run).best == best
    assert TrainConfig(monitor=monitor, mode=mode).monitor_mode == ("max" if best == 0.8 else "min")
