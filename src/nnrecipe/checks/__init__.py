from .init_loss import check_init_loss
from .overfit_batch import check_overfit_batch
from .verdict import Diagnosis, Verdict

__all__ = ["Diagnosis", "Verdict", "check_init_loss", "check_overfit_batch"]
