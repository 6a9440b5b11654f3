"""Setup lint: the faults that a look at the model's structure and a few forward passes find before any
training (the data's own checks, D3 and D8, are in data_checks.py). "lint": the loss against the model's
output (softmax or sigmoid before a loss that takes logits, labels out of range, class labels fed to a
regression loss, an output activation that cannot reach the target), two linear layers
with no activation between them, an optimizer over other parameters, and the caller's train_step observed
on copies (gradients never zeroed, a step before backward). Nothing here changes the caller's objects:
forward passes run on deep copies under no_grad, the train_step on setup.copies()."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from ..errors import ConfigError
from ..steps import main_output
from .reading import adaptive, read_setup
from .setup import Setup, finite_rows, measured_loss
from .verdict import Verdict

SUM_TOL = 1e-4  # a row of probabilities sums to 1 within float32 rounding over <= 1e3 classes
# Output-range probes: the rows as given, then scaled by +-100. A raw (linear) output grows with its input
# and leaves any bounded range; an output behind a sigmoid/tanh/softmax cannot. On the healthy setups the
# x100 probes reach [-75, 201] (breast cancer), [-50, 17] (imbalanced), [-37, 11] (diabetes): both signs,
# far outside [0, 1].
PROBE_SCALES = (1.0, 100.0, -100.0)
STEP_CALLS, STEP_ROWS = 3, 64  # train_step observation: 3 calls on 64 rows (a second call shows stale grads)
ROWS_SHOWN = 10
MAX_CLASS_VALUES = 20  # an integer target with at most this many distinct values looks like class labels

KARPATHY = "Karpathy (2018), 'most common neural net mistakes'"
PASSTHROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
               _BatchNorm, nn.Identity, nn.Flatten, nn.Unflatten)  # affine (or identity) at evaluation
# The losses whose expected input the lint knows, as modules and as functions.
LOSSES: list[tuple[type[nn.Module], Callable[..., Any], str]] = [
    (nn.CrossEntropyLoss, F.cross_entropy, "ce"), (nn.NLLLoss, F.nll_loss, "nll"),
    (nn.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits, "bcel"), (nn.BCELoss, F.binary_cross_entropy, "bce"),
    (nn.MSELoss, F.mse_loss, "regression"), (nn.L1Loss, F.l1_loss, "regression"),
    (nn.HuberLoss, F.huber_loss, "regression"), (nn.SmoothL1Loss, F.smooth_l1_loss, "regression")]


def check_lint(setup: Setup) -> list[Verdict]:
    """The setup lint: one 'pass' verdict when it finds nothing (the data's D3/D8 are in data_checks)."""
    notes: dict[str, Any] = {}
    findings = [*_optimizer_holds_model(setup), *_missing_nonlinearity(setup.model)]
    findings += _outputs(setup, notes)
    names = {v.name for v in findings}
    findings += [v for v in read_setup(setup) if v.name not in names]  # the setup as written (reading.py)
    findings += check_train_step(setup)
    evaluate = setup.evaluate
    if evaluate is not None:
        try:
            verdict = check_evaluate(setup, evaluate)
        except Exception as e:  # the caller's evaluation fails: evaluation would stop there too
            verdict = Verdict("lint", "evaluation mode", "fail",
                              f"evaluate(model, x) raised: {type(e).__name__}: {e}",
                              {"exception": type(e).__name__, "x": "one tensor" if len(setup.x) == 1 else
                               f"a tuple of {len(setup.x)} tensors"},
                              "make evaluate(model, x) -> outputs run: x is the model's input (one tensor for a "
                              "model of one input, else the tuple the model takes as model(*x))",
                              "Karpathy's recipe (an end-to-end pipeline that runs)", fault="unknown")
        findings += [verdict] if verdict.status != "pass" else []
        notes.update(verdict.evidence if verdict.status == "pass" else {})
    else:
        _mode_note(setup, notes)
    if any(v.status in ("warn", "fail") for v in findings):
        return findings
    summary = "the loss matches the outputs and labels; layers, optimizer and training step are consistent"
    if "train_mode_max_diff" in notes:
        summary += (f"; the model has Dropout/BatchNorm (two training-mode passes differ by "
                    f"{notes['train_mode_max_diff']:.3g}): evaluate it after model.eval(), under torch.no_grad()")
    return [Verdict("lint", "setup lint", "pass", summary, notes, "", KARPATHY)]


# ---------------------------------------------------------------- structure
def _optimizer_holds_model(setup: Setup) -> list[Verdict]:
    """An optimizer built, then the model re-created, steps parameters the model does not use."""
    if setup.optimizer is None:
        return []
    held = {id(p) for g in setup.optimizer.param_groups for p in g["params"]}
    trainable = [(n, p) for n, p in setup.model.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if id(p) not in held]
    if not missing:
        return []
    evidence = {"trainable_parameters": len(trainable), "in_optimizer": len(trainable) - len(missing),
                "optimizer_parameters": len(held), "missing": missing[:ROWS_SHOWN]}
    source = "PyTorch docs (construct the optimizer on the model's parameters)"
    if len(missing) == len(trainable):
        return [Verdict("lint", "optimizer parameters", "fail",
                        f"the optimizer holds none of the model's {len(trainable)} trainable parameters: "
                        "training would not change the model", evidence,
                        "rebuild the optimizer on model.parameters() after the model is (re-)created", source)]
    return [Verdict("lint", "optimizer parameters", "warn",
                    f"{len(missing)} of the model's {len(trainable)} trainable parameters are not in the optimizer: "
                    f"{', '.join(missing[:ROWS_SHOWN])}", evidence,
                    "add them to the optimizer, or set requires_grad=False on the ones you mean to freeze", source)]


def _leaves(seq: nn.Sequential) -> list[nn.Module]:
    out: list[nn.Module] = []
    for m in seq:
        out += _leaves(m) if isinstance(m, nn.Sequential) else [m]
    return out


def _missing_nonlinearity(model: nn.Module) -> list[Verdict]:
    """Two Linear/Conv layers of an nn.Sequential (nested ones inlined) with only Dropout, BatchNorm,
    Identity or Flatten between them: they compose to one linear map (Lavanya Shukla, M4)."""
    names = {id(m): n or "model" for n, m in model.named_modules()}
    pairs: list[str] = []

    def visit(m: nn.Module) -> None:
        if isinstance(m, nn.Sequential):
            prev: nn.Module | None = None
            for leaf in _leaves(m):
                if isinstance(leaf, nn.Linear | _ConvNd):
                    if prev is not None:
                        pairs.append(f"{names[id(prev)]} -> {names[id(leaf)]}")
                    prev = leaf
                elif not isinstance(leaf, PASSTHROUGH):
                    prev = None
                visit(leaf)
        else:
            for child in m.children():
                visit(child)

    visit(model)
    if not pairs:
        return []
    return [Verdict("lint", "nonlinearity", "warn",
                    f"no activation between {', '.join(pairs)}", {"pairs": pairs},
                    "two linear layers in a row compose to one linear map: add an activation (ReLU) between them",
                    "Lavanya Shukla, 'How To Design Deep Learning Architecture' (activations, M4)")]


def _final_activation(model: nn.Module) -> nn.Module | None:
    """The activation module an nn.Sequential ends with (Softmax, Sigmoid, Tanh, ReLU...); None when it
    ends otherwise, and for other models, whose forward order is not visible."""
    leaves = _leaves(model) if isinstance(model, nn.Sequential) else []
    last = leaves[-1] if leaves else None
    return last if last is not None and type(last).__module__ == nn.modules.activation.__name__ else None


# ---------------------------------------------------------------- outputs against the loss and targets
def _loss_kind(loss_fn: Any) -> str | None:
    return next((kind for cls, fn, kind in LOSSES if isinstance(loss_fn, cls) or loss_fn is fn), None)


def _finite_rows(x: tuple[torch.Tensor, ...], y: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """The rows without NaN/inf (D3 reports those), so that one bad cell does not blind the probes."""
    keep = finite_rows(*x, y)
    return tuple(t[keep] for t in x), y[keep]


def _eval_rows(setup: Setup) -> tuple[torch.Tensor, ...]:
    """Up to STEP_ROWS finite rows of val_data (else data) for the evaluation-mode probes."""
    if setup.val_x is not None and setup.val_y is not None:
        x, _ = _finite_rows(setup.val_x, setup.val_y)
    else:
        x, _ = _finite_rows(setup.x, setup.y)
    return tuple(t[:STEP_ROWS] for t in x)


def _probe(setup: Setup) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Outputs of an eval-mode copy on the finite rows, scaled by PROBE_SCALES; and the rows' targets."""
    x, y = _finite_rows(setup.x, setup.y)
    model = copy.deepcopy(setup.model).eval()
    outs = []
    with torch.no_grad():
        for k in PROBE_SCALES:
            out = main_output(model(*(t * k if torch.is_floating_point(t) else t for t in x)))
            if not isinstance(out, torch.Tensor):
                return [], y
            outs.append(out.detach().float())
            if not any(torch.is_floating_point(t) for t in x):
                break  # integer inputs cannot be scaled
        outs += _last_layer_scaled(model, x)
    return outs, y


def _last_layer_scaled(model: nn.Module, x: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """The outputs with the output of the last layer that has weights (the last one the forward runs)
    shifted by +-100: inputs scaled up say nothing of a model whose input encoding saturates
    (piecewise-linear embeddings, a clamp) and whose outputs then stay small at init whatever its last
    layer; what follows that layer (an activation, a mean of members) bounds the outputs or not (a shift,
    not a scale: a scaled output near 0 stays near 0). Empty when no layer with weights runs."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in model.modules()
             if any(True for _ in m.parameters(recurse=False))]
    try:
        model(*x)
    finally:
        for h in hooks:
            h.remove()
    if not order:
        return []
    outs = []
    for shift in (100.0, -100.0):
        hook = order[-1].register_forward_hook(
            lambda m, i, o, shift=shift: o + shift if isinstance(o, torch.Tensor) else o)
        try:
            out = main_output(model(*x))
        finally:
            hook.remove()
        if isinstance(out, torch.Tensor):
            outs.append(out.detach().float())
    return outs


def _outputs(setup: Setup, notes: dict[str, Any]) -> list[Verdict]:
    kind = _loss_kind(setup.loss_fn)
    if kind is None and setup.loss_fn is None and setup.task == "multiclass":
        kind = "classes"  # a train_step without loss_fn: the labels' range is all that can be judged
    if kind is None and callable(setup.loss_fn) and setup.train_step is None and len(setup.y):
        return _own_loss_broadcasts(setup)
    if kind is None or not len(setup.y):
        return []
    try:
        outs, y = _probe(setup)
    except ConfigError:  # outputs the doctor cannot read the prediction from (a dict of other keys): the
        return []        # checks that need it are skipped with main_output's message, which says what to name it
    except Exception as e:  # the setup's own forward fails: say so here, the other checks will skip
        return [Verdict("lint", "forward", "fail", f"the model raised on the data: {type(e).__name__}: {e}",
                        {"input_shapes": [list(t.shape) for t in setup.x]},
                        "make the model's expected input match the data's shape and dtype",
                        "Karpathy's recipe (an end-to-end pipeline that runs)")]
    if not outs or not len(y):
        return []
    out = outs[0]
    leaf = _final_activation(setup.model)
    ends = f"the model ends with nn.{type(leaf).__name__}" if leaf is not None else ""
    lo, hi = min(float(o.min()) for o in outs), max(float(o.max()) for o in outs)
    notes.update(output_shape=list(out.shape), output_range_probed=[round(lo, 4), round(hi, 4)], loss=kind)
    evidence = {"output_min": round(lo, 4), "output_max": round(hi, 4), "probe_scales": list(PROBE_SCALES)}
    width = out.shape[1] if out.ndim >= 2 else 1
    source = f"PyTorch docs (the loss's expected input); {KARPATHY}"

    def is_simplex(o: torch.Tensor) -> bool:
        return o.ndim >= 2 and o.shape[1] > 1 and bool((o >= -SUM_TOL).all() and (o <= 1 + SUM_TOL).all()) \
            and bool(((o.sum(1) - 1).abs() <= SUM_TOL).all())

    def is_logprob(o: torch.Tensor) -> bool:
        return o.ndim >= 2 and o.shape[1] > 1 and bool(((torch.logsumexp(o, 1)).abs() <= SUM_TOL).all())

    # targets the loss raises on (a train_step of the caller's may reshape them itself: not judged there)
    shape = _class_target_shape(kind, out, y) if setup.train_step is None else None
    if shape is not None and _raises(setup.loss_fn, out, y):  # nothing else about the outputs can be judged
        return [shape]
    found: list[Verdict] = []
    if kind in ("ce", "nll"):
        simplex = all(map(is_simplex, outs))
        if simplex:
            rows = out.sum(1)
            evidence.update(row_sum_min=round(float(rows.min()), 6), row_sum_max=round(float(rows.max()), 6))
            fix = ("remove the softmax: CrossEntropyLoss takes raw logits and applies log_softmax itself" if kind == "ce"
                   else "end the model with LogSoftmax, not Softmax: NLLLoss takes log-probabilities")
            found.append(Verdict("lint", "softmax before the loss", "fail",
                                 f"{ends or 'the outputs are probabilities'}: every row lies in [0, 1] and sums to 1, "
                                 f"so the loss cannot fall near 0", evidence, fix, source))
        elif kind == "nll" and not all(map(is_logprob, outs)):
            found.append(Verdict("lint", "logits into NLLLoss", "fail",
                                 "the outputs are not log-probabilities (their rows' logsumexp is not 0)", evidence,
                                 "end the model with LogSoftmax, or use CrossEntropyLoss on the raw logits", source))
        elif kind == "ce" and all(map(is_logprob, outs)):
            notes["output"] = "log-probabilities: harmless before CrossEntropyLoss (log_softmax is idempotent)"
        found += _class_labels(setup, y, width)
    elif kind in ("bcel", "bce"):
        unit = lo >= 0 and hi <= 1
        if kind == "bcel" and unit:
            found.append(Verdict("lint", "sigmoid before the loss", "fail",
                                 f"{ends or 'the outputs are confined to [0, 1]'}: BCEWithLogitsLoss applies its own "
                                 "sigmoid, so the model's probabilities are squashed twice", evidence,
                                 "feed raw outputs: remove the final sigmoid (BCEWithLogitsLoss takes logits)", source))
        elif kind == "bce" and not unit:
            found.append(Verdict("lint", "logits into BCELoss", "fail",
                                 "the outputs leave [0, 1] but BCELoss takes probabilities", evidence,
                                 "use BCEWithLogitsLoss on the raw outputs (or end the model with a sigmoid)", source))
        yf = y[torch.isfinite(y)] if torch.is_floating_point(y) else y
        if len(yf) and (float(yf.min()) < 0 or float(yf.max()) > 1):
            found.append(Verdict("lint", "labels", "fail",
                                 f"binary targets span [{float(yf.min()):g}, {float(yf.max()):g}]; BCE takes targets "
                                 "in [0, 1]", {"y_min": float(yf.min()), "y_max": float(yf.max())},
                                 "map the labels to 0 and 1 (e.g. y = (y + 1) / 2 for labels in {-1, 1})", source))
    elif kind == "classes":
        found += _class_labels(setup, y, width)
    else:
        found += _regression(y, outs, lo, hi, leaf, ends, evidence)
    return found


def _own_loss_broadcasts(setup: Setup) -> list[Verdict]:
    """A loss of the caller's own ((out - y) ** 2).mean()) on outputs (N, 1) and targets (N,): torch
    broadcasts them to (N, N), every output against every target, and the loss trains towards the mean of
    the targets, silently. Told by the loss itself: on the outputs reshaped to the targets' shape it gives
    another value (a loss that matches the shapes itself gives the same)."""
    try:
        outs, y = _probe(setup)
    except Exception:  # the forward's own failure is the other checks' to tell
        return []
    if not outs or outs[0].shape == y.shape or outs[0].numel() != y.numel():
        return []
    out = outs[0]
    try:
        with torch.no_grad():
            given = float(setup.loss_fn(out, y))  # type: ignore[misc]
            matched = float(setup.loss_fn(out.reshape(y.shape), y))  # type: ignore[misc]
            # the value torch's broadcasting gives: a loss that reads the output's shape itself (a sum over its
            # last axis) differs from the reshaped one without broadcasting anything
            b = torch.broadcast_shapes(out.shape, y.shape)
            spread = float(setup.loss_fn(out.expand(b), y.expand(b)))  # type: ignore[misc]
    except Exception:  # a loss that needs more than (outputs, targets), or raises on one of the shapes
        return []

    def same(a: float, c: float) -> bool:
        return abs(a - c) <= 1e-4 * max(abs(c), 1e-8)

    if not (math.isfinite(given) and math.isfinite(matched)) or same(given, matched) or not same(given, spread):
        return []
    return [Verdict("lint", "target shape", "fail",
                    f"outputs {list(out.shape)} and targets {list(y.shape)} differ, and the loss broadcasts them: "
                    f"{given:.4g} as given, {matched:.4g} with the outputs shaped as the targets (every output is "
                    "compared with every target)",
                    {"output_shape": list(out.shape), "y_shape": list(y.shape), "loss_as_given": round(given, 6),
                     "loss_shapes_matched": round(matched, 6)},
                    f"reshape y to {list(out.shape)}" + (" (y[:, None] for one output)" if y.ndim == 1 else "")
                    + f", or the outputs to {list(y.shape)} (out.squeeze(1)) before the loss",
                    "PyTorch docs (broadcasting semantics); Karpathy's recipe (a shape bug that trains silently)")]


def _class_target_shape(kind: str, out: torch.Tensor, y: torch.Tensor) -> Verdict | None:
    """Targets of a shape the classification loss raises on: class indices of CrossEntropyLoss/NLLLoss are
    (N,) for outputs (N, C) (probabilities: the outputs' shape); BCE's targets are the outputs' shape. A
    (N, 1) column of labels, as a table's target column is often read, is the usual case."""
    if kind not in ("ce", "nll", "bce", "bcel"):
        return None
    indices = kind in ("ce", "nll") and not torch.is_floating_point(y)
    want = [out.shape[0], *out.shape[2:]] if indices else list(out.shape)
    if list(y.shape) == want:
        return None
    if kind in ("ce", "nll") and torch.is_floating_point(y) and list(y.shape) == [out.shape[0], *out.shape[2:]]:
        said = ("CrossEntropyLoss gets float targets {}: class indices as floats, which it reads as class "
                "probabilities of the outputs' shape {} and raises on" if kind == "ce" else
                "NLLLoss gets float targets {}: it takes class indices as int64 only (outputs {})")
        return Verdict("lint", "target shape", "fail", said.format(list(y.shape), list(out.shape)),
                       {"output_shape": list(out.shape), "y_shape": list(y.shape), "y_dtype": str(y.dtype)},
                       "pass the class indices as int64: y.long()", "PyTorch docs (the loss's input and target shapes)")
    if y.ndim == len(want) + 1 and y.shape[-1] == 1 and list(y.shape[:-1]) == want:
        how = "y.squeeze(-1)"
    elif len(want) == y.ndim + 1 and want[-1] == 1 and list(y.shape) == want[:-1]:
        how = "y.unsqueeze(-1)"
    else:
        how = f"y.reshape({', '.join(map(str, want))})" if y.numel() == math.prod(want) else ""
    loss = {"ce": "CrossEntropyLoss", "nll": "NLLLoss", "bce": "BCELoss", "bcel": "BCEWithLogitsLoss"}[kind]
    takes = "class indices of shape (N,) (int64)" if indices else "targets of the outputs' shape"
    fix = (f"give the loss {list(want)} targets: {how}" if how else
           f"give the loss targets of shape {list(want)}") + (" with y.long()" if indices else "")
    return Verdict("lint", "target shape", "fail",
                   f"{loss} gets outputs {list(out.shape)} and targets {list(y.shape)}; it takes {takes}, and "
                   "raises on these", {"output_shape": list(out.shape), "y_shape": list(y.shape), "loss": loss},
                   fix, "PyTorch docs (the loss's input and target shapes)")


def _raises(loss_fn: Any, out: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether the loss raises on these outputs and targets (a shape or dtype it refuses)."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss_fn(out, y)
    except Exception:
        return True
    return False


def _class_labels(setup: Setup, y: torch.Tensor, width: int) -> list[Verdict]:
    """Class indices must lie in [0, C - 1] for C output columns (the loss's ignore_index aside)."""
    if torch.is_floating_point(y):
        return []  # class probabilities: CrossEntropyLoss takes them as they are
    ignore = getattr(setup.loss_fn, "ignore_index", -100)
    y = y[y != ignore]
    bad = (y < 0) | (y >= width)
    if not len(y) or not bad.any():
        return []
    evidence = {"y_min": int(y.min()), "y_max": int(y.max()), "output_width": width, "out_of_range": int(bad.sum())}
    return [Verdict("lint", "labels", "fail",
                    f"{int(bad.sum())} labels lie outside [0, {width - 1}] (labels span [{int(y.min())}, "
                    f"{int(y.max())}]) for a model with {width} outputs", evidence,
                    f"encode the classes as 0..{width - 1}, or give the model one output per class",
                    "PyTorch docs (class indices in [0, C))")]


def _regression(y: torch.Tensor, outs: list[torch.Tensor], lo: float, hi: float, leaf: nn.Module | None,
                ends: str, evidence: dict[str, Any]) -> list[Verdict]:
    out = outs[0]
    source = "Lavanya Shukla / 'Tips and tricks for Neural Networks' (the output layer and loss by task, M1, M3)"
    shape_y = list(y.shape)
    if list(out.shape) != shape_y:
        distinct = int(torch.unique(y).numel())
        ev = {"output_shape": list(out.shape), "y_shape": shape_y, "y_distinct": distinct}
        classes = not torch.is_floating_point(y) or (distinct <= max(out.shape[-1], 2) and out.ndim == 2
                                                     and out.shape[1] > 1)
        if classes:
            return [Verdict("lint", "class labels in a regression loss", "fail",
                            f"a regression loss gets outputs {list(out.shape)} and targets {shape_y} holding "
                            f"{distinct} distinct values: class indices", ev,
                            "use CrossEntropyLoss for class labels (one output per class, y as int64 indices)", source)]
        return [Verdict("lint", "target shape", "fail",
                        f"outputs {list(out.shape)} and targets {shape_y} differ: the loss broadcasts them", ev,
                        f"reshape y to {list(out.shape)}" + (" (y[:, None] for one output)" if y.ndim == 1 else ""),
                        source)]
    found: list[Verdict] = []
    if not torch.is_floating_point(y):
        distinct = int(torch.unique(y).numel())
        if distinct <= MAX_CLASS_VALUES:
            found.append(Verdict("lint", "class labels in a regression loss", "warn",
                                 f"a regression loss gets integer targets with {distinct} distinct values",
                                 {"y_dtype": str(y.dtype), "y_distinct": distinct},
                                 "use CrossEntropyLoss for class labels; for a count or a score, cast y to float",
                                 source))
    yf = y.float()
    y_lo, y_hi = float(yf.min()), float(yf.max())
    for name, (a, b) in (("[0, 1]", (0.0, 1.0)), ("[-1, 1]", (-1.0, 1.0)), ("[0, inf)", (0.0, float("inf")))):
        if a <= lo and hi <= b:
            if y_lo < a or y_hi > b:
                found.append(Verdict("lint", "output activation", "fail",
                                     f"{ends or f'the outputs are confined to {name}'} but the targets span "
                                     f"[{y_lo:.4g}, {y_hi:.4g}]: part of the target is out of reach",
                                     {**evidence, "y_min": y_lo, "y_max": y_hi, "output_range": name},
                                     f"remove the final {type(leaf).__name__ if leaf is not None else 'activation'} "
                                     f"(a linear output), or rescale the target into {name}", source))
            break
    return found


# ---------------------------------------------------------------- the caller's train_step
def check_train_step(setup: Setup) -> list[Verdict]:
    """A missing zero_grad: run the caller's train_step STEP_CALLS times on copies and watch the gradients:
    a hook on each parameter sees .grad just before a backward adds to it, and optimizer.step is wrapped on
    the copy's optimizer. Stale gradients = a backward in a new call adds to a gradient that was already
    stepped with."""
    if setup.train_step is None:
        return []
    model, opt = setup.copies()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None  # the caller's model may come mid-training, with a gradient left over
    events: list[tuple[Any, ...]] = []  # ("step", call) | ("grad", call, param, |grad| before)
    call = [0]

    def hook(i: int, p: torch.Tensor) -> Callable[[torch.Tensor], None]:  # the version: in-place updates
        return lambda g: events.append(("grad", call[0], i, 0.0 if p.grad is None else float(p.grad.norm()),
                                        p._version))

    handles = [p.register_hook(hook(i, p)) for i, p in enumerate(params)]
    step = opt.step

    def counted_step(*args: Any, **kwargs: Any) -> Any:
        out = step(*args, **kwargs)
        events.append(("step", call[0]))  # after: an LBFGS closure runs its backward inside step()
        return out

    opt.step = counted_step  # type: ignore[method-assign]  # this instance only: the copy's optimizer
    n = min(STEP_ROWS, len(setup.y))
    batch = (*(t[:n] for t in setup.x), setup.y[:n])
    before = [p.detach().clone() for p in params]
    norms_after: list[float] = []
    returned: list[float] = []
    measured = _loss_before(setup, model, batch)
    try:
        for c in range(STEP_CALLS):
            call[0] = c
            out = setup.train_step(model, opt, batch)
            if isinstance(out, torch.Tensor) and out.numel() == 1 or isinstance(out, float | int):
                returned.append(float(out.detach() if isinstance(out, torch.Tensor) else out))
            grads = [p.grad.norm() for p in params if p.grad is not None]
            norms_after.append(round(float(torch.stack(grads).norm()), 4) if grads else 0.0)
    except Exception as e:  # training would stop at its first step: that is the finding
        return [Verdict("lint", "train_step", "fail", f"train_step raised on a batch of {n} rows: "
                        f"{type(e).__name__}: {e}", {"rows": n, "call": call[0]},
                        "make train_step(model, optimizer, batch) run on batch = (*inputs, targets); see the "
                        "other findings for the data", "Karpathy's recipe (an end-to-end pipeline that runs)",
                        fault="unknown")]
    finally:
        for h in handles:
            h.remove()
    applied = [False] * len(params)
    version: list[int | None] = [None] * len(params)  # each parameter's version at its last backward
    seen: set[tuple[int, int]] = set()
    pre = [0.0] * STEP_CALLS
    stale: set[int] = set()
    early: set[int] = set()
    backward_calls: set[int] = set()
    for e in events:
        if e[0] == "step":
            if e[1] not in backward_calls:
                early.add(e[1])
            applied = [True] * len(params)
            continue
        _, c, i, norm, now = e
        backward_calls.add(c)
        # stepped with: the optimizer stepped since, or the step updated the parameter in place itself
        # (p -= lr * p.grad under no_grad, a step without an optimizer) and left its gradient there
        updated = applied[i] or version[i] is not None and now != version[i]
        if (c, i) not in seen:  # the first backward of this call reaching parameter i
            seen.add((c, i))
            pre[c] += norm ** 2
            if norm > 0 and updated:
                stale.add(c)
        applied[i], version[i] = False, now
    moved = max((float((p.detach() - b).abs().max()) for p, b in zip(params, before)), default=0.0)
    evidence = {"calls": STEP_CALLS, "grad_norm_before_backward": [round(v ** 0.5, 4) for v in pre],
                "grad_norm_after_step": norms_after, "optimizer_steps": sum(e[0] == "step" for e in events),
                "max_parameter_change": moved}
    source = f"{KARPATHY} (#3: forgot .zero_grad() before .backward()); PyTorch docs (gradients accumulate)"
    found = []
    if stale:
        found.append(Verdict("lint", "train_step", "fail",
                             f"gradients already stepped with are still there when backward runs (calls "
                             f"{sorted(stale)}): they accumulate, norm {norms_after}", evidence,
                             "call optimizer.zero_grad() before backward, once per step", source,
                             fault="missing-zero-grad"))
    if not backward_calls and evidence["max_parameter_change"] == 0:
        found.append(Verdict("lint", "train_step", "fail",
                             f"no backward of the {STEP_CALLS} calls reached a parameter: the loss the step backpropagates "
                             "is cut from the model (rebuilt from loss.item() or a detached tensor, or computed under "
                             "torch.no_grad()), so nothing trains", evidence,
                             "backpropagate the loss the model computed: keep it a tensor of the graph (no .item(), "
                             ".detach() or torch.tensor(...) on the way to backward())", source, fault="frozen-layer"))
    elif early:
        found.append(Verdict("lint", "train_step", "fail",
                             f"optimizer.step() runs before backward in calls {sorted(early)}: each step uses "
                             "the previous (or no) gradient", evidence,
                             "call loss.backward() before optimizer.step(): zero_grad, forward, loss, backward, step",
                             source, fault="step-before-backward"))
    found += _returned_loss(setup, measured, returned[:1], n, source)
    if not evidence["optimizer_steps"] and (setup.optimizer is not None or not moved):
        # without an optimizer of the caller's, a step that updates the parameters itself trains as written
        found.append(Verdict("lint", "train_step", "warn",
                             f"train_step never called step() on the optimizer it was given ({STEP_CALLS} calls)",
                             evidence, "step the optimizer passed in: train_step(model, optimizer, batch) must use "
                                       "both arguments, not objects from outside", source,
                             fault="optimizer-wrong-params"))
    return found


def _loss_before(setup: Setup, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> float | None:
    """loss_fn on the batch before the first call, in the mode the step trains in (dropout aside)."""
    if setup.loss_fn is None:
        return None
    try:
        return measured_loss(model, setup.loss_fn, batch[:-1], batch[-1])
    except Exception:
        return None


def _returned_loss(setup: Setup, measured: float | None, returned: list[float], n: int,
                   source: str) -> list[Verdict]:
    """The loss the caller's step returns against loss_fn on the same batch: the opposite sign (the step
    minimizes the loss's negative), or n times it (summed over the batch, with an optimizer that does not
    normalize the step)."""
    if measured is None or not returned or not (measured > 0 and abs(returned[0]) > 0):
        return []
    got = returned[0]
    evidence = {"loss_fn_on_batch": round(measured, 5), "train_step_returned": round(got, 5), "rows": n}
    if got < 0 and 1 / 3 <= -got / measured <= 3:
        return [Verdict("lint", "loss sign", "fail",
                        f"the training step returns {got:.4g} where loss_fn gives {measured:.4g} on the same batch: "
                        "it minimizes the loss's negative, driving the model away from the labels", evidence,
                        "fix the loss's sign in the training step (loss = loss_fn(out, y), not -loss_fn(...))",
                        source, fault="flipped-loss-sign")]
    if n >= 8 and abs(got / measured / n - 1) <= 0.25 and not adaptive(setup.optimizer):
        return [Verdict("lint", "loss reduction", "warn",
                        f"the training step returns {got:.4g}, {got / measured:.3g}x loss_fn's mean on the batch of "
                        f"{n} rows: the loss is summed, so the optimizer's step is the batch size times larger "
                        "than its learning rate says", evidence,
                        "average the loss over the batch (reduction='mean'), or divide the learning rate by the "
                        "batch size", source, fault="loss-sum-not-mean")]
    return []


# ---------------------------------------------------------------- evaluation mode
def _has_mode_layers(model: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) or (isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0)
               for m in model.modules())


def _max_diff(a: Any, b: Any) -> float:
    return float((torch.as_tensor(a).float() - torch.as_tensor(b).float()).abs().max())


def _mode_note(setup: Setup, notes: dict[str, Any]) -> None:
    """A model left in training mode at evaluation is in the caller's evaluation code, which the doctor does
    not see: a model handed over in training mode is the normal state before training. What it can show: how
    far two training-mode passes differ, and that two eval-mode passes agree (the pass verdict's evidence)."""
    if not _has_mode_layers(setup.model):
        return
    x = _eval_rows(setup)
    probe = copy.deepcopy(setup.model)
    try:
        with torch.no_grad():
            probe.train()
            train_diff = _max_diff(main_output(probe(*x)), main_output(probe(*x)))
            probe.eval()
            eval_diff = _max_diff(main_output(probe(*x)), main_output(probe(*x)))
    except Exception:  # a forward that fails is reported by _outputs
        return
    notes.update(train_mode_max_diff=round(train_diff, 6), eval_mode_max_diff=round(eval_diff, 6))
    notes["handed_over_in"] = "training mode" if setup.model.training else "eval mode"


def check_evaluate(setup: Setup, evaluate: Callable[[nn.Module, Any], Any]) -> Verdict:
    """Evaluation mode with the caller's evaluation function `evaluate(model, x) -> outputs` (x: one tensor
    for a model of one input, else the tuple of its inputs; outputs: a tensor, or a tuple or dict whose
    prediction is read as the Trainer reads it): call it twice on
    the same rows with a copy of the model as training leaves it (training mode). Outputs that differ mean
    dropout still runs; BatchNorm statistics that move mean BatchNorm still normalizes by the batch (its
    outputs can agree across two passes over the same rows, so the outputs alone would miss it)."""
    x = _eval_rows(setup)
    model = copy.deepcopy(setup.model).train()  # training mode, as after a training step
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.num_batches_tracked is not None]
    tracked_before = sum(int(m.num_batches_tracked) for m in norms)  # type: ignore[arg-type]
    given = x[0] if len(x) == 1 else x  # the model's input as the caller passes it: model(x), or model(*x)
    modes: list[bool] = []  # the model's mode as each forward of the caller's evaluation starts
    hook = model.register_forward_pre_hook(lambda m, args: modes.append(m.training))
    try:
        first = main_output(evaluate(model, given))
    finally:
        hook.remove()
    switched = bool(modes) and not any(modes)  # it ran in eval mode (model.eval(), whatever it restores after)
    tracked = isinstance(first, torch.Tensor) and first.requires_grad
    diff = _max_diff(first.detach() if tracked else first, main_output(evaluate(model, given)).detach())
    updates = sum(int(m.num_batches_tracked) for m in norms) - tracked_before  # type: ignore[arg-type]
    reference = copy.deepcopy(setup.model).eval()
    with torch.no_grad():
        eval_diff = _max_diff(main_output(reference(*x)), main_output(reference(*x)))
    evidence = {"two_passes_max_diff": round(diff, 6), "eval_mode_max_diff": round(eval_diff, 6),
                "batchnorm_updates": updates, "tracks_gradients": tracked, "rows": len(x[0])}
    source = f"{KARPATHY} (#2: forgot to toggle train/eval mode)"
    if diff > 0 or updates:
        seen = (f"two evaluation passes over the same {len(x[0])} rows differ by up to {diff:.3g} (in eval mode: "
                f"{eval_diff:.3g})" if diff > 0 else f"two evaluation passes updated BatchNorm's running "
                                                     f"statistics {updates} times")
        if eval_diff > 0 and not updates and switched:  # random after the caller's model.eval() too
            return Verdict("lint", "evaluation mode", "fail",
                           f"{seen}: the forward stays random after model.eval(), so dropout runs however the caller "
                           "evaluates", evidence, "make the dropout follow the mode: nn.Dropout as a layer, or "
                           "F.dropout(x, p, training=self.training) (F.dropout's default is training=True); a "
                           "sampling forward meant to stay random (a VAE, MC dropout) needs a seed to compare runs",
                           source)
        return Verdict("lint", "evaluation mode", "fail", f"{seen}: dropout/BatchNorm run in training mode",
                       evidence, "call model.eval() (and torch.no_grad()) before evaluating, model.train() before "
                                 "training", source)
    if tracked:
        return Verdict("lint", "evaluation mode", "warn", "evaluation builds an autograd graph", evidence,
                       "evaluate under torch.no_grad() (or torch.inference_mode())", source)
    return Verdict("lint", "evaluation mode", "pass", "two evaluation passes agree", evidence, "", source)


__all__ = ["check_evaluate", "check_lint", "check_train_step"]
