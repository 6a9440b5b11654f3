"""Training steps (T2): the default supervised step and the ones the recipe adds, and the batch contract
they all read."""

from .batch import Batch, as_batch, call_model, main_output, to_device
from .step import Reconstruction, Step, bind_step

__all__ = ["Batch", "Reconstruction", "Step", "as_batch", "bind_step", "call_model", "main_output", "to_device"]
