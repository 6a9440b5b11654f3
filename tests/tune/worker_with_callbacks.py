"""A worker process for the tune tests: nnrecipe's own worker (`python -m nnrecipe.tune.worker JOB INDEX`),
with the tests' WaitForWorkers callback in its trials, built here from the job's study and storage (a job
file carries no code, so the callbacks a study is given run in its own process only)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests folder, for tune.scripted

from nnrecipe.io import read_json  # noqa: E402
from nnrecipe.tune.study import work_from_file  # noqa: E402
from tune.scripted import WaitForWorkers  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    job = read_json(sys.argv[1])
    work_from_file(sys.argv[1], int(sys.argv[2]), callbacks=(WaitForWorkers(job["url"], job["name"]),))
