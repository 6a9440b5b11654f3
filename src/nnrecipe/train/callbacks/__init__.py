from .base import Callback
from .early_stopping import EarlyStopping
from .progress import ProgressBar
from .watch import PredictionWatch

__all__ = ["Callback", "EarlyStopping", "PredictionWatch", "ProgressBar"]
