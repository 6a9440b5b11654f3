"""R1-R3: hyperparameter search with optuna (random search by default, many workers on one storage, the
best retrained on train+validation) and one-variable-at-a-time ablations. Optuna is imported when a
study runs, not with nnrecipe."""

from .ablate import AblationResult, ablate
from .objective import PruningCallback
from .refit import refit, refit_best
from .space import Param, SearchSpace, default_space, read_space
from .study import TuneResult, make_pruner, make_sampler, make_storage, tune_table

__all__ = ["AblationResult", "Param", "PruningCallback", "SearchSpace", "TuneResult", "ablate", "default_space",
           "make_pruner", "make_sampler", "make_storage", "read_space", "refit", "refit_best", "tune_table"]
