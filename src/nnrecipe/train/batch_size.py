"""T17: batch-size guidance, measured on this model, these rows and this device (docs/batch-size.md).

Two measurements, both on copies (the caller's model, optimizer and random number generators are left as
they were):

- throughput: samples per second of a whole training step (forward, loss, backward, optimizer step) at
  powers of two from 8 up to min(1024, rows); the fastest of a few timed rounds after a warm-up, with CUDA
  synchronised around the clock (kernels run asynchronously).
- the simple gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish, Kaplan, Amodei et al. 2018,
  "An Empirical Model of Large-Batch Training", sec. 2.2 and appendix A): G is the gradient over all the
  rows, Sigma the covariance of one row's gradient. Without per-example gradients: a batch of B rows drawn
  with replacement has E|G_B|^2 = |G|^2 + tr(Sigma)/B, so the norms at two sizes B_small < B_big give
      |G|^2    ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
      tr(Sigma) ~ (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big)
  each unbiased; the ratio is taken of their means over several rounds (the paper's advice: each single
  estimate is noisy), and a mean that its rounds cannot tell from zero makes the scale a bound.

Where the noise scale is measured: at the model as given (`warmup_steps=0`), its initialisation in a run.
The paper sees B_simple grow by an order of magnitude or more as the loss falls (its Fig. 4), and at the
start it is at its smallest when the gradient is one large shared direction (an output bias far off its
mean). The recipe's models start with the output bias at the prior (M6), which removes most of that
direction: on breast_cancer and digits the value at initialisation was within 2x of the one after 100
steps, for the MLP and for TabM, while the first steps of Adam can pass through a transient (digits'
TabM: 10x lower after 20 steps) and 300 steps put the MLP's 5-6x higher (docs/batch-size.md). So the
reading at initialisation is cheap, reproducible and early, a low one: it errs toward the smaller batches
the article favours (below). `warmup_steps=N` measures after N steps at B_small instead.

The advice. B_simple approximates the critical batch size B_crit (McCandlish et al., sec. 2.3 and 3):
to reach a given loss a run needs S = S_min (1 + B_noise / B) steps and E = E_min (1 + B / B_noise)
samples, so below B_noise a larger batch saves steps almost for free, and above it each doubling costs
nearly twice the epochs. The time to that loss is S / (steps per second) = S_min (B + B_noise) /
throughput(B): the batch that minimises (B + B_noise) / throughput(B) over the measured sizes trains
fastest. Lavanya Shukla ("How To Design Deep Learning Architecture", after Masters & Luschi
2018: 2-32 generalise best; Keskar et al. 2017: large batches find sharp minima that generalise worse)
says start small: the recommendation is the smallest measured batch whose predicted time is within
TIME_BAND of the fastest."""

from __future__ import annotations

import copy
import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import DEFAULT_LR
from ..errors import ConfigError
from ..steps import call_model, main_output
from .optim import clone_optimizer
from .trainer import resolve_device

log = logging.getLogger("nnrecipe")

SMALLEST, LARGEST = 8, 1024  # the sizes timed: powers of two in between (issue 22, item 6)
KNEE_GAIN = 0.10  # the knee: the smallest batch that no larger one beats by more than 10% in samples/s
# predicted times within 25% of the fastest count as equal, and the smallest such batch is advised (Lavanya
# Shukla: start small). The 25% is nnrecipe's choice, not a paper's: B_simple is known to about a factor of 2
# from a few rounds, and a shared machine moves timings by 10% or more, so a narrower band picks from noise
TIME_BAND = 0.25
SOURCE = ("McCandlish et al. 2018, 'An Empirical Model of Large-Batch Training' (noise scale, critical batch); "
          "Lavanya Shukla, 'How To Design Deep Learning Architecture' (start small: Masters & Luschi "
          "2018, 2-32; Keskar et al. 2017, sharp minima of large batches)")


