"""The data audit's cost: seconds for `nnrecipe.audit` on a big table, against a hand-written pandas pass
of the same raw scans.

The table (issue 6): --rows x 20 columns, seeded: 14 float columns (standard normal, 1% of cells empty in
3 of them, one column with heavy outliers), 3 integer columns, 2 categorical text columns (8 and 200
levels), and a 5-class target that depends on 3 of the columns; 0.5% of the rows are exact copies of
others. Written once as a CSV to a temporary folder, and read once, as `nnrecipe audit` would (the
parse is timed apart: the audit itself starts from the table in memory, `read_table`'s cached frame).

  audit     nnrecipe.audit.audit_frame on the frame: every finding (D1-D5, D8, D15, leakage), the label
            noise on its stratified sample (NOISE_ROWS), the one-column leak on LEAK_ROWS rows.
  pandas    the scans a careful user would write by hand: value_counts of the target, duplicated(),
            isna().sum(), describe(), the string lengths of the text columns. No model, no split, no
            label noise, no leakage, no clustering: the floor of what looking at the table costs.

Rounds alternate (pandas, audit) so that drift in a shared machine's speed hits both; reported: the
median seconds of each, their ratio, and the audit's seconds per finding (median over the rounds).

    python benchmarks/audit.py                       # 1M rows, 3 rounds; the issue's goal: audit < 60 s
    python benchmarks/audit.py --rows 200000 --rounds 1
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nnrecipe import DataConfig
from nnrecipe.data import read_table
from nnrecipe.data.audit import audit_frame
from nnrecipe.data.audit.features import LEAK_ROWS, NOISE_ROWS

sys.path.insert(0, str(Path(__file__).parent))
from tabular import hardware, versions  # noqa: E402 (the benchmarks' shared lines on hardware and versions)


def make_table(rows: int, seed: int = 0) -> pd.DataFrame:
    g = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {f"f{i}": g.normal(size=rows).round(6) for i in range(14)}
    for i in range(3):
        cols[f"f{i}"][g.random(rows) < 0.01] = np.nan
    cols["f13"] = np.where(g.random(rows) < 0.001, 1e5, cols["f13"])  # heavy outliers: D8 warns
    for i in range(3):
        cols[f"n{i}"] = g.integers(0, 100 * (i + 1), rows)
    cols["city"] = g.choice([f"city_{k}" for k in range(8)], rows)
    cols["shop"] = g.choice([f"shop_{k}" for k in range(200)], rows)
    signal = cols["f3"] + 0.5 * cols["f4"] - 0.5 * cols["f5"] + g.normal(0, 0.5, rows)
    cols["y"] = np.digitize(signal, [-1.2, -0.4, 0.4, 1.2])
    df = pd.DataFrame(cols)
    copies = g.choice(rows, rows // 200, replace=False)
    half = len(copies) // 2  # the first half become copies of the second (an odd count crashed here)
    df.iloc[copies[:half]] = df.iloc[copies[half:2 * half]].to_numpy()
    return df


def pandas_scans(df: pd.DataFrame, target: str) -> float:
    started = time.perf_counter()
    df[target].value_counts()
    df.duplicated().sum()
    df.isna().sum()
    df.describe()
    for col in df.columns[df.dtypes == object].tolist() + [c for c in df.columns if isinstance(df[c].dtype, pd.StringDtype)]:
        df[col].astype("string").str.len().describe()
    return time.perf_counter() - started


def all_versions() -> str:
    import cleanlab

    return f"{versions()}, cleanlab {cleanlab.__version__}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the issue's machine: 2 cores)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("nnrecipe").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NNRECIPE_CACHE"] = tmp
        csv = Path(tmp) / "audit.csv"
        make_table(args.rows).to_csv(csv, index=False)
        started = time.perf_counter()
        df = read_table(csv)
        parse = time.perf_counter() - started
        cfg = DataConfig(target="y")
        times: dict[str, list[float]] = {"pandas": [], "audit": []}
        each: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            times["pandas"].append(pandas_scans(df, "y"))
            started = time.perf_counter()
            found = audit_frame(df, cfg, 0, path=csv)
            times["audit"].append(time.perf_counter() - started)
            for k, v in found.seconds.items():
                each.setdefault(k, []).append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"table: {args.rows} rows x {len(df.columns)} columns ({csv.name}, parsed once in {parse:.2f} s)")
    print(f"audit: {med['audit']:.2f} s (median of {args.rounds}; rounds {', '.join(f'{t:.2f}' for t in times['audit'])}); "
          f"goal < 60 s")
    print(f"pandas scans: {med['pandas']:.2f} s; audit / pandas {med['audit'] / med['pandas']:.1f}x")
    print("per finding (s): " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in each.items()))
    print(f"label noise on a stratified sample of {min(NOISE_ROWS, args.rows)} rows; one-column leak on "
          f"{min(LEAK_ROWS, args.rows)} rows")
    print("findings: " + "; ".join(f"{v.id} {v.name} {v.status}" for v in found))
    print(f"hardware: {hardware()}")
    print(f"versions: {all_versions()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
