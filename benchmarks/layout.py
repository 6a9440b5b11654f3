"""The CNN's layouts (models/layout.py, M10, issue 20) timed on this machine, as choose_layout times them
(the fastest of its rounds; on the CPU a batch of 16): ms per forward + backward step of each candidate
(contiguous, channels-last, and for RGB each padded to 4 channels) for 1- and 3-channel images at 32 and
64 px, family members phi 0 and 2; mean +- std over `--runs` calls, the layout each call chose, and the
seconds a call took.

The noise columns are the margin's evidence: the same calls with every candidate built as the plain
layout, so every gap the rule looks at (each layout against contiguous, padded against unpadded) is
noise; `noise max` is the largest gap (in % of the reference) over the runs, and the last line pools
them all. A margin below them would keep layouts for noise.

    python benchmarks/layout.py               # about 3 minutes on one thread of a 2-core VM
    python benchmarks/layout.py --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from collections import Counter

import torch

from nnrecipe.models.cnn import CNN, cnn_family
from nnrecipe.models.layout import MARGIN, candidates, choose_layout

NAMES = list(candidates(3))


def gaps(ms: dict[str, float]) -> list[float]:
    """The gaps (% faster than the reference) the rule compares with the margin."""
    pairs = [(n, "contiguous") for n in ms if n != "contiguous"]
    if "channels_last+padded" in ms:
        pairs.append(("channels_last+padded", "channels_last"))
    return [100 * (1 - ms[a] / ms[b]) for a, b in pairs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="32", choices=["32", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: the figures of layout.py)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64, help="the run's batch (the CPU times at most 16)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {name}, {torch.get_num_threads()} "
          f"thread(s), precision {args.precision}, margin {MARGIN:.0%}")
    print(f"{'C':>2} {'px':>3} {'phi':>3} {'batch':>5} " + " ".join(f"{n:>20}" for n in NAMES)
          + f" {'noise max %':>11} {'s/call':>6}  chosen")
    pooled: list[float] = []
    for c in (1, 3):
        for px in (32, 64):
            for phi in (0, 2):
                member = cnn_family(phi, c, 10)
                spec = {"in_channels": c, "out_features": 10, "depths": member["depths"],
                        "widths": member["widths"], "resolution": px}
                ms: dict[str, list[float]] = {n: [] for n in candidates(c)}
                chosen: Counter[str] = Counter()
                seconds, noise = [], []
                for _ in range(args.runs):
                    _, record = choose_layout(spec, c, px, device, args.batch, args.precision)
                    for n, v in record["ms_per_step"].items():
                        ms[n].append(v)
                    chosen[record["chosen"]] += 1
                    seconds.append(record["seconds"])
                    _, same = choose_layout(lambda **_: CNN(**spec), c, px, device, args.batch, args.precision)
                    noise += gaps(same["ms_per_step"])
                pooled += noise
                cells = [f"{statistics.mean(ms[n]):8.1f} +- {statistics.stdev(ms[n]) if len(ms[n]) > 1 else 0:6.1f}"
                         if n in ms else "-" for n in NAMES]
                print(f"{c:>2} {px:>3} {phi:>3} {record['batch_size']:>5} " + " ".join(f"{x:>20}" for x in cells)
                      + f" {max(noise):11.1f} {statistics.mean(seconds):6.1f}  "
                      + ", ".join(f"{n} x{k}" for n, k in chosen.most_common()), flush=True)
    pooled.sort()
    print(f"noise, all {len(pooled)} plain-vs-plain gaps: mean |gap| {statistics.mean(map(abs, pooled)):.1f}%, "
          f"95th percentile {pooled[int(0.95 * (len(pooled) - 1))]:.1f}%, max {pooled[-1]:.1f}%; "
          f"above the {MARGIN:.0%} margin: {sum(g >= 100 * MARGIN for g in pooled)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
