"""Training steps (T2): the default supervised step and the ones the recipe adds (T12 distillation,
T13 adversarial training), and the batch contract they all read."""

from .adversarial import Adversarial, robustness
from .batch import Batch, as_batch, call_model, main_output, to_device
from .distill import Distillation
from .step import Built, Reconstruction, Step, bind_step, check_loss_fn

__all__ = ["Adversarial", "Batch", "Built", "Distillation", "Reconstruction", "Step", "as_batch", "bind_step", "check_loss_fn",
           "call_model", "main_output", "robustness", "to_device"]
