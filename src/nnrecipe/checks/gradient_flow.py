"""C7: gradient flow per layer (Lavanya Shukla, "How To Design Deep Learning Architecture"; the article
"Tips and Tricks for Deep Learning": vanishing and exploding gradients, dying units, a learning rate off by
orders of magnitude). A copy of the caller's setup takes a few training steps while hooks
record, layer by layer, the gradient of the weights and of the layer outputs, the activations of the ReLU
and sigmoid/tanh modules, and how far each optimizer step moves each weight matrix. The parameters the
optimizer does not hold, and those that get no gradient or never change, are listed by name.

Activations are seen through their modules (nn.ReLU, nn.Sigmoid, ...): a functional F.relu in forward is
invisible to the dead-unit count, which then relies on the share of zero gradient entries."""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..steps import main_output
from .setup import Setup
from .verdict import Verdict

STEPS = 10  # optimizer steps observed: enough to see the first updates and a dying layer, cheap on a CPU
BATCH = 64  # rows per step, consecutive slices of the setup's (already shuffled) sample

# AUTOTRAINER (Zhang et al., ICSE 2021): vanishing when |g_first|/|g_last| < 1e-3 and |g_first| < 1e-4,
# exploding when that ratio > 70 or anything is non-finite. g = the weight gradient's L2 norm (median over
# the steps). On the 7 healthy setups of tests/checks/cases.py the ratio lies in [0.25, 0.84] and |g_first|
# >= 1.1e-2 (D); the 10-layer sigmoid MLP reads 2.5e-8 and 1.5e-8.
VANISH_RATIO, VANISH_ABS, EXPLODE_RATIO = 1e-3, 1e-4, 70.0
# The weight-gradient ratio misses an exploding init: activations grow forward as fast as the error grows
# backward, so |dL/dW| stays level across layers (0.44 on the 8-layer ReLU MLP with N(0, 10) weights, whose
# gradients are 3e13). The gradient at each layer's output (the back-propagated error) shows it: its
# first/last ratio is 2e13 there, in [0.017, 4.0] on the healthy setups (4.0: BatchNorm + dropout), so
# AUTOTRAINER's 70 applies to it too.
# AUTOTRAINER: dying ReLU when >= 70% of the units are zero on every row (or of the gradient entries are
# exactly 0), on the batch of the first or the last step; the gradient entries (of the weights after the
# first layer) decide only when no nn.ReLU module is seen (a functional relu). Healthy: at most 37.5% dead
# units in a layer and 47% zero gradient entries (both B, whose 2-D inputs leave many units off on a
# 64-row batch); A with hidden biases at -5: 100% and 100%; A with SGD at 10, after 10 steps: 95% and 95%.
DEAD_UNITS, ZERO_GRAD = 0.70, 0.70
# DeepDiagnosis (Wardat et al., ICSE 2022): saturation when > 50% of the tanh/sigmoid inputs have |z| >= 5.
# The healthy setups have no tanh/sigmoid; a tanh MLP on breast cancer's raw features reads 97%.
SAT_Z, SAT_SHARE = 5.0, 0.50
# DeepDiagnosis: learning-rate trouble when lr * |dW| / |W| is outside [1e-5, 1e-1]. We measure the step
# itself, |W_after - W_before| / |W_before| (lr * |dW| for SGD, the real step for Adam and the others), the
# median over the steps and then over the weight matrices. Healthy: 9.4e-3 to 5.7e-2 (B, Adam at 1e-2);
# A with Adam at 1e-7: 1.1e-6; A with SGD at 10: 0.67. The upper bound is raised to 0.3: Adam at 1e-2, a
# common and sane choice, moves a 64-128 layer by lr / rms(W) ~ 0.09 per step (A at 1e-2 reads 0.086,
# SGD at 1 with momentum 0.21, and both train); C8 judges a rate that is too high from the curves.
UPDATE_LOW, UPDATE_HIGH = 1e-5, 0.3

