"""The recipe as one pipeline (pipeline.py) and a thin recipe per kind of data (tabular.py); T14
cross-fitting (cross_fit.py) and the R2 refit live here, above the engine."""

from .pipeline import Options, Prepared, Recipe, Run, headline_metric, run
from .tabular import TableRecipe, TableRun, doctor_table, predict_table, train_table

__all__ = ["Options", "Prepared", "Recipe", "Run", "TableRecipe", "TableRun", "doctor_table", "headline_metric",
           "predict_table", "run", "train_table"]
