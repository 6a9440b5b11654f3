"""R3, R4, R8: the journal records the git commit and the uncommitted diff (in a real temporary
repository), the data's fingerprint from the data layer's own hash, the parent and what changed, and a
copy of the config file or script that launched the run."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from nnrecipe.data import cache
from nnrecipe.errors import ConfigError
from nnrecipe.track import check_parent, git_record, write_journal
from nnrecipe.data.cache import data_fingerprint
from nnrecipe.track.journal import copy_launcher, label_counts, launching_script, parent_record

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one commit (train.py), then an uncommitted edit and an untracked file."""
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.org")
    git(repo, "config", "user.name", "t")
    (repo / "train.py").write_text("lr = 0.1\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    (repo / "train.py").write_text("lr = 0.3\n")
    (repo / "notes.txt").write_text("new\n")
    return repo


@needs_git
def test_git_record_holds_the_commit_the_diff_and_the_untracked_files(repo):
    record = git_record(repo)
    assert record["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert record["root"] == str(repo.resolve())
    assert record["dirty"] is True
    assert "-lr = 0.1\n+lr = 0.3" in record["diff"]
    assert record["untracked"] == ["notes.txt"] and record["untracked_count"] == 1


@needs_git
def test_a_clean_tree_records_no_diff(repo):
    git(repo, "checkout", "-q", "--", "train.py")
    (repo / "notes.txt").unlink()
    record = git_record(repo / "train.py")  # a file: its folder's repository
    assert (record["dirty"], record["diff"], record["untracked"]) == (False, "", [])


@needs_git
def test_outside_a_repository_or_without_git_the_record_is_absent(tmp_path, monkeypatch):
    alone = tmp_path / "alone"
    alone.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # do not find a repository above tmp_path
    assert git_record(alone) is None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git executable at all
    assert git_record(alone) is None


@needs_git
def test_the_journal_of_a_run_launched_by_a_script_in_a_dirty_repository(repo, tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    settings = tmp_path / "settings.json"
    settings.write_text('{"train": {"lr": 0.3}}')
    journal = write_journal(run_dir, config={"train": {"lr": 0.3}}, data={"sha256": "x"}, note="try 0.3",
                            config_file=settings, argv=[str(repo / "train.py"), "--fast"], cwd=tmp_path)
    on_disk = json.loads((run_dir / "journal.json").read_text())
    assert on_disk == json.loads(json.dumps(journal))
    assert journal["note"] == "try 0.3" and journal["argv"] == [str(repo / "train.py"), "--fast"]
    assert journal["git"]["commit"] == git(repo, "rev-parse", "HEAD").strip()  # the script's repository
    assert journal["git"]["diff_file"] == "git.diff"
    assert "+lr = 0.3" in (run_dir / "git.diff").read_text()
    assert journal["launch"] == ["launch/settings.json", "launch/train.py"]  # R8
    assert (run_dir / "launch" / "train.py").read_text() == "lr = 0.3\n"
    assert {"python", "torch", "device", "threads"} <= set(journal["environment"])
    assert journal["parent"] is None


def test_copy_launcher_skips_launchers_that_are_not_the_users_script(tmp_path):
    import pytest as installed

    import nnrecipe

    (tmp_path / "run").mkdir()
    for argv0 in ("/usr/bin/nnrecipe", str(Path(nnrecipe.__file__).parent / "__main__.py"), str(Path(installed.__file__).parent / "__main__.py")):
        assert launching_script([argv0, "train"]) is None  # an entry point, python -m nnrecipe, python -m pytest
        assert copy_launcher(tmp_path / "run", None, [argv0, "train"]) == []
    assert not (tmp_path / "run" / "launch").exists()


def test_the_fingerprint_reuses_the_data_layers_content_key_without_hashing_again(tmp_path, monkeypatch):
    csv = tmp_path / "t.csv"
    csv.write_text("a,y\n1,0\n2,1\n")
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()
    calls = []
    real = cache._sha256
    monkeypatch.setattr(cache, "_sha256", lambda p: calls.append(p) or real(p))
    given = data_fingerprint(csv, 2, ["a", "y"], key=f"{digest}.v{cache.CACHE_VERSION}")
    assert calls == []  # the key the data layer computed while reading is reused
    assert given == {"source": str(csv), "sha256": digest, "hash_of": "file bytes", "bytes": csv.stat().st_size,
                     "rows": 2, "columns": ["a", "y"]}
    assert data_fingerprint(csv, 2, ["a", "y"]) == given  # asked of the data layer: the same hash
    frame = pd.DataFrame({"a": [1, 2], "y": [0, 1]})
    assert data_fingerprint(frame, 2, ["a", "y"])["sha256"] == data_fingerprint(frame.copy(), 2, ["a", "y"])["sha256"]
    assert data_fingerprint(frame, 2, ["a", "y"])["sha256"] != data_fingerprint(frame[::-1], 2, ["a", "y"])["sha256"]


def test_label_counts_per_class_or_quantiles_in_the_targets_units():
    import numpy as np

    assert label_counts(np.array([[0.0], [1.0], [1.0]]), "binary", ["no", "yes"], {}) == {"no": 1, "yes": 2}
    reg = label_counts(np.array([-1.0, 0.0, 1.0]), "regression", [], {"mean": 10.0, "std": 2.0})
    assert (reg["min"], reg["median"], reg["max"], reg["mean"]) == (8.0, 10.0, 12.0, 10.0)


def test_parent_record_names_the_settings_that_changed(tmp_path):
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "config.json").write_text(json.dumps({"train": {"lr": 0.1, "seed": 0}, "note": "a"}))
    record = parent_record(parent, {"train": {"lr": 0.3, "seed": 0}, "note": "b"})
    assert record["run"] == "parent" and record["changed"] == {"train.lr": [0.1, 0.3]}
    with pytest.raises(ConfigError) as e:
        check_parent(tmp_path / "nope")
    assert str(e.value) == (f"--parent {tmp_path / 'nope'}: no config.json there; give a run folder that "
                            "`nnrecipe train` made (`nnrecipe runs` lists them)")
