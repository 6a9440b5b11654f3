"""Issue 22: what each technique buys and what it costs, measured in the same run as its reference.

  T12 distillation  a teacher (the default model as a 5-member cross-validation ensemble, --cv-folds 5) and a
                    small student (an MLP, one hidden layer of 32) trained with --teacher on the same table,
                    split and seed; the reference: the same student trained alone (the run trains it too,
                    results.json's distillation.alone). Test accuracy of teacher, student and student alone;
                    seconds of the teacher's run and of the student's (which includes the student alone).
  T13 adversarial   the default model trained with --adversarial pgd (epsilon 0.1 standard deviations, 7 steps)
                    against the same model trained clean and measured with --robustness: test accuracy clean,
                    under FGSM and under PGD (10 steps) at the same epsilon; seconds of each run.
  T15 surrogate     a damped pendulum (nnrecipe.testing.pendulum: RK4 at dt 0.01 s, theta(t) from theta0, omega0,
                    damping, t): --surrogate on 4,000 simulated rows, measured on a second sample of 2,000
                    (--surrogate-test); the references: the default run on the same 4,000 rows (it holds 30% out
                    and stops early) scored on the same second sample, and HistGradientBoosting. RMSE in
                    radians; the speed-up: the simulator's seconds per query against the network's (one row,
                    and per row in a batch of 2,000).
  M14, T17, T10, M13  their own scripts, run from here with --part m14 | t17 | t10 | m13 (benchmarks/prune.py,
                    batch_size.py, distributed.py, autoencoder.py: the pruned model's metric and predict time, the
                    batch-size advice checked by training at it, one process against two, autoencoder features
                    with few labels), printed as they print them.

Tables that ship with scikit-learn (no download): breast cancer (569 rows, 30 numeric columns, 2 classes)
and digits as a table (1,797 rows, 64 pixel columns, 10 classes). Mean +- std over seeds, one torch thread.

    python benchmarks/techniques.py --seeds 0 1 2
    python benchmarks/techniques.py --part t13 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import torch


def mean_std(xs: list[float], digits: int = 4) -> str:
    return f"{statistics.mean(xs):.{digits}f} +- {statistics.stdev(xs) if len(xs) > 1 else 0.0:.{digits}f}"


def tables() -> dict[str, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer, load_digits

    digits = load_digits(as_frame=True).frame
    return {"breast_cancer": load_breast_cancer(as_frame=True).frame, "digits": digits}


def timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def t12(frame: pd.DataFrame, seed: int, out: Path) -> dict[str, float]:
    from nnrecipe import ModelConfig, TrainConfig, train_table

    teacher, teacher_s = timed(lambda: train_table(frame, "target", out=out, report=False,
                                                   train_config=TrainConfig(seed=seed, cv_folds=5)))
    student, student_s = timed(lambda: train_table(
        frame, "target", out=out, report=False, model_config=ModelConfig(model="mlp", hidden=(32,)),
        train_config=TrainConfig(seed=seed, teacher=str(teacher.run_dir))))
    record = student.results["distillation"]
    return {"teacher": record["teacher"]["accuracy"], "student": record["student"]["accuracy"],
            "alone": record["alone"]["accuracy"], "teacher_s": teacher_s,
            "student_s": student_s - record["alone_seconds"], "alone_s": record["alone_seconds"]}


def t13(frame: pd.DataFrame, seed: int, out: Path) -> dict[str, float]:
    from nnrecipe import TrainConfig, train_table

    found: dict[str, float] = {}
    for name, cfg in (("clean", TrainConfig(seed=seed, robustness=True, adv_epsilon=0.1)),
                      ("pgd", TrainConfig(seed=seed, adversarial="pgd", adv_epsilon=0.1))):
        run, seconds = timed(lambda: train_table(frame, "target", out=out, report=False, train_config=cfg))
        robust = run.results["robustness"]
        found.update({f"{name}:clean": robust["clean"]["accuracy"], f"{name}:fgsm": robust["fgsm"]["accuracy"],
                      f"{name}:pgd": robust["pgd"]["accuracy"], f"{name}:s": seconds})
    return found


def t15(seed: int, out: Path) -> dict[str, float]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from nnrecipe import DataConfig, TrainConfig, predict_table, train_table
    from nnrecipe.models import load_model
    from nnrecipe.testing import pendulum, simulate_pendulum

    train, second = pendulum(4000, seed=seed), pendulum(2000, seed=100 + seed)
    second.to_csv(out / "second.csv", index=False)
    columns = ["theta0", "omega0", "damping", "t"]
    surrogate, surrogate_s = timed(lambda: train_table(
        train, "theta", out=out, report=False, train_config=TrainConfig(seed=seed),
        data_config=DataConfig(surrogate=True, surrogate_test=str(out / "second.csv"))))
    plain, plain_s = timed(lambda: train_table(train, "theta", out=out, report=False,
                                               train_config=TrainConfig(seed=seed)))
    predicted, _ = predict_table(plain.run_dir, second[columns])
    plain_rmse = float(((predicted["prediction"] - second["theta"]) ** 2).mean() ** 0.5)
    hgb = HistGradientBoostingRegressor(random_state=seed).fit(train[columns], train["theta"])
    hgb_rmse = float(((hgb.predict(second[columns]) - second["theta"]) ** 2).mean() ** 0.5)
    # per query: the simulator on one row (its integration to t) against the network on one row / in a batch
    rows = second[columns].to_numpy()
    _, sim_s = timed(lambda: [simulate_pendulum(rows[i:i + 1]) for i in range(200)])
    model, _ = load_model(surrogate.run_dir)
    # the user's path for a batch: predict_table (reads the run, preprocesses, predicts) on the 2,000 rows
    _, batch_s = timed(lambda: predict_table(surrogate.run_dir, second[columns]))
    with torch.no_grad():  # the network alone on one standardised row at a time
        features = torch.randn(2000, 4)
        _, net_s = timed(lambda: [model(features[i:i + 1]) for i in range(200)])
    return {"surrogate_rmse": surrogate.test["rmse"], "default_rmse": plain_rmse, "hgb_rmse": hgb_rmse,
            "surrogate_s": surrogate_s, "default_s": plain_s, "sim_ms": sim_s / 200 * 1e3,
            "net_one_ms": net_s / 200 * 1e3, "predict_batch_ms": batch_s / 2000 * 1e3}


# the techniques whose benchmark is a script of its own: run as a child process, its output passed through
SCRIPTS = {"m14": "prune.py", "t17": "batch_size.py", "t10": "distributed.py", "m13": "autoencoder.py"}


def delegated(part: str) -> None:
    import subprocess
    import sys

    script = Path(__file__).with_name(SCRIPTS[part])
    print(f"{part}: python benchmarks/{script.name}", flush=True)
    subprocess.run([sys.executable, str(script)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--part", choices=["all", "t12", "t13", "t15", *SCRIPTS], default="all")
    args = ap.parse_args()
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    import nnrecipe

    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread, "
          f"torch {torch.__version__}, "
          f"nnrecipe {nnrecipe.__version__}, seeds {args.seeds}")
    parts = {"t12": t12, "t13": t13, "t15": t15}
    for part in SCRIPTS:
        if args.part in ("all", part):
            delegated(part)
    for part, fn in parts.items():
        if args.part not in ("all", part):
            continue
        for name, frame in (tables() if part != "t15" else {"pendulum": None}).items():
            rows: dict[str, list[float]] = {}
            for seed in args.seeds:
                with tempfile.TemporaryDirectory() as tmp:
                    got = fn(frame, seed, Path(tmp)) if frame is not None else fn(seed, Path(tmp))
                print(f"{part} {name} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in got.items()), flush=True)
                for k, v in got.items():
                    rows.setdefault(k, []).append(v)
            print(f"{part} {name} mean: " + "; ".join(f"{k} {mean_std(v, 4 if not k.endswith(('s', 'ms')) else 2)}"
                                                      for k, v in rows.items()), flush=True)


if __name__ == "__main__":
    main()
