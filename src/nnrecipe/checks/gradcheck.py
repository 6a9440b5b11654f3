"""C5: the gradient check (Rishit Dagli, "use Grad Check for backpropagation"; Karpathy's recipe,
"try back-propagation yourself"): backprop's gradients against central finite differences, in float64, on a
copy of the model and a few rows. Autograd's own layers are trusted, so the check runs only where the caller
wrote a backward or a forward autograd has not been tested on: a custom torch.autograd.Function, a module
class or a loss from outside torch."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..steps import main_output
from .setup import Setup
from .verdict import Verdict

SOURCE = ("Rishit Dagli, 'How to Build Better Machine Learning Models' ('use Grad Check for backpropagation', "
          "its reference table); Karpathy's recipe")

ROWS = 4  # a few rows keep each of the ~100 extra forward passes cheap
PER_TENSOR = 8  # coordinates per parameter or input tensor: the 4 with the largest gradient, 4 at random
EPS = 1e-6  # the step of the central difference; in float64 its truncation error is ~EPS^2 and its
#             rounding error ~1e-16 / EPS relative to the loss, both far below FINE
# Rishit Dagli's reference table for the relative error |d_num - d_backprop| / (|d_num| + |d_backprop|):
# below 1e-7 the backward is fine; around 1e-5, look again; above 1e-3 it is wrong. Measured on the
# healthy setups with custom parts (setup D's SmallCNN; digits MLP with a correct custom ReLU Function), case
# seeds 0-4: 3e-9 to 1.6e-7 as computed, exactly 0 once the finite difference's rounding noise
# (~1e-16 |loss| / EPS per coordinate) is taken off; a custom backward with its gradient halved: 0.33.
FINE = 1e-7
WRONG = 1e-3
# A ReLU or max crossing its kink between x - EPS and x + EPS makes the central difference meaningless there
# (CS231n's "kinks in the objective"): such a coordinate shows as one-sided differences that disagree by
# more than KINK of their size, and is left out (counted in the evidence). A wrong backward leaves the
# one-sided differences in agreement with each other, so it is not mistaken for a kink.
KINK = 1e-3


def check_gradients(setup: Setup) -> Verdict:
    name = "gradient check"
    functions, modules, loss = custom_parts(setup)
    if not (functions or modules or loss):
        return Verdict("C5", name, "skipped", "only standard torch layers and loss (or nnrecipe's models, made of them): "
                       "autograd's gradients are trusted",
                       source=SOURCE)
    custom = functions + modules + ([loss] if loss else [])
    try:
        errors, raw, kinks, coords, cut = _compare(setup)
    except (RuntimeError, TypeError) as e:  # a layer that cannot run in float64, say
        return Verdict("C5", name, "skipped", f"could not compare gradients in float64 on {ROWS} rows: {e}",
                       {"custom": custom}, source=SOURCE)
    worst = max(errors.values(), default=0.0)
    top = dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5])
    evidence: dict[str, Any] = {"max_relative_error": float(f"{worst:.3g}"),
                                "max_relative_error_with_rounding": float(f"{raw:.3g}"), "worst_tensors": {
        k: float(f"{v:.3g}") for k, v in top.items()}, "coordinates": coords, "kinks_left_out": kinks,
        "rows": min(ROWS, len(setup.y)), "eps": EPS, "dtype": "float64", "custom": custom}
    where = f"custom parts: {', '.join(custom)}"
    if worst <= FINE:
        return Verdict("C5", name, "pass", f"backprop matches finite differences (max relative error {worst:.1e} "
                       f"over {coords} coordinates; {where})", evidence, "", SOURCE)
    status = "fail" if worst > WRONG else "warn"
    wrong = [k for k, v in errors.items() if v > FINE]
    if all(k in cut and k.startswith("input[") for k in wrong):  # only the inputs cut (a layer normalizing
        # its input under no_grad): training needs the parameters' gradients, which agree
        evidence["inputs_cut_from_the_graph"] = wrong
        return Verdict("C5", name, "pass", f"backprop matches finite differences on every parameter; the "
                       f"inputs {', '.join(wrong)} are cut from the graph in the forward ({where})", evidence, "",
                       SOURCE)
    if all(k in cut for k in wrong):  # no backward at all for them: the forward cut them from the graph
        evidence["cut_from_the_graph"] = wrong
        return Verdict("C5", name, status,
                       f"the loss changes with {', '.join(wrong[:5])} but backprop gives them no gradient: the "
                       f"forward cuts them from the graph ({where})", evidence,
                       "let the gradient through: look for torch.no_grad(), .detach(), .data or a round trip through "
                       "numpy in the forward; if the layer is meant to stay fixed, set its requires_grad to False",
                       SOURCE, fault="frozen-layer")
    culprit = (f"the backward of {', '.join(functions)}" if functions else
               f"the forward of {', '.join(modules + ([loss] if loss else []))}")
    fix = (f"fix {culprit}: its gradient disagrees with finite differences (check it alone with "
           "torch.autograd.gradcheck on float64 inputs); look for a wrong factor, a missing term, .detach(), "
           ".data, in-place changes or a round trip through numpy")
    return Verdict("C5", name, status,
                   f"backprop disagrees with finite differences: relative error {worst:.1e} in "
                   f"{next(iter(top))} (Rishit Dagli: > {WRONG:g} is wrong, around 1e-5 look again; {where})",
                   evidence, fix, SOURCE)


def custom_parts(setup: Setup) -> tuple[list[str], list[str], str | None]:
    """The custom autograd.Function classes in the graph of one forward (their backward nodes hold the
    Function class), the module classes from outside torch, the loss when it is not torch's."""
    model = copy.deepcopy(setup.model).eval()
    x = tuple(t[:2] for t in setup.x)
    found: dict[str, None] = {}
    with torch.enable_grad():
        out = main_output(model(*x))
    stack = [out.grad_fn] if isinstance(out, torch.Tensor) else []
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        cls = getattr(node, "_forward_cls", None)
        if cls is not None and not _from_torch(cls):
            found[cls.__qualname__] = None
        stack.extend(n for n, _ in node.next_functions)
    modules = list(dict.fromkeys(type(m).__qualname__ for m in setup.model.modules()
                                 if not _from_torch(type(m), TRUSTED_MODULES)))
    loss = None
    if setup.loss_fn is not None:
        owner = type(setup.loss_fn) if isinstance(setup.loss_fn, nn.Module) else setup.loss_fn
        if not _from_torch(owner):
            loss = f"loss {getattr(owner, '__qualname__', type(owner).__qualname__)}"
    return list(found), modules, loss


