"""T17's verdict on a run's batch size, from the measurement of train/batch_size.py (docs/batch-size.md):
pass near or below the gradient noise scale with the device busy; warn far above the noise scale, or with
the device mostly idle (when the clock is trusted: `judge_speed`)."""

from __future__ import annotations

from ..errors import ConfigError
from ..train.batch_size import SOURCE, TIME_BAND, BatchSizeReport
from .verdict import Verdict

ABOVE_NOISE = 4.0  # warn above 4 x B_noise: the run needs (1 + B/B_noise) ~ 5x the epochs of B -> 0
IDLE_SHARE = 0.25  # "mostly idle": below a quarter of the peak samples/s ...
IDLE_SLOWER = 2.0  # ... and predicted to take twice the time of the advised batch to the same loss


def batch_size_verdict(report: BatchSizeReport, batch_size: int, judge_speed: bool = True) -> Verdict:
    """T17 on a run's chosen `batch_size`: pass when it is near or below the noise scale and keeps the
    device busy; warn, with the evidence and the advised batch, when it is more than ABOVE_NOISE x the noise
    scale (it spends epochs averaging away noise that was already small) or so small the device idles.
    `judge_speed=False` (the verdict in every run, timed in 0.3 s beside other work): the status follows
    the noise scale alone, which is seeded and so the same on every run of the setup; the throughput, a
    clock reading that another process can halve, stays evidence (on a busy 2-core machine the idle rule
    flipped in 1 of 5 readings of one healthy setup)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is not allowed; give the run's batch size, 1 or more")
    b, r, scale = batch_size, report.recommended, report.noise_scale
    peak = max(report.samples_per_s)
    peak_at = report.batch_sizes[report.samples_per_s.index(peak)]
    rate, slower = report.throughput(b), report.time_at(b) / report.time_at(r)
    epochs = (1 + b / scale) / (1 + r / scale)  # epochs to a given loss grow as 1 + B/B_noise (McCandlish, sec. 2.3)
    ev = {"batch_size": b, "recommended": r, "noise_scale": round(scale, 2), "noise_bound": report.noise_bound,
          "knee": report.knee, "samples_per_s": round(rate, 1), "peak_samples_per_s": round(peak, 1),
          "share_of_peak": round(rate / peak, 3), "time_vs_recommended": round(slower, 3),
          "epochs_vs_recommended": round(epochs, 3), "measured": [report.batch_sizes[0], report.batch_sizes[-1]],
          "beyond_measured": not report.batch_sizes[0] <= b <= report.batch_sizes[-1],
          "measured_seconds": report.seconds}
    fix = (f"train with --batch-size {r} (TrainConfig(batch_size={r})), the smallest batch predicted within "
           f"{TIME_BAND:.0%} of the fastest time to a given loss")
    if b > ABOVE_NOISE * scale and (b > r or not judge_speed) and report.noise_bound in ("estimate", "at most"):
        return Verdict("T17", "batch size", "warn", f"batch {b} is {b / scale:.0f}x the gradient noise scale "
                       f"({scale:.0f} rows): a larger batch saves few steps there, and at the start of training it "
                       f"needs about {epochs:.1f}x the epochs of batch {r} for the same loss", ev, fix, SOURCE)
    if judge_speed and rate < IDLE_SHARE * peak and slower >= IDLE_SLOWER:
        return Verdict("T17", "batch size", "warn", f"batch {b} keeps the device mostly idle: {rate:.0f} samples/s, "
                       f"{rate / peak:.0%} of the {peak:.0f} at batch {peak_at}; training to the same loss should "
                       f"take about {slower:.1f}x as long as at batch {r}", ev, fix, SOURCE)
    where = "at or below" if b <= scale else f"{b / scale:.1f}x"
    return Verdict("T17", "batch size", "pass", f"batch {b} is {where} the gradient noise scale ({scale:.0f} rows) "
                   f"and runs at {rate / peak:.0%} of the peak throughput; the measurement advises {r}", ev, "", SOURCE)
