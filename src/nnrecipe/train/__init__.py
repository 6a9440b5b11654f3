from .callbacks import Callback, EarlyStopping, ProgressBar
from .trainer import Trainer, for_trainer

__all__ = ["Callback", "EarlyStopping", "ProgressBar", "Trainer", "for_trainer"]