@dataclass
class BatchSizeReport:
    """What `measure_batch_sizes` measured, and the advice that follows from it (knee, relative_time,
    recommended, reasons: derived on construction, so a report of scripted numbers advises the same way).
    `to_dict()` is JSON-able, every number finite."""
    device: str
    rows: int  # the training rows the measurement drew from
    batch_sizes: list[int]  # the sizes timed, ascending
    samples_per_s: list[float]  # one per size: the fastest round
    noise_scale: float  # B_simple = tr(Sigma) / |G|^2, in rows
    noise_bound: str = "estimate"  # or "at least", "at most" (the rounds resolved one term only), "unknown"
    grad_sq: float = 0.0  # |G|^2, the squared norm of the gradient over all the rows
    trace_sigma: float = 0.0  # tr(Sigma), the summed variance of one row's gradient
    noise_batches: tuple[int, int] = (16, 256)  # (B_small, B_big)
    noise_rounds: int = 0
    measured_after: int = 0  # optimizer steps of the copy before the noise scale was measured
    cut_by_budget: bool = False  # the timing stopped before the largest size: its time budget ran out
    seconds: float = 0.0  # what the measurement cost
    versions: dict[str, Any] = field(default_factory=dict)
    knee: int = field(init=False)  # throughput stops growing by more than KNEE_GAIN per doubling from here
    relative_time: list[float] = field(init=False)  # (B + B_noise) / throughput(B), the fastest = 1
    recommended: int = field(init=False)
    reasons: list[str] = field(init=False)

    def __post_init__(self) -> None:
        if not self.batch_sizes or len(self.batch_sizes) != len(self.samples_per_s) \
                or any(s <= 0 for s in self.samples_per_s) or not self.noise_scale > 0:
            raise ConfigError(f"batch_sizes={self.batch_sizes}, samples_per_s={self.samples_per_s}, noise_scale="
                              f"{self.noise_scale}: give one positive rate per size and a positive noise scale")
        times = [(b + self.noise_scale) / s for b, s in zip(self.batch_sizes, self.samples_per_s)]
        self.relative_time = [t / min(times) for t in times]
        self.knee = _knee(self.batch_sizes, self.samples_per_s)
        self.recommended = min(b for b, t in zip(self.batch_sizes, self.relative_time) if t <= 1 + TIME_BAND)
        self.reasons = _reasons(self)

    def throughput(self, batch: int) -> float:
        """Samples/s at `batch`: measured, or interpolated in log-log between the sizes timed (the last
        size's rate beyond them, the first's below)."""
        return math.exp(_interp(math.log2(batch), [math.log2(b) for b in self.batch_sizes],
                                [math.log(max(s, 1e-12)) for s in self.samples_per_s]))

    def time_at(self, batch: int) -> float:
        """The predicted time to a given loss at `batch`, relative to the fastest measured size."""
        best = min((b + self.noise_scale) / s for b, s in zip(self.batch_sizes, self.samples_per_s))
        return (batch + self.noise_scale) / self.throughput(batch) / best

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["noise_batches"] = list(self.noise_batches)
        return out

    def table(self) -> str:
        """The measurement and the advice, for a screen."""
        lines = [f"batch  samples/s  time to a given loss (x fastest)   [{self.device}, {self.rows} rows]"]
        for b, s, t in zip(self.batch_sizes, self.samples_per_s, self.relative_time):
            mark = "  <- recommended" if b == self.recommended else "  <- knee" if b == self.knee else ""
            lines.append(f"{b:5d}  {s:9.0f}  {t:6.2f}{mark}")
        bound = "" if self.noise_bound == "estimate" else f" ({self.noise_bound})"
        lines.append(f"gradient noise scale B_simple: {self.noise_scale:.1f}{bound} rows (|G|^2 {self.grad_sq:.3g}, "
                     f"tr(Sigma) {self.trace_sigma:.3g}; B {self.noise_batches[0]} vs {self.noise_batches[1]}, "
                     f"{self.noise_rounds} rounds, after {self.measured_after} steps)")
        lines.append(f"throughput knee: {self.knee}")
        lines.append(f"recommended batch size: {self.recommended}")
        lines += [f"  - {r}" for r in self.reasons]
        return "\n".join(lines)