SOURCE = ("Lavanya Shukla, 'How To Design Deep Learning Architecture'; 'Tips and Tricks for Deep Learning' (2020); "
          "AUTOTRAINER (Zhang et al., ICSE 2021); DeepDiagnosis (Wardat et al., ICSE 2022)")
FIX_OPTIMIZER = ("build the optimizer after the model, over model.parameters(), and rebuild it whenever the model "
                 "is re-created or layers are added")
FIX_DETACHED = ("fix the graph: remove the .detach(), .data, .item() or numpy round trip between these layers and "
                "the loss, or drop the layers forward does not use")
FIX_FROZEN = "set requires_grad=True on these parameters unless freezing them is on purpose (fine-tuning)"
# Parameter-efficient fine-tuning freezes the base model by design and trains what it adds: the names PEFT
# (Hugging Face's library) gives its trainable parts (LoRA's lora_A/lora_B/lora_embedding_*, IA3's ia3_l,
# prompt and prefix encoders, bottleneck adapters, the head copied into modules_to_save)
ADAPTER_NAMES = ("lora_", "ia3_", "prompt_encoder", "prefix_encoder", "adapter", "modules_to_save")
FIX_UNCHANGED = ("check that the training step calls optimizer.step() on an optimizer holding these parameters, "
                 "with a learning rate > 0")
FIX_VANISH = ("use ReLU-family activations in the hidden layers instead of sigmoid/tanh, He (Kaiming) init, and "
              "BatchNorm (or residual connections) so the gradient reaches the first layers")
FIX_EXPLODE = ("initialise with He (Kaiming) init, or Xavier for tanh, so activations keep their scale from layer "
               "to layer, and clip the gradient norm (e.g. clip_norm=1.0); lower the learning rate if it still "
               "diverges")
FIX_DEAD = ("use LeakyReLU (or GELU), re-initialise (He init, biases at 0, not negative) and lower the learning "
            "rate")
FIX_SATURATED = ("standardize the inputs and use Xavier (Glorot) init, or ReLU-family activations in the hidden "
                 "layers, so the pre-activations stay within |z| < 5")
FIX_LR_LOW = "raise the learning rate (run the LR range test, T4: nnrecipe's Trainer.lr_find)"
FIX_LR_HIGH = "lower the learning rate (run the LR range test, T4: nnrecipe's Trainer.lr_find)"


@dataclass
class _Record:
    """What the hooks saw over the steps, by parameter or module name."""

    losses: list[float] = field(default_factory=list)
    grad_norm: dict[str, list[float]] = field(default_factory=dict)  # weight gradient norms, per step
    zero_share: dict[str, list[float]] = field(default_factory=dict)  # share of exactly-0 gradient entries
    grad_entries: dict[str, int] = field(default_factory=dict)
    got_grad: set[str] = field(default_factory=set)
    nonfinite_grad: set[str] = field(default_factory=set)
    update_ratio: dict[str, list[float]] = field(default_factory=dict)
    out_grad: dict[str, list[float]] = field(default_factory=dict)  # norm of dL/d(layer output), per step
    layers: list[str] = field(default_factory=list)  # weight-bearing modules in the order forward calls them
    dead: dict[str, list[float]] = field(default_factory=dict)  # share of ReLU units 0 on every row, per step
    saturated: dict[str, list[float]] = field(default_factory=dict)  # share of |z| >= 5 at tanh/sigmoid inputs
    optimizer_steps: int = 0
    nonfinite: str = ""  # where and when the run first went non-finite
    kinds: dict[str, str] = field(default_factory=dict)  # activation module name -> class name


FlowRecord = _Record  # the public name: nnrecipe.integrations fills one from a host's own training steps


