"""`python -m nnrecipe.tune.worker JOB INDEX`: one worker process of a study that tune_table started."""

from __future__ import annotations

import sys

from .study import work_from_file

if __name__ == "__main__":
    work_from_file(sys.argv[1], int(sys.argv[2]))
