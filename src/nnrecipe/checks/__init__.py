from .init_loss import check_init_loss
from .overfit_batch import check_overfit_batch
from .verdict import Verdict

__all__ = ["Verdict", "check_init_loss", "check_overfit_batch"]