def check_gradient_flow(setup: Setup, steps: int = STEPS, batch: int = BATCH) -> list[Verdict]:
    """C7 on a copy: a few training steps observed by hooks. Returns one verdict per problem found (the
    parameters the optimizer lacks, parameters without gradient, frozen or never changed, vanishing or
    exploding gradients, dead ReLU units, saturated units, an update/weight ratio out of range), or a
    single pass verdict with the numbers."""
    if not any(p.requires_grad for p in setup.model.parameters()):  # no optimizer could be built over them
        every = [n for n, _ in setup.model.named_parameters()]
        return [Verdict("C7", "frozen parameters", "fail", "no parameter requires a gradient: nothing can learn",
                        {"frozen": len(every), "names": every[:10]}, FIX_FROZEN, SOURCE)]
    model, opt = setup.copies()
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    if not trainable:
        every = [n for n, _ in model.named_parameters()]
        return [Verdict("C7", "frozen parameters", "fail", "no parameter requires a gradient: nothing can learn",
                        {"frozen": len(every), "names": every[:10]}, FIX_FROZEN, SOURCE)]
    if len(missing) == len(trainable):  # nothing of this model can move: the run says nothing more
        return [_not_in_optimizer(missing, len(trainable), opt)]
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    heads = _other_heads(setup, model)
    rec = _observe(setup, model, opt, steps, batch)
    return judge_flow(model, opt, rec, start, other_heads=heads)


def _other_heads(setup: Setup, model: nn.Module) -> set[str]:
    """The parameters that reach the model's other outputs (a dict's or a tuple's beside the one the loss
    reads: an auxiliary head) when the doctor computes the loss itself: they get no gradient from that loss,
    and that is the doctor's view, not a layer cut from the user's training (a two-head model on wine failed
    'no gradient' on its healthy aux head). With the user's train_step every output is theirs to use: none."""
    if setup.train_step is not None:
        return set()
    probe = copy.deepcopy(model)
    with torch.enable_grad():
        out = probe(*(t[:8] for t in setup.x))
        main = main_output(out)
        others = [v for v in (out.values() if isinstance(out, Mapping) else out[1:] if isinstance(out, (tuple, list))
                              else []) if isinstance(v, torch.Tensor) and v is not main and v.requires_grad]
        named = [(n, p) for n, p in probe.named_parameters() if p.requires_grad]
        if not others or not named:
            return set()
        grads = torch.autograd.grad(sum(o.float().sum() for o in others), [p for _, p in named], allow_unused=True)
    return {n for (n, _), g in zip(named, grads) if g is not None}


def judge_flow(model: nn.Module, opt: torch.optim.Optimizer, rec: _Record,
               start: dict[str, torch.Tensor] | None, other_heads: set[str] = frozenset()) -> list[Verdict]:
    """The verdicts on what the hooks recorded, however the steps were run: this module's own steps on a
    copy, or a few steps of a host's training sampled by nnrecipe.integrations (FlowHooks). `start`: the
    parameters before the first step, to tell parameters that never changed (None: not judged); `other_heads`:
    parameters that feed only outputs the loss does not read (no gradient is expected of them)."""
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    verdicts: list[Verdict] = []
    if missing:
        verdicts.append(_not_in_optimizer(missing, len(trainable), opt))
    verdicts += _graph(model, rec, start, held, opt, other_heads)
    layer_norms = {n: _median(rec.grad_norm[f"{n}.weight"]) for n in rec.layers if f"{n}.weight" in rec.grad_norm}
    flowing = [n for n in rec.layers if layer_norms.get(n, 0.0) > 0]  # zero-gradient layers: see dead units
    evidence = _flow_evidence(rec, flowing, layer_norms)
    flow = _vanish_explode(rec, evidence)
    verdicts += flow + _units(rec, evidence)
    update = _update(rec, evidence, opt)
    if not any(v.name == "exploding gradients" for v in flow):  # huge weights make any step look small
        verdicts += update
    if verdicts:
        return verdicts
    return [Verdict("C7", "gradient flow", "pass",
                    f"{len(rec.losses)} steps: gradients reach every layer at a steady scale, no dead or saturated "
                    "units, updates of a sane size", evidence, "", SOURCE)]


