"""nnrecipe executes the recipe for training a neural network, and verifies it."""

from .checks import Verdict, check_init_loss, check_overfit_batch
from .config import DataConfig, ModelConfig, TrainConfig
from .errors import CheckpointError, ConfigError, DataError, NNRecipeError, TrainingError
from .recipe import TableRun, predict_table, train_table
from .repro import seed_everything
from .train import Callback, EarlyStopping, ProgressBar, Trainer

__version__ = "0.1.0"

__all__ = [
    "Callback", "CheckpointError", "ConfigError", "DataConfig", "DataError", "EarlyStopping", "ModelConfig",
    "NNRecipeError", "ProgressBar", "TableRun", "TrainConfig", "Trainer", "TrainingError", "Verdict",
    "check_init_loss", "check_overfit_batch", "predict_table", "seed_everything", "train_table",
]
