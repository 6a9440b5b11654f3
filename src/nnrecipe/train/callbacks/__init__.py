from .base import Callback
from .early_stopping import EarlyStopping
from .progress import ProgressBar

__all__ = ["Callback", "EarlyStopping", "ProgressBar"]
