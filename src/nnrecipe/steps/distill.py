"""T12, knowledge distillation: a student trained on a frozen teacher's softened outputs and the labels
(Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network").

The loss is `alpha * hard + (1 - alpha) * T^2 * soft`: `hard` the task's own loss against the labels,
`soft` the divergence between the teacher's and the student's outputs both softened at temperature T,
scaled by T^2 because the soft targets' gradients scale as 1/T^2 (Hinton et al., section 2: so the two
terms keep their relative weight when T changes). Hinton et al. found a considerably lower weight on the
hard term best; Keras's Distiller example uses alpha 0.1 too. Softening by the task's output activation:
- softmax (classes): KL(softmax(t/T) || softmax(s/T));
- sigmoid (two classes as one logit, or several labels): the binary cross-entropy between sigmoid(t/T) and
  sigmoid(s/T), less the teacher's own entropy (a KL, 0 when they agree);
- none (regression): the squared difference with the teacher's prediction (Hinton's high-temperature limit:
  matching logits), T unused.
The teacher runs under no_grad, in eval mode, unwrapped from DistributedDataParallel, on the student's
device, on the same batch the student sees (augmented inputs included: the teacher labels exactly the
image the student is shown). A teacher made of members (a T14 ensemble) gives its averaged prediction.
Validation and the checks' losses stay the plain task loss (Step.compute_loss)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .batch import Batch, call_model, main_output
from .step import Built, LossFn, Step, per_member

SOFTENINGS = ("softmax", "sigmoid", "none")


def softening_of(loss_fn: Any) -> str:
    """How the task's outputs are softened, from its loss: softmax for a cross-entropy, sigmoid for a binary
    cross-entropy on logits, none (regression) for the rest."""
    if isinstance(loss_fn, nn.CrossEntropyLoss | nn.NLLLoss):
        return "softmax"
    if isinstance(loss_fn, nn.BCEWithLogitsLoss):
        return "sigmoid"
    return "none"


def soft_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float, softening: str) -> torch.Tensor:
    """The mean per-row divergence of the student's outputs from the teacher's, both softened at
    `temperature` (see the module's docstring), times T^2; in float32."""
    s, t = student.float(), teacher.float()
    if softening == "none":
        return F.mse_loss(s, t)
    temp = float(temperature)
    if softening == "softmax":
        log_p = F.log_softmax(s / temp, dim=-1)
        q = F.log_softmax(t / temp, dim=-1)
        per_row = F.kl_div(log_p, q, log_target=True, reduction="none").sum(-1)
    else:  # sigmoid: each output a binary distribution
        q = torch.sigmoid(t / temp)
        per_row = (F.binary_cross_entropy_with_logits(s / temp, q, reduction="none")
                   - F.binary_cross_entropy_with_logits(t / temp, q, reduction="none"))
        per_row = per_row.reshape(len(per_row), -1).sum(-1)
    return per_row.mean() * temp * temp


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or DataParallel) wrapper: a frozen teacher needs no
    gradient synchronisation."""
    return getattr(model, "module", model) if isinstance(
        model, nn.parallel.DistributedDataParallel | nn.DataParallel) else model


class TeacherCache:
    """The teacher's outputs on rows known in advance (a table's training rows), found again by the rows'
    contents: a frozen teacher on rows that do not change need run once, not once an epoch. The key is a
    random projection of the row's values; the row found is compared whole, so a batch holding any row not
    cached (an augmented image, say) is answered by the teacher itself."""

    def __init__(self, inputs: tuple[torch.Tensor, ...], outputs: torch.Tensor, seed: int = 0):
        self.rows = _flat(inputs)  # (N, D) float32: codes and term ids are exact below 2^24
        self.proj = torch.randn(self.rows.shape[1], generator=torch.Generator().manual_seed(seed),
                                dtype=torch.float64)
        self.keys, self.order = (self.rows.double() @ self.proj).sort()
        self.outputs = outputs

    def lookup(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
        """The cached outputs of these rows, in their order; None when one of them is not cached."""
        flat = _flat(inputs)
        if flat.shape[1] != self.rows.shape[1]:
            return None
        if self.rows.device != flat.device:  # moved once, beside the batches
            self.rows, self.proj, self.keys, self.order, self.outputs = (
                t.to(flat.device) for t in (self.rows, self.proj, self.keys, self.order, self.outputs))
        pos = torch.searchsorted(self.keys, flat.double() @ self.proj).clamp_(max=len(self.keys) - 1)
        found = self.order[pos]
        return self.outputs[found] if torch.equal(self.rows[found], flat) else None


def _flat(inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.cat([t.reshape(len(t), -1).float() for t in inputs], dim=1)


class Distillation(Built):
    """The student's loss: alpha * the task's loss + (1 - alpha) * T^2 * the softened divergence from a
    frozen `teacher` (Hinton et al. 2015). `teacher`: any module taking the student's inputs (its
    parameters are frozen here, in place: it is the caller's to share, not to train). `softening`:
    softmax | sigmoid | none; default from the loss (softening_of). `base`: the step whose batches it
    trains on (an image run's augmentation: the teacher labels the augmented images)."""

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, alpha: float = 0.1,
                 loss_fn: LossFn | None = None, softening: str | None = None, base: Step | None = None):
        super().__init__(base, loss_fn)
        if not (temperature > 0):
            raise ConfigError(f"distillation temperature={temperature} is not allowed; choose a temperature > 0 "
                              "(Hinton et al.: 2-20; 1 leaves the teacher's outputs as they are)")
        if not 0 <= alpha <= 1:
            raise ConfigError(f"distillation alpha={alpha} is not allowed; choose the weight of the labels' loss "
                              "in [0, 1] (0: the teacher alone, 1: the labels alone)")
        if softening is not None and softening not in SOFTENINGS:
            raise ConfigError(f"softening={softening!r} is not allowed; choose one of {', '.join(SOFTENINGS)}")
        self.teacher = unwrap(teacher).eval().requires_grad_(False)
        self.temperature, self.alpha, self.softening = float(temperature), float(alpha), softening
        self.cache: TeacherCache | None = None

    def prime(self, *splits: tuple[torch.Tensor, ...], chunk: int = 1024) -> None:
        """Runs the teacher once on the rows of `splits` (tuples of positional inputs: a table's training
        and validation rows) and keeps its outputs (TeacherCache): batches of those rows, as they are, are
        answered from it. Only for a step whose base leaves the batches as they are."""
        if self.base is not None and type(self.base).transform is not Step.transform:
            return  # transformed batches (augmented images) are new rows every time
        inputs = tuple(torch.cat(parts) for parts in zip(*splits))
        device = next(self.teacher.parameters(), torch.empty(0)).device
        outputs = [self.teacher_outputs(Batch(tuple(t[i:i + chunk].to(device) for t in inputs)), device).cpu()
                   for i in range(0, len(inputs[0]), chunk)]
        self.cache = TeacherCache(inputs, torch.cat(outputs))

    def teacher_outputs(self, batch: Batch, device: torch.device) -> torch.Tensor:
        """The teacher's main output for the batch, without gradient, in eval mode, on `device`."""
        cache = getattr(self, "cache", None)
        if cache is not None and isinstance(batch.inputs, tuple):
            found = cache.lookup(batch.inputs)
            if found is not None:
                return found.to(device)
        teacher = self.teacher
        if next(teacher.parameters(), torch.empty(0)).device != device:
            teacher.to(device)
        teacher.eval()  # a caller's .train() on a model that holds it must not wake its dropout
        with torch.no_grad():
            return main_output(call_model(teacher, batch.inputs)).detach().float()

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, Any]:
        batch = self.transform(batch)
        device = next(model.parameters()).device
        teacher = self.teacher_outputs(batch, device)
        student, k, outputs = self.trained(model, batch)  # a TabM-like student: each member, as Step trains them
        teacher, target = per_member(teacher, k), per_member(self.target(batch), k)
        weight = per_member(None if batch.weight is None else batch.weight.reshape(-1), k)
        if student.shape != teacher.shape:
            raise ConfigError(f"the teacher's outputs have shape {tuple(teacher.shape)}, the student's "
                              f"{tuple(student.shape)}: distil between models of one task with the same classes")
        softening = self.softening or softening_of(self.loss_fn)
        hard = self.compute_loss(student, target, weight) if self.alpha > 0 else student.new_zeros(())
        soft = soft_loss(student, teacher, self.temperature, softening)
        return self.alpha * hard + (1 - self.alpha) * soft, outputs