class FlowHooks:
    """The hooks that fill a _Record: forward hooks on the weight-bearing modules (the layers' order and
    the gradient at their outputs) and on the ReLU/tanh/sigmoid modules (dead and saturated units), and
    pre/post hooks on the optimizer's step (the weight gradients, how far each step moves each weight).
    `new_step()` before each observed step; `remove()` when done. Used on a copy by check_gradient_flow,
    and on a host's live model for a few chosen steps by nnrecipe.integrations (the hooks only read)."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, rec: _Record, sample: int | None = None) -> None:
        # `sample`: how far a step moves each weight matrix is measured on up to that many of its entries
        # (sample_entries), not on a copy of it: on a host's live model a whole copy would double the weights'
        # memory for that step; a matrix of fewer entries is measured whole, as on the doctor's copies
        self.model, self.rec, self.sample = model, rec, sample
        self.module_names = {m: n for n, m in model.named_modules()}
        self.seen: set[str] = set()  # modules whose output gradient is hooked in this step
        self.calls: dict[str, int] = {}  # activation module -> calls in this step: one nn.ReLU may serve every layer
        self.last_weighted: nn.Module = model
        self.snapshot: dict[str, torch.Tensor] = {}
        self.handles = [opt.register_step_pre_hook(self._before_step), opt.register_step_post_hook(self._after_step)]
        for m in model.modules():
            if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.ndim >= 2 \
                    and not isinstance(m, nn.Embedding | nn.EmbeddingBag):  # a lookup's gradient is sparse by design
                self.handles.append(m.register_forward_hook(self._on_weighted))
            if isinstance(m, nn.ReLU | nn.ReLU6 | nn.Sigmoid | nn.Tanh):
                self.handles.append(m.register_forward_hook(self._on_activation))

    def new_step(self) -> None:
        self.seen.clear()
        self.calls.clear()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _on_weighted(self, m: nn.Module, inputs: Any, out: Any) -> None:
        rec, name = self.rec, self.module_names[m]
        self.last_weighted = m
        if name not in rec.layers:
            rec.layers.append(name)
        if name not in self.seen and isinstance(out, torch.Tensor) and out.requires_grad:
            self.seen.add(name)
            out.register_hook(lambda g: rec.out_grad.setdefault(name, []).append(float(g.detach().double().norm())))

    def _on_activation(self, m: nn.Module, inputs: Any, out: Any) -> None:
        rec, module = self.rec, self.module_names[m]
        self.calls[module] = k = self.calls.get(module, 0) + 1
        name = module if k == 1 else f"{module} (call {k})"
        rec.kinds[name] = type(m).__name__
        if isinstance(m, nn.ReLU | nn.ReLU6):
            dim = _unit_dim(out, self.last_weighted)
            if dim is not None:
                off = (out.detach() == 0).movedim(dim, 0).reshape(out.shape[dim], -1).all(dim=1)
                rec.dead.setdefault(name, []).append(float(off.float().mean()))
        elif inputs and isinstance(inputs[0], torch.Tensor):
            z = inputs[0].detach()
            rec.saturated.setdefault(name, []).append(float((z.abs() >= SAT_Z).float().mean()))

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        rec = self.rec
        rec.optimizer_steps += 1
        for n, p in self.model.named_parameters():
            if p.grad is None:
                continue
            g = p.grad.detach()
            rec.got_grad.add(n)
            if not bool(torch.isfinite(g).all()):
                rec.nonfinite_grad.add(n)
            rec.grad_norm.setdefault(n, []).append(float(g.double().norm()))  # float32 squares overflow at 1e19
            rec.zero_share.setdefault(n, []).append(float((g == 0).float().mean()))
            rec.grad_entries[n] = g.numel()
        self.snapshot = {n: self._entries(p).clone() for n, p in self.model.named_parameters() if p.ndim >= 2}

    def _entries(self, p: torch.Tensor) -> torch.Tensor:
        """The entries a step's move is measured on: all of them, or `sample` of them spread evenly."""
        return p.detach() if self.sample is None else spread(p, self.sample)

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        for n, p in self.model.named_parameters():
            if n in self.snapshot and self.rec.grad_norm.get(n, [0.0])[-1] > 0:  # weights that had something to follow
                w = self.snapshot[n].float().norm()
                if w > 0:
                    self.rec.update_ratio.setdefault(n, []).append(
                        float((self._entries(p).float() - self.snapshot[n]).norm() / w))
        self.snapshot = {}


