"""T13, adversarial training and the robustness it buys, measured.

Two perturbations of a batch, each the worst (to first order, or by a few ascent steps) within a small
ball around the clean batch:
- FGM (Miyato, Dai & Goodfellow 2017, "Adversarial Training Methods for Semi-Supervised Text
  Classification"): one step of size epsilon along the loss gradient, L2-normalised per row. It applies to
  continuous inputs and to the outputs of the model's embedding layers (nn.Embedding, nn.EmbeddingBag:
  embedded categories, text bags, token embeddings), where a perturbation of a discrete input has a meaning.
- PGD (Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks"): `steps` signed
  gradient steps of `step_size` inside the L-infinity ball of radius epsilon, from a uniform random start
  in the ball; the continuous inputs only. FGSM (Goodfellow et al. 2015) is its one step of size epsilon
  from the clean point.
Epsilon is in the model's input units: a standardised column's standard deviations for tables, the
normalised pixel scale for images (8/255 of the pixel range is 8/255/std there).

`Adversarial` trains on `(1 - adv_weight) * clean loss + adv_weight * adversarial loss` (Goodfellow et al.
2015's mixed objective, 0.5 each; Madry's PGD training is adv_weight 1). `robustness` measures a trained
model's metrics on the test rows under FGSM and PGD at the same epsilon, next to the clean ones. The
training perturbation is found in training mode (dropout on), as Madry et al. do; the evaluation's in eval
mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .batch import Batch, call_model, main_output
from .distill import unwrap
from .step import Built, LossFn, Step

METHODS = ("fgm", "pgd")


def check_attack(method: str, epsilon: float, steps: int, step_size: float | None) -> None:
    """Refuses settings no attack can run with, naming the argument."""
    if method not in METHODS:
        raise ConfigError(f"adversarial method {method!r} is not known; choose one of {', '.join(METHODS)}")
    if not (epsilon > 0):
        raise ConfigError(f"adversarial epsilon={epsilon} is not allowed; choose a radius > 0 in the model's input "
                          "units (standardised columns: 0.05-0.3)")
    if steps < 1:
        raise ConfigError(f"adversarial steps={steps} is not allowed; choose 1 or more (Madry et al.: 7-40)")
    if step_size is not None and not (step_size > 0):
        raise ConfigError(f"adversarial step_size={step_size} is not allowed; choose a size > 0, or none for "
                          "2.5 * epsilon / steps (Madry et al.)")


def continuous(inputs: Sequence[torch.Tensor], which: Sequence[int] | None) -> list[int]:
    """The positions of the inputs an attack perturbs: `which`, else every floating-point input."""
    found = [i for i, x in enumerate(inputs) if torch.is_floating_point(x)] if which is None else list(which)
    bad = [i for i in found if not (0 <= i < len(inputs) and torch.is_floating_point(inputs[i]))]
    if bad:
        raise ConfigError(f"input position(s) {bad} cannot be perturbed: the batch has {len(inputs)} inputs, and "
                          "only floating-point ones have a gradient; give positions of continuous inputs")
    return found


@contextmanager
def embedding_perturbation(model: nn.Module, deltas: dict[nn.Module, torch.Tensor] | None,
                           outputs: dict[nn.Module, torch.Tensor] | None) -> Iterator[None]:
    """Hooks on the model's embedding layers for the duration: each layer's output is kept in `outputs`
    (made to require a gradient) and shifted by its entry in `deltas`."""
    def hook(module: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
        if deltas is not None and module in deltas:
            out = out + deltas[module]
        if outputs is not None and torch.is_floating_point(out):
            if not out.requires_grad:  # a frozen embedding: its output becomes a leaf to differentiate by
                out = out.detach().requires_grad_(True)
            outputs[module] = out
        return out

    layers = [m for m in model.modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag)]
    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _l2_unit(g: torch.Tensor) -> torch.Tensor:
    """`g` divided by each row's L2 norm (FGM's direction, Miyato et al. eq. 2, per example)."""
    norms = g.reshape(len(g), -1).norm(dim=1).clamp_min(1e-12)
    return g / norms.reshape(-1, *([1] * (g.ndim - 1)))


def perturb(model: nn.Module, batch: Batch, loss_of: Callable[[Any, Batch], torch.Tensor], method: str,
            epsilon: float, steps: int = 7, step_size: float | None = None, random_start: bool = True,
            which: Sequence[int] | None = None, embeddings: bool = False,
            generator: torch.Generator | None = None) -> tuple[Batch, dict[nn.Module, torch.Tensor]]:
    """The adversarial batch (continuous inputs moved within the ball) and, with `embeddings` (FGM only),
    the shifts of the embedding layers' outputs. `loss_of(outputs, batch)` is the loss to increase. The
    model's parameters get no gradient from the search (their .grad is left as it was)."""
    inputs = tuple(batch.inputs)
    idx = continuous(inputs, which)
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.grad for p in params]
    try:
        if method == "fgm":
            x = [inputs[i].detach().clone().requires_grad_(True) for i in idx]
            shifted = _with(inputs, idx, x)
            kept: dict[nn.Module, torch.Tensor] = {}
            with embedding_perturbation(model, None, kept if embeddings else None):
                loss = loss_of(call_model(model, shifted), Batch(shifted, batch.target, batch.weight))
            wrt = [*x, *kept.values()]
            grads = torch.autograd.grad(loss, wrt, allow_unused=True) if wrt else []
            new = [xi.detach() + epsilon * _l2_unit(g) if g is not None else xi.detach()
                   for xi, g in zip(x, grads[:len(x)])]
            deltas = {m: (epsilon * _l2_unit(g)).detach() for m, g in zip(kept, grads[len(x):]) if g is not None}
            return Batch(_with(inputs, idx, new), batch.target, batch.weight), deltas
        size = 2.5 * epsilon / steps if step_size is None else step_size  # Madry et al.'s 2.5 eps / steps
        clean = [inputs[i].detach() for i in idx]
        x = [c + (torch.empty_like(c).uniform_(-epsilon, epsilon, generator=generator) if random_start else 0)
             for c in clean]
        for _ in range(steps):
            x = [xi.detach().requires_grad_(True) for xi in x]
            shifted = _with(inputs, idx, x)
            loss = loss_of(call_model(model, shifted), Batch(shifted, batch.target, batch.weight))
            grads = torch.autograd.grad(loss, x, allow_unused=True)
            x = [torch.min(torch.max(xi.detach() + size * (g.sign() if g is not None else 0), c - epsilon), c + epsilon)
                 for xi, g, c in zip(x, grads, clean)]
        return Batch(_with(inputs, idx, x), batch.target, batch.weight), {}
    finally:
        for p, g in zip(params, saved):
            p.grad = g