def measure_batch_sizes(model: nn.Module, loss_fn: Callable[..., torch.Tensor], inputs: Any, target: torch.Tensor,
                        *, optimizer: torch.optim.Optimizer | None = None, device: str | torch.device | None = None,
                        batch_sizes: list[int] | None = None, warmup_steps: int = 0, small: int = 16,
                        chunks: int = 16, rounds: int = 8, timed_rounds: int = 3, timed_steps: int = 3,
                        budget: float = 2.0, seed: int = 0) -> BatchSizeReport:
    """Throughput and the gradient noise scale of `model` on (`inputs`, `target`) (a tensor, or a tuple of
    tensors the model takes as model(*inputs)), and the batch size they advise. `optimizer`: the run's, whose
    class and settings the copies use (None: Adam at 3e-4). `device`: None for CUDA when present. The noise
    scale compares batches of `small` rows with their mean over `chunks` of them (B_big = small x chunks),
    over `rounds` draws, after `warmup_steps` steps at `small`. Cost on one CPU thread: 0.1-0.4 s for the
    recipe's MLP on a small table, 2-3 s for TabM (the timing stops at `budget` seconds)."""
    xs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    rows = int(target.shape[0]) if isinstance(target, torch.Tensor) else -1
    if rows < SMALLEST or any(not isinstance(x, torch.Tensor) or x.shape[0] != rows for x in xs):
        shapes = ", ".join(str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__ for x in xs)
        raise ConfigError(f"inputs {shapes} and target {tuple(getattr(target, 'shape', ()))}: give tensors of one "
                          f"row count, {SMALLEST} rows or more")
    for name, value, least in (("small", small, 1), ("chunks", chunks, 2), ("rounds", rounds, 2),
                               ("timed_rounds", timed_rounds, 1), ("timed_steps", timed_steps, 1),
                               ("warmup_steps", warmup_steps, 0)):
        if not isinstance(value, int) or value < least:
            raise ConfigError(f"{name}={value!r} is not allowed; give a whole number of {least} or more")
    sizes = batch_sizes or [b for b in (2 ** k for k in range(3, 11)) if b <= min(LARGEST, rows)]
    if any(not isinstance(b, int) or b < 1 for b in sizes):
        raise ConfigError(f"batch_sizes={batch_sizes!r}: give whole numbers of 1 or more")
    asked = sorted(set(sizes))
    dev = resolve_device("auto" if device is None else str(device))
    forked = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    started = time.perf_counter()
    with torch.random.fork_rng(devices=forked):  # dropout draws from the global generators: theirs untouched
        torch.manual_seed(seed)
        xs_d, y_d = tuple(x.to(dev) for x in xs), target.to(dev)
        # the noise scale first, on generators of its own: a function of the seed, whatever the timing does
        noise = _noise_scale(*_copy(model, optimizer, dev), loss_fn, xs_d, y_d, torch.Generator().manual_seed(seed),
                             small, chunks, rounds, warmup_steps)
        sizes, rates = _throughputs(*_copy(model, optimizer, dev), loss_fn, xs_d, y_d, asked,
                                    torch.Generator().manual_seed(seed), timed_rounds, timed_steps, budget)
    scale, bound, grad_sq, trace = noise
    scale = min(max(scale, 1e-3), 1e9)  # finite and positive whatever the rounds gave (a flat loss, say)
    report = BatchSizeReport(str(dev), rows, sizes, [_finite(r) for r in rates], scale, bound, _finite(grad_sq),
                             _finite(trace), (small, small * chunks), rounds, warmup_steps,
                             cut_by_budget=sizes[-1] < asked[-1])
    report.seconds = round(time.perf_counter() - started, 3)
    report.versions = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                       "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"}
    log.info("T17 batch size: B_simple %.1f (%s), knee %d, recommended %d (%.2fs)", scale, bound, report.knee,
             report.recommended, report.seconds)
    return report