def _observe(setup: Setup, model: nn.Module, opt: torch.optim.Optimizer, steps: int, batch: int) -> _Record:
    rec = _Record()
    hooks = FlowHooks(model, opt, rec)
    try:
        total = len(setup.y)
        for s in range(steps):
            rows = torch.arange(s * batch, (s + 1) * batch) % total if total > batch else torch.arange(total)
            hooks.new_step()
            loss = setup.step(model, opt, (*(t[rows] for t in setup.x), setup.y[rows]))
            rec.losses.append(loss)
            # a NaN from a train_step that returns nothing is no symptom; an inf, or NaN from our own step, is
            bad_loss = math.isinf(loss) or math.isnan(loss) and setup.train_step is None
            bad_params = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p.detach()).all())]
            if bad_loss or rec.nonfinite_grad or bad_params:
                what = (f"gradients of {', '.join(sorted(rec.nonfinite_grad)[:3])}" if rec.nonfinite_grad
                        else f"parameters {', '.join(bad_params[:3])}" if bad_params else f"the loss ({loss})")
                rec.nonfinite = f"{what} became non-finite at step {s + 1}"
                break  # the run is over; the verdict says where
    finally:
        hooks.remove()
    if not rec.got_grad and rec.optimizer_steps == 0:  # a train_step that never steps: read what it left
        for n, p in model.named_parameters():
            if p.grad is not None:
                rec.got_grad.add(n)
    return rec


def _unit_dim(out: Any, last: nn.Module) -> int | None:
    """The dimension of a ReLU output that indexes units: features for (N, F), channels after a conv, the
    last dimension after a linear layer on sequences (N, T, F)."""
    if not isinstance(out, torch.Tensor) or out.ndim < 2:
        return None
    if out.ndim == 2:
        return 1
    return 1 if isinstance(last, nn.modules.conv._ConvNd) else out.ndim - 1


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _not_in_optimizer(missing: list[str], n_trainable: int, opt: torch.optim.Optimizer) -> Verdict:
    n_held = sum(len(g["params"]) for g in opt.param_groups)
    evidence = {"not_in_optimizer": len(missing), "trainable": n_trainable, "optimizer_holds": n_held,
                "names": missing[:10]}
    if len(missing) == n_trainable:
        summary = (f"the optimizer holds {n_held} tensors and none of the model's {n_trainable} trainable parameters: "
                   "it was built on other parameters (a model created before this one?)")
    else:
        summary = (f"{len(missing)} of {n_trainable} trainable parameters are not in the optimizer and never "
                   f"train ({', '.join(missing[:3])})")
    return Verdict("C7", "not in the optimizer", "fail", summary, evidence, FIX_OPTIMIZER, SOURCE)


def adapted(model: nn.Module) -> bool:
    """A model fine-tuned through adapters (PEFT: a `peft_config`, or every trainable parameter named as
    PEFT names its adapters), whose frozen base is on purpose."""
    if getattr(model, "peft_config", None):
        return True
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    return bool(trainable) and all(any(a in n for a in ADAPTER_NAMES) for n in trainable)


