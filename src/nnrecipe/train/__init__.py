from .callbacks import Callback, EarlyStopping, ProgressBar
from .trainer import Trainer

__all__ = ["Callback", "EarlyStopping", "ProgressBar", "Trainer"]
