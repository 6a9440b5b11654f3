"""The doctor's cost and its false alarms.

COST (the default). `make demo`'s job: `train_table` on breast cancer (569 rows, 30 features) with the
recipe's defaults, for each seed; the run records the seconds the doctor took before training
(results.json: checks_seconds; in train its data checks are left to the data audit, which runs them on
every row: audit_seconds, printed beside) and the seconds of training itself (train_seconds). Printed: both, per
seed and in total, and their ratio (issue 5's goal: the doctor costs <= 15% of the demo's training).
The seconds of each check come from the same runs. The first optimizer a process builds imports
torch._dynamo (about 2 s here), which any training pays once: train_table pays it before the doctor's
clock starts.

CALIBRATION (`--calibrate`). The doctor on the healthy setups of tests/checks/cases.py (the base setups of
the doctor's planted-fault cases without their faults, plus an imbalanced binary task and an MLP with BatchNorm
and dropout), each over several seeds (the seed changes the data split, the init and the sampled rows).
Printed: per check id, how many verdicts warned or failed out of how many ran: the false-alarm rate the
thresholds in nnrecipe/checks were calibrated against (every alarm is listed).

    python benchmarks/doctor.py                 # cost, seeds 0-2 (about a minute on 2 cores)
    python benchmarks/doctor.py --calibrate --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

import nnrecipe
from nnrecipe import TrainConfig
from nnrecipe.checks.doctor import doctor
from nnrecipe.testing import breast_cancer_csv

ROOT = Path(__file__).resolve().parent.parent


def cost(seeds: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="nnrecipe-doctor-") as tmp:
        csv = breast_cancer_csv(Path(tmp) / "breast_cancer.csv")
        totals: collections.Counter[str] = collections.Counter()
        each: collections.Counter[str] = collections.Counter()
        for seed in seeds:
            run = nnrecipe.train_table(csv, "diagnosis", out=Path(tmp) / "runs", train_config=TrainConfig(seed=seed))
            res = run.results
            totals["checks"] += res["checks_seconds"]
            totals["audit"] += res["audit_seconds"]
            each.update(res["checks_seconds_each"])
            totals["train"] += res["train_seconds"]
            print(f"seed {seed}: doctor {res['checks_seconds']:.2f} s, audit {res['audit_seconds']:.2f} s, training "
                  f"{res['train_seconds']:.2f} s ({res['epochs_run']} epochs): doctor "
                  f"{res['checks_seconds'] / res['train_seconds']:.1%}", flush=True)
        print(f"\ndoctor / training over seeds {seeds}: {totals['checks']:.2f} s / {totals['train']:.2f} s = "
              f"{totals['checks'] / totals['train']:.1%}  (goal <= 15%)")
        # in train the data checks run in the audit, on every row, not in the doctor's 512-row sample
        print(f"doctor + data audit / training: {totals['checks'] + totals['audit']:.2f} s / {totals['train']:.2f} s "
              f"= {(totals['checks'] + totals['audit']) / totals['train']:.1%}")
        print("\nper check, summed over the seeds (results.json: checks_seconds_each):")
        for name, sec in each.most_common():
            print(f"  {name:<22} {sec:6.3f} s")


def calibrate(seeds: list[int]) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "checks"))
    from cases import HEALTHY  # noqa: E402 (the test suite's setups)

    ran: collections.Counter[str] = collections.Counter()
    alarms: dict[str, list[str]] = collections.defaultdict(list)
    for name, build in HEALTHY.items():
        for seed in seeds:
            case = build(seed)
            for v in doctor(**case.kwargs(), seed=seed):
                if v.status == "skipped":
                    continue
                ran[v.id] += 1
                if v.status in ("warn", "fail"):
                    alarms[v.id].append(f"{name} seed {seed}: {v.line()}")
        print(f"{name}: seeds {seeds} done", flush=True)
    print(f"\nfalse alarms on {len(HEALTHY)} healthy setups x {len(seeds)} seeds (warn or fail / verdicts that ran):")
    for check_id in sorted(ran):
        n = len(alarms[check_id])
        print(f"  {check_id:<5} {n:3d} / {ran[check_id]:3d}  ({n / ran[check_id]:.1%})")
    total = sum(len(a) for a in alarms.values())
    print(f"  all   {total:3d} / {sum(ran.values()):3d}  ({total / sum(ran.values()):.1%})")
    for lines in alarms.values():
        for line in lines:
            print("  - " + line.replace("\n", " "))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calibrate", action="store_true", help="the false-alarm rate on healthy setups instead")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: 0 1 2 (cost), 0-4 (calibrate)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("nnrecipe").setLevel(logging.ERROR)
    if args.calibrate:
        calibrate(args.seeds or [0, 1, 2, 3, 4])
    else:
        cost(args.seeds or [0, 1, 2])
    print(f"\npython {platform.python_version()}, torch {torch.__version__}, nnrecipe {nnrecipe.__version__}; "
          f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
