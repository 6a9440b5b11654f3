from .load import read_table
from .schema import infer_columns, infer_task
from .split import split_indices
from .transforms import TablePreprocessor

__all__ = ["read_table", "infer_columns", "infer_task", "split_indices", "TablePreprocessor"]