# Modules whose forward is torch operations only get autograd's exact gradients: the check is for a hand-written
# backward (an autograd.Function, checked wherever it comes from) and for a forward that leaves autograd
# (.detach(), numpy). nnrecipe's own models and the packages it builds TabM from (tabm, rtdl_num_embeddings) are
# such modules, tested where they are written; checked as custom parts they measured only the finite
# difference crossing the kinks of TabM's piecewise-linear embeddings (relative errors near 2e-4, a warning on
# healthy runs of 3 of the 14 tables of benchmarks/tabular.py, issue 19).
TRUSTED_MODULES = ("torch", "nnrecipe", "tabm", "rtdl_num_embeddings")


def _from_torch(obj: Any, packages: tuple[str, ...] = ("torch",)) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] in packages


def _compare(setup: Setup) -> tuple[dict[str, float], float, int, int, set[str]]:
    """Relative errors per tensor (parameters by name, inputs as 'input[k]') with the rounding noise of the
    finite difference taken off, the largest error without that, the kinks left out, the coordinates
    compared, and the tensors backprop gave no gradient at all (not in the loss's graph). Runs on a float64
    copy in eval mode (dropout off: the function must be fixed)."""
    model = copy.deepcopy(setup.model).double().eval()
    loss_fn = copy.deepcopy(setup.loss_fn)
    if isinstance(loss_fn, nn.Module):
        loss_fn = loss_fn.double()
    gen = torch.Generator().manual_seed(setup.seed)
    xs = tuple(t[:ROWS].detach().double().clone().requires_grad_() if torch.is_floating_point(t) else t[:ROWS]
               for t in setup.x)
    y = setup.y[:ROWS].double() if torch.is_floating_point(setup.y) else setup.y[:ROWS]
    with torch.no_grad():
        out = main_output(model(*xs))
    if not isinstance(out, torch.Tensor) or out.dtype != torch.float64:
        what = f"a {type(out).__name__}" if not isinstance(out, torch.Tensor) else f"{out.dtype} after .double()"
        raise TypeError(f"the model returns {what}; the check needs one float64 output tensor")
    weights = torch.randn(out.shape, generator=gen, dtype=torch.float64)  # without a loss: a random projection

    def f() -> torch.Tensor:
        out = main_output(model(*xs))
        return loss_fn(out, y) if loss_fn is not None else (out * weights).sum()

    tensors = {n: p for n, p in model.named_parameters() if p.requires_grad}
    tensors |= {f"input[{k}]": t for k, t in enumerate(xs) if t.requires_grad}
    with torch.enable_grad():
        grads = torch.autograd.grad(f(), list(tensors.values()), allow_unused=True)
    errors, raw, kinks, coords = {}, 0.0, 0, 0
    cut = {name for name, g in zip(tensors, grads) if g is None}
    with torch.no_grad():
        f0 = float(f())
        if float(f()) != f0:  # noise in the forward even in eval mode: differences would measure the noise
            raise RuntimeError("the forward gives a different loss on the same rows twice in eval mode")
        for (name, t), g in zip(tensors.items(), grads):
            g = torch.zeros_like(t) if g is None else g
            flat, gflat = t.view(-1), g.reshape(-1)
            k = min(PER_TENSOR // 2, flat.numel())
            picked = gflat.abs().topk(k).indices.tolist()
            rest = torch.randperm(flat.numel(), generator=gen)[:PER_TENSOR].tolist()
            picked += [i for i in rest if i not in picked][:PER_TENSOR - k]
            rows = []  # (backprop, finite difference, the disagreement above rounding noise)
            for i in picked:
                plus, minus = _nudge(flat, i, f)
                fwd, bwd = (plus - f0) / EPS, (f0 - minus) / EPS
                noise = 4 * 2.2e-16 * max(abs(plus), abs(minus), abs(f0)) / EPS  # the difference's rounding
                if abs(fwd - bwd) > KINK * (abs(fwd) + abs(bwd)) + 4 * noise:
                    kinks += 1
                    continue
                d = (plus - minus) / (2 * EPS)
                excess = max(abs(d - float(gflat[i])) - noise, 0.0)
                rows.append((float(gflat[i]), d, excess))
            if rows:
                coords += len(rows)
                diff = math.sqrt(sum(e * e for _, _, e in rows))
                size = math.sqrt(sum(d * d for _, d, _ in rows)) + math.sqrt(sum(a * a for a, _, _ in rows))
                errors[name] = diff / size if size > 0 else 0.0
                plain = math.sqrt(sum((a - d) ** 2 for a, d, _ in rows))
                raw = max(raw, plain / size if size > 0 else 0.0)
    return errors, raw, kinks, coords, cut


def _nudge(flat: torch.Tensor, i: int, f: Callable[[], torch.Tensor]) -> tuple[float, float]:
    """f at flat[i] + EPS and flat[i] - EPS; flat[i] is put back exactly."""
    old = flat[i].item()
    flat[i] = old + EPS
    plus = float(f())
    flat[i] = old - EPS
    minus = float(f())
    flat[i] = old
    return plus, minus
