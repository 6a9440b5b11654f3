from .base import Callback
from .early_stopping import EarlyStopping
from .progress import ProgressBar
from .unfreeze import GradualUnfreezing
from .watch import PredictionWatch

__all__ = ["Callback", "EarlyStopping", "GradualUnfreezing", "PredictionWatch", "ProgressBar"]
