"""Loading: seconds to read a CSV with nnrecipe's read_table against pandas.read_csv alone.

The table (the issue's spec): --rows x 50 columns, seeded: 40 float columns (standard normal rounded to 6
decimals, 1% of cells empty in 5 of them), 5 integer columns, 5 categorical text columns (10 to 10,000
levels), written once with pyarrow to a temporary folder. Three contenders read it:

  pandas      pandas.read_csv(path): the C parser with its defaults, nothing else.
  uncached    read_table(path) with an empty cache folder: sniffing, the memory check, hashing the file
              (SHA-256), the parse (the same C parser) and the Parquet cache write (fsynced).
  cached      read_table(path) again with the same cache folder: sniffing, the stat memo that finds the
              file's hash without reading it (its inode and timestamps are unchanged), the Parquet read.
  rehash      the same cache hit without the memo (as after a file's timestamps change): the file is
              hashed again, then the Parquet read. Not one of the issue's goals; shown for the cost.

Each round runs them interleaved (pandas, uncached, cached, rehash), with a fresh cache folder for the round,
so drift in the machine's speed hits all three alike. Reported: median seconds over the rounds, and the
ratios of medians against pandas. The issue's goals: uncached <= 3x pandas, cached <= 0.2x pandas.
The CSV sits in the OS page cache for every read (it was just written): disk speed is not measured.

--memory instead measures the peak memory of read_table per byte of input, each case in a fresh process
(peak RSS growth over the process's size after imports): the figures behind load.CSV_EXPANSION and
load.PARQUET_EXPANSION.

    python benchmarks/load.py                   # 1M rows (0.46 GB of CSV), 3 rounds (2 minutes on 2 cores)
    python benchmarks/load.py --rows 200000     # on a small machine
    python benchmarks/load.py --memory --rows 200000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from nnrecipe.data import cache as table_cache
from nnrecipe.data.load import read_table

SEED = 0


def make_csv(path: Path, rows: int, seed: int = SEED, strings: int = 5, floats: int = 40) -> None:
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {}
    for j in range(floats):
        x = np.round(rng.standard_normal(rows), 6)
        mask = rng.random(rows) < 0.01 if j < 5 else None  # empty cells in 5 columns
        columns[f"f{j}"] = pa.array(x, mask=mask)
    for j in range(5):
        columns[f"i{j}"] = pa.array(rng.integers(0, 10 ** (j + 2), rows))
    for j in range(strings):
        levels = np.array([f"level_{k}" for k in range(10 ** (1 + j % 4))])
        columns[f"c{j}"] = pa.array(levels[rng.integers(0, len(levels), rows)])
    pacsv.write_csv(pa.table(columns), path)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(rows: int, rounds: int, folder: Path) -> None:
    path = folder / "table.csv"
    start = time.perf_counter()
    make_csv(path, rows)
    print(f"wrote {path.name}: {rows:,} rows x 50 columns, {path.stat().st_size / 1e6:.0f} MB "
          f"in {time.perf_counter() - start:.1f} s")
    print(f"python {platform.python_version()}, pandas {pd.__version__}, pyarrow {pa.__version__}, "
          f"numpy {np.__version__}; {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}")
    time.sleep(max(0.0, table_cache.RACY_SECONDS - (time.time() - path.stat().st_mtime)))  # a file at rest
    times: dict[str, list[float]] = {"pandas": [], "uncached": [], "cached": [], "rehash": []}
    for r in range(rounds):
        cache = folder / f"cache-{r}"
        times["pandas"].append(timed(lambda: pd.read_csv(path)))
        times["uncached"].append(timed(lambda: read_table(path, cache_dir=cache)))
        times["cached"].append(timed(lambda: read_table(path, cache_dir=cache)))
        shutil.rmtree(cache / "stat")
        racy, table_cache.RACY_SECONDS = table_cache.RACY_SECONDS, float("inf")  # no memo is written
        times["rehash"].append(timed(lambda: read_table(path, cache_dir=cache)))
        table_cache.RACY_SECONDS = racy
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    median = {k: statistics.median(v) for k, v in times.items()}
    print("\nmedian seconds over", rounds, "rounds (min .. max):")
    for k, v in times.items():
        print(f"  {k:<9} {median[k]:7.2f} s  ({min(v):.2f} .. {max(v):.2f})")
    print(f"uncached / pandas = {median['uncached'] / median['pandas']:.2f}x  (goal <= 3x)")
    print(f"cached   / pandas = {median['cached'] / median['pandas']:.2f}x  (goal <= 0.2x)")
    print(f"rehash   / pandas = {median['rehash'] / median['pandas']:.2f}x")
    for k in ("uncached", "cached", "rehash"):
        ratios = [a / b for a, b in zip(times[k], times["pandas"])]
        spread = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
        print(f"per round, {k} / pandas: " + ", ".join(f"{x:.2f}" for x in ratios)
              + f"  (mean {statistics.mean(ratios):.2f} +- {spread:.2f})")
    # where the time of read_table goes, one untimed-by-the-above pass of its parts
    hash_s = timed(lambda: table_cache.content_key(path))
    [cached] = sorted((folder / "cache-0").glob("*.parquet"))
    load_s = timed(lambda: table_cache.load(cached))
    print(f"parts: SHA-256 of the file {hash_s:.2f} s ({path.stat().st_size / 1e6 / hash_s:.0f} MB/s), "
          f"Parquet read {load_s:.2f} s; cache file {cached.stat().st_size / 1e6:.0f} MB")


MEASURE = """
import json, resource, sys
import pandas as pd, pyarrow.parquet
from nnrecipe.data.load import read_table
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
read_table(sys.argv[1], cache_dir=sys.argv[2])
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024))
"""


def peak_growth(path: Path, cache: Path) -> int:
    """Peak RSS growth (bytes) of read_table(path) in a fresh process: what the table costs at its worst."""
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(cache)], check=True,
                         capture_output=True, text=True).stdout
    return int(json.loads(out.strip().splitlines()[-1]))


def memory(rows: int, folder: Path) -> None:
    print(f"pandas {pd.__version__}, pyarrow {pa.__version__}; peak RSS growth of read_table per input byte")
    for name, strings in (("numeric (40 float, 5 int, 5 text)", 5), ("text-heavy (10 float, 5 int, 35 text)", 35)):
        path = folder / f"{strings}.csv"
        make_csv(path, rows, strings=strings, floats=45 - strings)
        size = path.stat().st_size
        cache = folder / f"cache-{strings}"
        miss = peak_growth(path, cache)
        hit = peak_growth(path, cache)
        [cached] = cache.glob("*.parquet")
        pq_path = folder / f"{strings}.parquet"
        pq_path.write_bytes(cached.read_bytes())
        meta = pq.read_metadata(pq_path)
        pq_size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        from_pq = peak_growth(pq_path, cache)
        print(f"{name}: CSV {size / 1e6:.0f} MB; parse + cache write {miss / size:.2f} x CSV bytes, "
              f"cache hit {hit / size:.2f} x; Parquet input ({pq_size / 1e6:.0f} MB uncompressed) "
              f"{from_pq / pq_size:.2f} x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="measure the peak memory per input byte instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nnrecipe-load-") as tmp:
        if args.memory:
            memory(args.rows, Path(tmp))
        else:
            bench(args.rows, args.rounds, Path(tmp))


if __name__ == "__main__":
    main()