def _with(inputs: tuple[torch.Tensor, ...], idx: Sequence[int], new: Sequence[torch.Tensor]
          ) -> tuple[torch.Tensor, ...]:
    out = list(inputs)
    for i, x in zip(idx, new):
        out[i] = x
    return tuple(out)


class Adversarial(Built):
    """Adversarial training (see the module's docstring): each batch's loss is the clean loss mixed with
    the loss on its FGM or PGD perturbation. `which`: the positions of the continuous inputs to perturb
    (default: the floating-point ones); `embeddings`: FGM also shifts the embedding layers' outputs
    (default: on for FGM). `base`: the step whose batches it trains on (an image run's augmentation: the
    augmented images are perturbed). Positional inputs only (a dict batch: subclass, override `loss`)."""

    def __init__(self, method: str = "fgm", epsilon: float = 0.1, steps: int = 7, step_size: float | None = None,
                 random_start: bool = True, adv_weight: float = 0.5, which: Sequence[int] | None = None,
                 embeddings: bool | None = None, loss_fn: LossFn | None = None, base: Step | None = None):
        super().__init__(base, loss_fn)
        check_attack(method, epsilon, steps, step_size)
        if not 0 < adv_weight <= 1:
            raise ConfigError(f"adv_weight={adv_weight} is not allowed; choose the adversarial loss's weight in (0, 1] "
                              "(Goodfellow et al.: 0.5; Madry et al.: 1)")
        if embeddings and method != "fgm":
            raise ConfigError("embeddings=True goes with method='fgm' (Miyato et al.); PGD perturbs continuous inputs")
        self.method, self.epsilon, self.steps, self.step_size = method, float(epsilon), int(steps), step_size
        self.random_start, self.adv_weight = random_start, float(adv_weight)
        self.which = None if which is None else tuple(which)
        self.embeddings = method == "fgm" if embeddings is None else bool(embeddings)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, Any]:
        if isinstance(batch.inputs, dict):
            raise ConfigError("adversarial training perturbs positional inputs; give (inputs..., target) batches, "
                              "or subclass nnrecipe.steps.Adversarial and override loss for dict batches")
        batch = self.transform(batch)
        clean, outputs = self.supervised(model, batch)  # TabM's members included

        def loss_of(out: Any, b: Batch) -> torch.Tensor:
            return self.compute_loss(main_output(out), self.target(b), b.weight)

        # the search takes gradients with respect to the inputs, outside a backward pass that DDP syncs: it runs
        # on the module inside the wrapper (T10)
        moved, deltas = perturb(unwrap(model), batch, loss_of, self.method, self.epsilon, self.steps, self.step_size,
                                self.random_start, self.which, self.embeddings)
        with embedding_perturbation(model, deltas, None):
            adversarial, _ = self.supervised(model, moved)
        return (1 - self.adv_weight) * clean + self.adv_weight * adversarial, outputs


def robustness(model: nn.Module, batches: Any, score: Callable[[torch.Tensor, torch.Tensor], dict[str, float]],
               loss_fn: LossFn, epsilon: float, steps: int = 10, step_size: float | None = None,
               which: Sequence[int] | None = None, seed: int = 0) -> dict[str, Any]:
    """The model's metrics on `batches` (an iterable of (inputs..., target)) clean, under FGSM (one signed
    step of epsilon) and under PGD (`steps` steps from a seeded random start), in eval mode: what an
    attacker within the L-infinity ball of radius `epsilon` on the continuous inputs can do."""
    was = model.training
    model.eval()
    step = Step(loss_fn)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    outs: dict[str, list[torch.Tensor]] = {"clean": [], "fgsm": [], "pgd": []}
    targets: list[torch.Tensor] = []

    def loss_of(out: Any, b: Batch) -> torch.Tensor:
        return step.compute_loss(main_output(out), b.target, None)

    try:
        for raw in batches:
            batch = Batch(tuple(raw[:-1]), raw[-1])
            targets.append(batch.target)
            with torch.no_grad():
                outs["clean"].append(main_output(call_model(model, batch.inputs)).float())
            for name, kw in (("fgsm", {"steps": 1, "step_size": epsilon, "random_start": False}),
                             ("pgd", {"steps": steps, "step_size": step_size, "random_start": True})):
                moved, _ = perturb(model, batch, loss_of, "pgd", epsilon, which=which, generator=generator, **kw)
                with torch.no_grad():
                    outs[name].append(main_output(call_model(model, moved.inputs)).float())
    finally:
        model.train(was)
    target = torch.cat(targets)
    result: dict[str, Any] = {"epsilon": epsilon, "pgd_steps": steps,
                              "pgd_step_size": 2.5 * epsilon / steps if step_size is None else step_size}
    for name, chunks in outs.items():
        result[name] = score(torch.cat(chunks), target)
    return result
