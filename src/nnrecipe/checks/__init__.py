from .init_loss import check_init_loss
from .overfit_batch import check_overfit_batch
from .simple_models import SimpleModels, check_simple_models, fit_simple_models
from .verdict import Diagnosis, Verdict

__all__ = ["Diagnosis", "SimpleModels", "Verdict", "check_init_loss", "check_overfit_batch", "check_simple_models",
           "fit_simple_models"]