def _graph(model: nn.Module, rec: _Record, start: dict[str, torch.Tensor] | None, held: set[int],
           opt: torch.optim.Optimizer, other_heads: set[str] = frozenset()) -> list[Verdict]:
    """Parameters frozen, without gradient, or that never changed although they got one."""
    out = []
    params = dict(model.named_parameters())
    frozen = [n for n, p in params.items() if not p.requires_grad]
    # a transfer model (models/transfer.py, `thaw`) freezes its backbone's blocks on purpose, by its mode and epoch;
    # so does a PEFT model (LoRA and the like) its base
    if frozen and not callable(getattr(model, "thaw", None)) and not adapted(model):
        out.append(Verdict("C7", "frozen parameters", "warn",
                           f"{len(frozen)} of {len(params)} parameters are frozen (requires_grad=False): "
                           f"{', '.join(frozen[:4])}", {"frozen": len(frozen), "names": frozen[:10]}, FIX_FROZEN,
                           SOURCE))
    if start is None:
        start = {}
    if rec.optimizer_steps == 0 and rec.losses and start:
        changed = [n for n, p in params.items() if n in start and not _as_started(p, start[n])]
        if not changed:
            return out + [Verdict("C7", "parameters never change", "fail",
                                  f"the training step never called optimizer.step() in {len(rec.losses)} steps and no "
                                  "parameter changed", {"steps": len(rec.losses), "optimizer_steps": 0},
                                  FIX_UNCHANGED, SOURCE)]
        return out
    none = [n for n, p in params.items() if p.requires_grad and n not in rec.got_grad and n not in other_heads]
    if none:
        out.append(Verdict("C7", "no gradient", "fail",
                           f"{len(none)} of {len(params)} parameters get no gradient: they are cut from the loss "
                           f"({', '.join(none[:4])})", {"no_gradient": len(none), "names": none[:10],
                                                        "steps": len(rec.losses)}, FIX_DETACHED, SOURCE))
    moving = [n for n, p in params.items() if id(p) in held and n in rec.got_grad
              and max(rec.grad_norm.get(n, [0.0])) > 0]
    still = [n for n in moving if n in start and _as_started(params[n], start[n])]
    if still:
        # a gradient and an optimizer step, yet no change: a rate of 0, else the step is not this optimizer's
        zero_lr = any(g.get("lr") == 0 for g in opt.param_groups)
        out.append(Verdict("C7", "parameters never change", "fail",
                           f"{len(still)} parameters got a gradient but did not change in {rec.optimizer_steps} "
                           f"optimizer steps ({', '.join(still[:4])})",
                           {"unchanged": len(still), "names": still[:10], "optimizer_steps": rec.optimizer_steps},
                           FIX_UNCHANGED, SOURCE, fault="lr-too-low" if zero_lr else "optimizer-wrong-params"))
    return out


