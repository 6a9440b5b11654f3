"""nnrecipe executes the recipe for training a neural network, and verifies it."""

from .checks import Verdict, check_init_loss, check_overfit_batch
from .checks.doctor import Diagnosis, doctor
from .config import DataConfig, ModelConfig, TrainConfig
from .errors import CheckpointError, ConfigError, DataError, NNRecipeError, TrainingError
from .repro import seed_everything
from .steps import Adversarial, Distillation, Reconstruction, Step
from .train import Callback, EarlyStopping, ProgressBar, Trainer

__version__ = "0.1.0"

# pandas, pyarrow and scikit-learn load on first use of the table recipe, so `import nnrecipe` stays light
_LAZY = {"TableRun": "recipes", "doctor_table": "recipes", "predict_table": "recipes", "train_table": "recipes",
         "train_images": "recipes.images", "predict_images": "recipes.images",
         "save_backbone": "recipes.transfer", "embed_images": "recipes.transfer", "cut": "models.transfer",
         "Audit": "data.audit", "audit": "data.audit", "clean": "data.audit", "tune_table": "tune", "ablate": "tune",
         "prune_run": "recipes.prune", "batch_sizes_table": "recipes.tabular",
         "export_onnx": "recipes.onnx", "onnx_inputs": "recipes.onnx"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'nnrecipe' has no attribute '{name}'")

__all__ = [
    "Adversarial", "Audit", "Callback", "CheckpointError", "ConfigError", "DataConfig", "DataError",
    "Diagnosis", "Distillation", "EarlyStopping", "ModelConfig", "NNRecipeError", "ProgressBar",
    "Reconstruction", "Step", "TableRun", "TrainConfig", "Trainer", "TrainingError", "Verdict", "ablate",
    "audit", "batch_sizes_table", "check_init_loss", "check_overfit_batch", "clean", "cut", "doctor",
    "doctor_table", "embed_images", "export_onnx", "onnx_inputs", "predict_images", "predict_table", "prune_run",
    "save_backbone", "seed_everything", "train_images", "train_table", "tune_table",
]
