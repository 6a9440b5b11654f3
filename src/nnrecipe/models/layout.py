"""M10 for images (issue 20): the CNN's memory layout, chosen by timing it on the device in use.

Two layouts may make a CNN faster, and either may make it slower: channels-last (NHWC) memory, which
cuDNN's tensor-core convolutions and oneDNN's CPU ones run natively (PyTorch's "Channels Last Memory Format"
tutorial; Intel's extension for PyTorch documents regressions on some models too), and RGB padded to four
channels, which lets a 3-channel first layer meet the channel alignment the NHWC tensor-core kernels want
(NVIDIA's Convolutional Layers User's Guide). Neither changes what the network computes (models/cnn.py),
so the only question is speed, and it is answered by measuring: `choose_layout` times a few forward and
backward steps of each candidate on a random batch, at the run's precision, and keeps a layout only when
it beats the plain one (contiguous, 3 channels) by `MARGIN`, each layout on its own evidence.

Timing: the candidates are built from the same spec (never the caller's model), each warmed up (the
first steps pick kernels and allocate), then timed in `REPEATS` rounds that interleave the candidates, so
a slow spell of a shared machine hits them all; each candidate's figure is its fastest round (other
processes only add time). The global RNG is forked, so the timing draws nothing the run would have drawn.
On the CPU the batch is at most 16 images (`CPU_BATCH`), which keeps the timing near a second for phi 0-1.

The margin, 10%, from the noise: the same calls with every candidate built as the plain layout (so each
gap the rule looks at is noise) gave, on this shared VM while other jobs ran (load 2-4 on 2 cores), 60
gaps with mean |gap| 4.0%, 95th percentile 9.6% and max 13.9% (2 of 60 at or past 10%). The margin sits at
the 95th percentile because the two errors cost differently: a layout kept for noise is truly within a
few % of the plain one, while a real gain missed is 24-47% here (channels-last, below). On a GPU, a
dedicated device timed between synchronisations, the noise should be smaller; it was not measured here.

Measured with `python benchmarks/layout.py` (torch 2.13.0+cpu, Python 3.11.7, a shared 2-core AMD EPYC
VM under load 2-4 from other jobs, one thread, fp32): ms per forward + backward step of 16 images, each
call's fastest of 5 rounds, mean +- std over 3 calls; s/call: the whole timing, builds included.
   C  px  phi  contiguous      channels_last   padded          cl+padded      s/call  chosen (3 calls)
   1  32  0     28.1 +-  2.0    20.4 +-  1.0        -                -         0.4   channels_last x3
   1  32  2    122.3 +- 12.9    80.7 +-  2.5        -                -         1.3   channels_last x3
   1  64  0    164.8 +- 19.4    86.6 +-  7.2        -                -         2.0   channels_last x3
   1  64  2    368.3 +-114.7   226.9 +- 56.8        -                -         3.8   channels_last x3
   3  32  0     33.6 +-  1.8    25.5 +-  2.8    30.0 +-  5.7    27.3 +-  0.4   0.8   channels_last x3
   3  32  2     96.8 +- 18.2    69.6 +-  4.3   106.9 +-  2.1    73.1 +-  2.4   2.3   channels_last x3
   3  64  0    149.9 +-  9.0   104.7 +-  0.1   140.2 +- 10.4   104.9 +-  3.1   3.3   channels_last x3
   3  64  2    511.9 +- 24.9   311.4 +-  1.1   507.6 +- 23.9   306.9 +- 16.5  10.3   channels_last x3
On this CPU channels-last (oneDNN's NHWC convolutions) is 24-47% faster everywhere and padding moves
nothing past the noise (-11% to +10%), so the rule keeps channels-last and drops padding (it is for cuDNN's
kernels).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

log = logging.getLogger("nnrecipe")

MARGIN = 0.10  # a layout is kept when at least 10% faster than the plain one (the module's docstring)
WARMUP = 1  # untimed steps per candidate: kernel choice, allocation
REPEATS = 5  # timed rounds, each candidate once a round; its figure is the fastest round (the docstring)
STEPS = 1  # forward + backward steps per candidate per round
# On the CPU the timing batch is at most 16 images: a CPU convolution's cost per image depends little on the
# batch, so 16 images give the same verdict (channels-last's time over contiguous's, one thread, medians of 4
# calls: phi 0 at 32 px 0.70-0.78 at 16 images, 0.67 at 64; phi 1 at 40 px 0.75-0.76 and 0.66) in a quarter of
# the time; CUDA times the run's batch, whose size decides the GPU's occupancy
CPU_BATCH = 16
AMP = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # the Trainer's precisions

PLAIN = "contiguous"


def candidates(in_channels: int) -> dict[str, dict[str, bool]]:
    """The layouts to time, by name: contiguous and channels-last, each also padded for RGB."""
    names = {PLAIN: {"pad_channels": False, "channels_last": False},
             "channels_last": {"pad_channels": False, "channels_last": True}}
    if in_channels == 3:  # padding is for RGB only (models/cnn.py refuses it otherwise)
        names["padded"] = {"pad_channels": True, "channels_last": False}
        names["channels_last+padded"] = {"pad_channels": True, "channels_last": True}
    return names


def decide(ms: Mapping[str, float], margin: float = MARGIN) -> str:
    """The layout kept, from each candidate's time per step: each layout on its own evidence, channels-last
    when at least `margin` faster than contiguous, then padding when at least `margin` faster than the same
    memory format unpadded (so a padded layout is never kept for channels-last's gain alone)."""
    fmt = "channels_last" if ms["channels_last"] <= ms[PLAIN] * (1 - margin) else PLAIN
    padded = {PLAIN: "padded", "channels_last": "channels_last+padded"}[fmt]
    return padded if padded in ms and ms[padded] <= ms[fmt] * (1 - margin) else fmt


def _builder(build: Mapping[str, Any] | Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    if callable(build):
        return build
    if isinstance(build, Mapping):
        from .cnn import CNN

        args = {k: v for k, v in build.items() if k not in ("name", "pad_channels", "channels_last")}
        return lambda **layout: CNN(**args, **layout)
    raise ConfigError(f"choose_layout's build is a {type(build).__name__}; give the CNN's spec (model.spec, or "
                      "a dict of CNN arguments) or a function build(pad_channels=..., channels_last=...)")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":  # kernels run asynchronously: the clock must wait for them
        torch.cuda.synchronize(device)


def _step(model: nn.Module, x: torch.Tensor, device: torch.device, amp: torch.dtype | None) -> None:
    """One forward and backward pass, as the Trainer's step does them (autocast at the run's precision);
    the loss is a stand-in: the layouts' cost does not depend on which loss it is."""
    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
        out = model(x)
    out.float().square().mean().backward()
    model.zero_grad(set_to_none=True)


def choose_layout(build: Mapping[str, Any] | Callable[..., nn.Module], in_channels: int, resolution: int,
                  device: str | torch.device = "cpu", batch_size: int = 64, precision: str = "32",
                  side: int | None = None, margin: float = MARGIN, repeats: int = REPEATS, steps: int = STEPS,
                  warmup: int = WARMUP) -> tuple[dict[str, bool], dict[str, Any]]:
    """The layout for this CNN on `device`: ({"pad_channels": ..., "channels_last": ...}, record).

    `build`: the CNN's spec (model.spec or its arguments; each candidate is a new CNN of it) or a function
    build(pad_channels=..., channels_last=...) -> nn.Module. The batch: `batch_size` random images (at most
    `CPU_BATCH` on the CPU) of `in_channels` x `side` px (None: `resolution`; give the images' own side and
    the timing includes the resize), at `precision` ("32", "bf16", "fp16"). Each layout is kept on its own
    evidence: channels-last when it is at least `margin` faster than contiguous, then padding when it is
    at least `margin` faster than the same memory format unpadded. The record, for config.json: the device,
    precision, batch, margin, each candidate's ms per step (fastest round, median, every round), the choice
    and the seconds the timing took."""
    if precision not in AMP:
        raise ConfigError(f"precision={precision!r} is not one of {', '.join(AMP)}; give the run's precision")
    if not 0 <= margin < 1:
        raise ConfigError(f"margin={margin!r}: give a fraction of the plain layout's time, from 0 to below 1")
    if min(batch_size, repeats, steps) < 1 or warmup < 0:
        raise ConfigError(f"batch_size={batch_size}, repeats={repeats}, steps={steps}, warmup={warmup}: give "
                          "batch_size, repeats and steps of 1 or more and warmup of 0 or more")
    device, make, amp = torch.device(device), _builder(build), AMP[precision]
    layouts = candidates(in_channels)
    side = resolution if side is None else side
    timed_batch = batch_size if device.type == "cuda" else min(batch_size, CPU_BATCH)
    forked = []
    if device.type == "cuda":
        forked = [device.index if device.index is not None else torch.cuda.current_device()]
    times: dict[str, list[float]] = {name: [] for name in layouts}
    started = time.perf_counter()
    with torch.random.fork_rng(devices=forked):  # dropout on CUDA draws from the device's generator
        torch.default_generator.manual_seed(0)  # the same weights and batch whatever the caller's seed (CPU's
        # generator only: torch.manual_seed would also seed CUDA devices that fork_rng does not restore)
        x = torch.rand(timed_batch, in_channels, side, side).to(device)
        models = {name: make(**layout).to(device).train() for name, layout in layouts.items()}
        for model in models.values():
            for _ in range(warmup):
                _step(model, x, device, amp)
        for _ in range(repeats):  # rounds interleave the candidates: a slow spell hits every one
            for name, model in models.items():
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(steps):
                    _step(model, x, device, amp)
                _sync(device)
                times[name].append(1e3 * (time.perf_counter() - t0) / steps)
    # the fastest round, not the mean: another process only ever adds time, so the fastest round is the
    # best estimate of the layout's own cost (Python's timeit documentation says the same of its repeats)
    ms = {name: min(t) for name, t in times.items()}
    chosen = decide(ms, margin)
    record = {"device": str(device), "device_name": _device_name(device), "precision": precision,
              "batch_size": timed_batch, "resolution": resolution, "side": side, "in_channels": in_channels,
              "margin": margin, "repeats": repeats, "steps": steps, "warmup": warmup,
              "ms_per_step": {name: round(v, 3) for name, v in ms.items()},
              "median_ms": {name: round(statistics.median(t), 3) for name, t in times.items()},
              "rounds_ms": {name: [round(v, 3) for v in t] for name, t in times.items()},
              "chosen": chosen, **layouts[chosen], "seconds": round(time.perf_counter() - started, 2),
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    log.info("layout: %s (ms per step, fastest of %d rounds: %s; a layout is kept when >= %d%% faster)", chosen,
             repeats, ", ".join(f"{n} {v:.1f}" for n, v in ms.items()), round(100 * margin))
    return dict(layouts[chosen]), record


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()


__all__ = ["MARGIN", "candidates", "choose_layout", "decide"]
