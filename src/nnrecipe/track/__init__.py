"""Run folders and their record (R3-R5, R7, R8). The callback and recorders of the model's outputs live in
track.predictions, the exporters in track.export (imported on use: they pull in the training engine,
TensorBoard or MLflow)."""

from .diff import config_diff, flatten, single_change
from .journal import check_parent, git_record, write_journal
from .run import new_run_dir
from .runs import compare_runs, filter_runs, format_runs, list_runs, read_run, sort_runs

__all__ = ["check_parent", "compare_runs", "config_diff", "filter_runs", "flatten", "format_runs", "git_record",
           "list_runs", "new_run_dir", "read_run", "single_change", "sort_runs", "write_journal"]