def spread(p: torch.Tensor, limit: int) -> torch.Tensor:
    """About `limit` evenly spaced entries of a parameter (all of them when it has no more), a view."""
    return p.detach().reshape(-1)[::max(1, p.numel() // limit)]


def sample_entries(p: torch.Tensor, limit: int = 1024) -> torch.Tensor:
    """Up to `limit` evenly spaced entries of a parameter, copied: what a host's run keeps (instead of a
    copy of the whole model) to tell a parameter that never changed."""
    return spread(p, limit).clone()


def _as_started(p: torch.Tensor, start: torch.Tensor) -> bool:
    """The parameter equals its start: the whole tensor, or the entries sample_entries kept."""
    return torch.equal(p.detach(), start) if start.shape == p.shape else torch.equal(sample_entries(p), start)


def _flow_evidence(rec: _Record, flowing: list[str], layer_norms: dict[str, float]) -> dict[str, Any]:
    ev: dict[str, Any] = {"steps": len(rec.losses), "loss_first": _round(rec.losses[0]) if rec.losses else None,
                          "loss_last": _round(rec.losses[-1]) if rec.losses else None,
                          "layers": len(rec.layers)}
    if len(flowing) >= 2:
        g_first, g_last = layer_norms[flowing[0]], layer_norms[flowing[-1]]
        ev.update({"first_layer": flowing[0], "last_layer": flowing[-1], "grad_first": _round(g_first),
                   "grad_last": _round(g_last), "grad_ratio": _round(g_first / g_last)})
        # the largest gradient among the first quarter of the layers: a transformer's first module is an
        # attention query projection, whose gradient is near 0 at init by design (uniform attention: a
        # random BERT of 2 layers, hidden 32, reads 6.7e-6 against 0.26 at its classifier) while the value
        # projection beside it learns (issue 23, the Hugging Face integration's healthy twin)
        block = flowing[:max(1, len(flowing) // 4)]
        ev["grad_first_block_max"] = _round(max(layer_norms[n] for n in block))
    outs = [n for n in rec.layers if rec.out_grad.get(n)]
    if len(outs) >= 2:
        d_first, d_last = _median(rec.out_grad[outs[0]]), _median(rec.out_grad[outs[-1]])
        if d_last > 0:
            ev["output_grad_ratio"] = _round(d_first / d_last)
    ev["grad_norm_per_layer"] = {n: _round(layer_norms[n]) for n in rec.layers if n in layer_norms}
    return ev


def _vanish_explode(rec: _Record, ev: dict[str, Any]) -> list[Verdict]:
    # at init (the first step's gradients already out of range) the init is at fault; after updates that
    # started sane, the steps are too large: the learning rate
    first = _first_step_ratio(rec)
    at_init = first is None or first > EXPLODE_RATIO
    if rec.nonfinite:
        ev = {**ev, "nonfinite_gradients": sorted(rec.nonfinite_grad)[:10], "step": len(rec.losses)}
        at_init = len(rec.losses) <= 1 or first is not None and first > EXPLODE_RATIO
        return [Verdict("C7", "exploding gradients", "fail", rec.nonfinite, ev,
                        FIX_EXPLODE if at_init else FIX_LR_HIGH, SOURCE,
                        fault="exploding-init" if at_init else "lr-too-high")]
    ratio, out_ratio = ev.get("grad_ratio"), ev.get("output_grad_ratio")
    # ... and, where measured, the gradient at the first layer's output shrinks too (a 10-layer sigmoid MLP:
    # 2.5e-8, as its weight gradient): a weight gradient small only because the layer's inputs are small (a
    # text model's bag of embeddings, 0.01 at init: output ratio 0.03) is not a gradient that vanished
    block = ev.get("grad_first_block_max", ev.get("grad_first"))
    if ratio is not None and ratio < VANISH_RATIO and ev["grad_first"] < VANISH_ABS and (
            out_ratio is None or out_ratio < VANISH_RATIO) and block / ev["grad_last"] < VANISH_RATIO:
        return [Verdict("C7", "vanishing gradients", "fail",
                        f"the first layer's gradient ({ev['grad_first']:.1e}) is {ratio:.1e} times the last layer's "
                        f"({ev['grad_last']:.1e}): the first layers barely learn", ev, FIX_VANISH, SOURCE)]
    if ratio is not None and ratio > EXPLODE_RATIO or out_ratio is not None and out_ratio > EXPLODE_RATIO:
        which, value = ("weight gradient", ratio) if ratio is not None and ratio > EXPLODE_RATIO \
            else ("gradient at the layer outputs", out_ratio)
        return [Verdict("C7", "exploding gradients", "fail",
                        f"the {which} grows {value:.1e} times from the last layer back to the first"
                        + ("" if at_init else f" (at the first step {first:.3g}: the updates made it grow)"), ev,
                        FIX_EXPLODE if at_init else FIX_LR_HIGH, SOURCE,
                        fault="exploding-init" if at_init else "lr-too-high")]
    return []


def _first_step_ratio(rec: _Record) -> float | None:
    """The gradient at the first layer's output over the last layer's, at the first step (None: unknown)."""
    outs = [n for n in rec.layers if rec.out_grad.get(n)]
    if len(outs) < 2 or rec.out_grad[outs[-1]][0] <= 0:
        return None
    return rec.out_grad[outs[0]][0] / rec.out_grad[outs[-1]][0]


def _units(rec: _Record, ev: dict[str, Any]) -> list[Verdict]:
    out = []
    dead = {n: max(v[0], v[-1]) for n, v in rec.dead.items()}  # at the start and after the steps
    # the weights of the hidden layers: the first layer's gradient is 0 wherever an input is (sparse inputs)
    hidden = [f"{n}.weight" for n in rec.layers[1:] if rec.zero_share.get(f"{n}.weight")]
    total = sum(rec.grad_entries[n] for n in hidden)
    zero = sum(rec.zero_share[n][-1] * rec.grad_entries[n] for n in hidden) / total if total else 0.0
    if dead:
        ev["dead_units_max"] = _round(max(dead.values()))
    if total:
        ev["zero_gradient_share"] = _round(zero)
    worst = max(dead, key=dead.get) if dead else None
    # with nn.ReLU modules the units speak for themselves; with none seen (F.relu), the zero gradients do
    if worst is not None and dead[worst] >= DEAD_UNITS or not rec.kinds and total and zero >= ZERO_GRAD:
        layers = [n for n, v in dead.items() if v >= DEAD_UNITS]
        units = (f"{dead[worst]:.0%} of the units of ReLU '{worst}' are 0 on every row, and " if worst is not None
                 else "")
        # dead from the init (biases at -5), or killed by the first updates (a rate too high)
        zero_first = sum(rec.zero_share[n][0] * rec.grad_entries[n] for n in hidden) / total if total else 0.0
        at_init = (max(rec.dead[worst][0], 0.0) >= DEAD_UNITS) if worst is not None else zero_first >= ZERO_GRAD
        out.append(Verdict("C7", "dead ReLU units", "fail",
                           f"{units}{zero:.0%} of the hidden layers' weight-gradient entries are exactly 0"
                           + ("" if at_init else " (alive at the first step: the updates killed them)"),
                           {**{k: ev[k] for k in ("dead_units_max", "zero_gradient_share") if k in ev},
                            "dead_layers": layers, "dead_share": {n: _round(v) for n, v in dead.items()},
                            "dead_at_init": at_init},
                           FIX_DEAD if at_init else FIX_LR_HIGH, SOURCE,
                           fault="dying-relu" if at_init else "lr-too-high"))
    sat = {n: v[0] for n, v in rec.saturated.items()}  # at init: a confident output sigmoid later is no fault
    if sat:
        ev["saturated_share_max"] = _round(max(sat.values()))
        worst = max(sat, key=sat.get)
        if sat[worst] > SAT_SHARE:
            out.append(Verdict("C7", "saturated units", "fail",
                               f"{sat[worst]:.0%} of the inputs to '{worst}' ({rec.kinds[worst]}) have |z| >= "
                               f"{SAT_Z:g}, where its gradient is near 0",
                               {"saturated_share": {n: _round(v) for n, v in sat.items()}, "z": SAT_Z},
                               FIX_SATURATED, SOURCE))
    return out


def _update(rec: _Record, ev: dict[str, Any], opt: torch.optim.Optimizer) -> list[Verdict]:
    ratios = {n: _median(v) for n, v in rec.update_ratio.items() if v}
    if not ratios:
        return []
    median = float(statistics.median(ratios.values()))
    ev["update_ratio"] = _round(median)
    evidence = {"update_ratio": _round(median), "lr": opt.param_groups[0].get("lr"),
                "per_weight": {n: _round(v) for n, v in ratios.items()}, "bounds": [UPDATE_LOW, UPDATE_HIGH]}
    if median < UPDATE_LOW:
        return [Verdict("C7", "update/weight ratio", "fail",
                        f"each step moves the weights by {median:.1e} of their norm (median): the learning rate is "
                        f"too low to train in any reasonable time (healthy: about 1e-3 to 1e-2)", evidence,
                        FIX_LR_LOW, SOURCE, fault="lr-too-low")]
    if median > UPDATE_HIGH:
        return [Verdict("C7", "update/weight ratio", "warn",
                        f"each step moves the weights by {median:.2f} of their norm (median): the learning rate is "
                        "likely too high", evidence, FIX_LR_HIGH, SOURCE, fault="lr-too-high")]
    return []


def _round(x: float) -> float:
    return float(f"{x:.3g}") if math.isfinite(x) else x