def _copy(model: nn.Module, optimizer: torch.optim.Optimizer | None, dev: torch.device
          ) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A copy of the model on `dev`, in training mode, with an optimizer like the caller's (fresh state)."""
    twin = copy.deepcopy(model).to(dev).train()
    if optimizer is None:
        return twin, torch.optim.Adam([p for p in twin.parameters() if p.requires_grad], lr=DEFAULT_LR)
    return twin, clone_optimizer(optimizer, model, twin, state=False)


def _step(model: nn.Module, opt: torch.optim.Optimizer, loss_fn: Callable[..., torch.Tensor],
          xs: tuple[torch.Tensor, ...], y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss_fn(main_output(call_model(model, xs)), y).backward()
    opt.step()


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":  # kernels run asynchronously: the clock must wait for them
        torch.cuda.synchronize(dev)


def _throughputs(model: nn.Module, opt: torch.optim.Optimizer, loss_fn: Callable[..., torch.Tensor],
                 xs: tuple[torch.Tensor, ...], y: torch.Tensor, sizes: list[int], g: torch.Generator, rounds: int,
                 steps: int, budget: float) -> tuple[list[int], list[float]]:
    """(the sizes timed, samples/s of whole training steps at each): the fastest of `rounds` rounds of
    `steps` steps after a warm-up step, since another process only ever adds time (models/layout.py times
    layouts so too). A size whose predicted cost would take the timing past `budget` seconds is timed with
    one step a round, or not at all (the larger sizes neither): the first two sizes always are."""
    dev, started, done = y.device, time.perf_counter(), []
    for i, batch in enumerate(sizes):
        n = steps
        if len(done) >= 2:
            per_step = batch / done[-1][1]  # at the last size's rate: rates grow with the batch, so an overestimate
            left = budget - (time.perf_counter() - started)
            if left < (1 + rounds * n) * per_step:
                n = 1
            if left < (1 + rounds) * per_step:
                break
        idx = torch.randint(len(y), (batch,), generator=g).to(dev)  # with replacement: any size, any rows
        bx, by = tuple(x[idx] for x in xs), y[idx]
        for _ in range(2 if i == 0 else 1):  # warm-up: the allocator, kernel choice, the optimizer's state
            _step(model, opt, loss_fn, bx, by)
        best = math.inf
        for _ in range(rounds):
            _sync(dev)
            t0 = time.perf_counter()
            for _ in range(n):
                _step(model, opt, loss_fn, bx, by)
            _sync(dev)
            best = min(best, (time.perf_counter() - t0) / n)
        done.append((batch, batch / max(best, 1e-9)))
    return [b for b, _ in done], [r for _, r in done]


def _grads(model: nn.Module, loss_fn: Callable[..., torch.Tensor], xs: tuple[torch.Tensor, ...], y: torch.Tensor,
           params: list[torch.Tensor]) -> list[torch.Tensor]:
    """The gradient of the mean loss over the rows, per parameter, in float64 (a difference of two squared
    norms is taken of it)."""
    loss = loss_fn(main_output(call_model(model, xs)), y)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [(gr if gr is not None else torch.zeros_like(p)).double() for gr, p in zip(grads, params)]


def _noise_scale(model: nn.Module, opt: torch.optim.Optimizer, loss_fn: Callable[..., torch.Tensor],
                 xs: tuple[torch.Tensor, ...], y: torch.Tensor, g: torch.Generator, small: int, chunks: int,
                 rounds: int, warmup_steps: int) -> tuple[float, str, float, float]:
    """(B_simple, its bound, |G|^2, tr(Sigma)) after `warmup_steps` steps (see the module's docstring)."""
    n = len(y)
    for _ in range(warmup_steps):
        idx = torch.randint(n, (small,), generator=g).to(y.device)
        _step(model, opt, loss_fn, tuple(x[idx] for x in xs), y[idx])
    params = [p for p in model.parameters() if p.requires_grad]
    b_small, b_big = small, small * chunks
    g2s, traces = [], []
    for _ in range(rounds):
        idx = torch.randint(n, (b_big,), generator=g).to(y.device)  # with replacement: E|G_B|^2 is exact
        total, small_sq = [torch.zeros_like(p, dtype=torch.float64) for p in params], 0.0
        for i in idx.split(b_small):
            part = _grads(model, loss_fn, tuple(x[i] for x in xs), y[i], params)
            small_sq += sum(float(gr.square().sum()) for gr in part) / chunks
            torch._foreach_add_(total, part)
        big_sq = sum(float(t.square().sum()) for t in total) / chunks ** 2  # the chunks' mean: a batch of B_big
        g2s.append((b_big * big_sq - b_small * small_sq) / (b_big - b_small))
        traces.append((small_sq - big_sq) / (1 / b_small - 1 / b_big))
    g2, trace = statistics.fmean(g2s), statistics.fmean(traces)
    # two standard errors over the rounds: a mean within them of zero is not resolved
    se_g2, se_tr = (2 * statistics.stdev(v) / math.sqrt(rounds) for v in (g2s, traces))
    if g2 > se_g2 and trace > se_tr:
        return trace / g2, "estimate", g2, trace
    if trace > se_tr and g2 + se_g2 > 0:  # |G|^2 lost in the noise: B_simple is at least this
        return trace / (g2 + se_g2) if g2 > 0 else trace / se_g2, "at least", max(g2, 0.0), trace
    if g2 > se_g2 and trace + se_tr > 0:  # hardly any noise between rows: at most this
        return max(trace + se_tr, 0.0) / g2, "at most", g2, max(trace, 0.0)
    return float(b_big), "unknown", max(g2, 0.0), max(trace, 0.0)  # neither resolved (a zero gradient, say)


def _knee(sizes: list[int], rates: list[float]) -> int:
    """The smallest size that no larger size beats by more than KNEE_GAIN (robust to one slow reading)."""
    for i, b in enumerate(sizes):
        if max(rates[i:]) <= (1 + KNEE_GAIN) * rates[i]:
            return b
    return sizes[-1]


def _reasons(report: BatchSizeReport) -> list[str]:
    scale, r = report.noise_scale, report.recommended
    fastest = report.batch_sizes[report.relative_time.index(min(report.relative_time))]
    bound = {"estimate": "~", "at least": ">=", "at most": "<=",
             "unknown": "not measured, taken as"}[report.noise_bound]
    return [
        f"gradient noise scale B_simple {bound} {scale:.0f} rows (McCandlish et al. 2018): up to it a larger batch "
        "saves steps almost for free; above it each doubling costs nearly twice the epochs",
        f"throughput grows up to batch {report.knee} ({report.throughput(report.knee):.0f} samples/s, "
        f"{report.throughput(report.knee) / report.samples_per_s[0]:.1f}x batch {report.batch_sizes[0]}), then by less "
        f"than {KNEE_GAIN:.0%} a doubling",
        f"predicted time to a given loss, (B + B_simple) / samples per second, is least at batch {fastest}",
        f"{r} is the smallest batch within {TIME_BAND:.0%} of that time: start small, as Lavanya Shukla "
        "advises (small batches generalise better: Masters & Luschi 2018, Keskar et al. 2017)",
    ] + ([f"the timing stopped at batch {report.batch_sizes[-1]}: its time budget ran out (larger batches were not "
          "measured)"] if report.cut_by_budget else [])


def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def _finite(v: float) -> float:
    return float(v) if math.isfinite(v) else 0.0


__all__ = ["BatchSizeReport", "batch_size_verdict", "measure_batch_sizes"]
