"""The search's fault test, long version (issue 16): `nnrecipe tune --workers 2` on a small table, killed
(SIGKILL to the command and its worker processes) at seeded random moments, --kills times per round, then
run again to its end; each round checks that the study holds exactly --trials completed trials, no
parameters trained to the end twice, one finished run folder per completed trial, the retrained best, and
no file a killed writer left. tests/tune/test_tune_kills.py is the short version the suite runs.

    python benchmarks/tune_kills.py                    # 5 rounds of 4 kills, 12 trials (about 10 minutes on 2 cores)
    python benchmarks/tune_kills.py --rounds 20 --kills 6 --trials 20
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from engine import cpu_model  # noqa: E402 (the benchmarks share it; this folder is on the path)
from nnrecipe.io import read_json
from nnrecipe.testing import run_with_kills, small_table

SPACE = "model:\n  layers: 1\n  units: {int: [8, 32], step: 8}\ntrain:\n  lr: {loguniform: [1.0e-3, 3.0e-2]}\n"


def one_round(folder: Path, seed: int, kills: int, trials: int, low: float, high: float) -> list[str]:
    """One study killed `kills` times and finished; the problems found (none: an empty list)."""
    csv, space, out = folder / "t.csv", folder / "space.yaml", folder / "studies"
    small_table(300, seed=seed).to_csv(csv, index=False)
    space.write_text(SPACE)
    argv = [sys.executable, "-m", "nnrecipe", "tune", str(csv), "--target", "y", "--trials", str(trials),
            "--workers", "2", "--space", str(space), "--pruner", "none", "--epochs", "5", "--device", "cpu",
            "--out", str(out), "--study", "kills", "--sampler-seed", str(seed)]
    log = run_with_kills(argv, kills, seed, low, high, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                             "NNRECIPE_CACHE": str(folder / "cache")})
    study = optuna.load_study(study_name="kills", storage=f"sqlite:///{(out / 'kills' / 'study.db').resolve()}")
    done = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    problems = []
    if len(done) != trials:
        problems.append(f"{len(done)} completed trials, not {trials}: {[t.state.name for t in study.get_trials()]}")
    if len({tuple(sorted(t.params.items())) for t in done}) != len(done):
        problems.append("parameters trained to the end twice")
    finished = [p for p in (out / "kills" / "trials").iterdir() if (p / "results.json").is_file()]
    if len(finished) != trials:
        problems.append(f"{len(finished)} finished trial folders, not {trials}")
    best = [p for p in (out / "kills" / "best").iterdir() if (p / "results.json").is_file()] \
        if (out / "kills" / "best").is_dir() else []
    if not best or read_json(best[-1] / "config.json")["refit"]["trial"] not in {t.number for t in done}:
        problems.append("no retrained best")
    leftovers = list(out.rglob(".*.tmp-*"))  # a worker's job file is named as its launch's temporary file
    if leftovers:
        problems.append(f"left behind: {leftovers}")
    print(f"  seed {seed}: {', '.join(log)}; {len(done)} trials; " + ("; ".join(problems) or "ok"), flush=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="studies, each with its own seed (default 5)")
    p.add_argument("--kills", type=int, default=4, help="kills per study before it runs to its end (default 4)")
    p.add_argument("--trials", type=int, default=12, help="trials per study (default 12)")
    p.add_argument("--low", type=float, default=2.0, help="shortest run before a kill, seconds (default 2)")
    p.add_argument("--high", type=float, default=12.0, help="longest run before a kill, seconds (default 12)")
    args = p.parse_args(argv)
    print(f"tune kills: {args.rounds} studies x {args.kills} kills, {args.trials} trials, 2 workers; kills after "
          f"{args.low}-{args.high} s")
    print(f"hardware: {cpu_model()}, {os.cpu_count()} cores; versions: python "
          f"{platform.python_version()}, torch {torch.__version__}, optuna {optuna.__version__}")
    started, failed = time.perf_counter(), 0
    for seed in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="nnrecipe-kills-") as tmp:
            failed += bool(one_round(Path(tmp), seed, args.kills, args.trials, args.low, args.high))
    print(f"{args.rounds - failed} of {args.rounds} studies ended whole ({time.perf_counter() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
