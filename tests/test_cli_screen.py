"""Issue 19, the terminal: `train` exits 0 when the run completed (its failed verdicts printed on top), and
prints a short screen (the headline, every warning and failure with its fix, one line counting the rest,
the run folder last); `-v` prints every verdict; a notice is shown once per command."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from nnrecipe.cli import main


def conflicted(tmp_path: Path) -> Path:
    """A clean continuous table with 5% of its rows copied under the other label: D4 fails."""
    g = np.random.default_rng(0)
    x = g.normal(size=(300, 4))
    df = pd.DataFrame(x, columns=list("abcd"))
    df["y"] = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    copies = df.iloc[:15].copy()
    copies["y"] = np.where(copies["y"] == "yes", "no", "yes")
    path = tmp_path / "conflicted.csv"
    pd.concat([df, copies], ignore_index=True).to_csv(path, index=False)
    return path


def test_a_completed_run_with_a_failed_check_exits_0_and_shows_it_first(tmp_path, cli):
    code, out, err = cli("train", conflicted(tmp_path), "--target", "y", "--out", tmp_path / "runs", "--epochs", "3",
                         "--no-report")
    assert code == 0, err
    lines = out.splitlines()
    run_dir = Path(lines[-1])
    assert run_dir.is_dir() and (run_dir / "results.json").is_file()  # the folder is the last line
    assert lines[0].startswith("nnrecipe run ") and any(s.startswith("test     accuracy") for s in lines)
    fails = [i for i, s in enumerate(lines) if s.startswith("[FAIL]")]
    warns = [i for i, s in enumerate(lines) if s.startswith("[WARN]")]
    assert any("D4 conflicting duplicates" in lines[i] for i in fails)
    assert not warns or max(fails) < min(warns)  # failures on top
    assert "fix: " in out and not any(s.startswith("[PASS]") for s in lines)
    assert lines[-2].startswith("test accuracy: ")  # the headline metric on a line of its own, for scripts
    count = lines[-3]
    assert "checks passed" in count and "need attention (above)" in count and "-v" in count
    assert len(lines) < 40  # a short screen; summary.txt keeps every verdict
    summary = (run_dir / "summary.txt").read_text()
    assert "[PASS]" in summary and "[FAIL] D4 conflicting duplicates" in summary
    assert "[PASS]" not in err  # the verdicts are not logged line by line as well


def test_verbose_prints_every_verdict(tmp_path, cli):
    code, out, err = cli("train", conflicted(tmp_path), "--target", "y", "--out", tmp_path / "runs", "--epochs", "2",
                         "--no-report", "-v")
    assert code == 0
    assert "[PASS]" in out and "[FAIL] D4 conflicting duplicates" in out
    assert "[PASS]" in err  # the library's notices as the run goes


def test_a_notice_is_shown_once_per_command(capsys):
    from nnrecipe.cli import _log_once

    _log_once(logging.INFO)
    log = logging.getLogger("nnrecipe")
    for _ in range(3):
        log.warning("cv_folds=5 is not used by a search")
    log.warning("another notice")
    err = capsys.readouterr().err
    assert err.count("cv_folds=5 is not used by a search") == 1 and err.count("another notice") == 1
    main(["cache"])  # a new command starts with nothing seen
    log.warning("another notice")
    assert capsys.readouterr().err.count("another notice") == 1
