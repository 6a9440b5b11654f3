"""Random search (Bergstra & Bengio 2012; Rishit Dagli) that a study's workers cannot make differ: trial k's
draws depend on the seed, k and the parameter's name alone, not on which worker claims it or when."""

from __future__ import annotations

import zlib
from typing import Any

import optuna


class TrialSeededRandomSampler(optuna.samplers.RandomSampler):
    def __init__(self, seed: int):
        super().__init__(seed)
        self.seed = seed

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        # a RandomSampler of its own per draw, seeded from (seed, trial, parameter): a seeded sampler shared
        # by the workers' processes would repeat its draws in each of them
        seed = zlib.crc32(f"{self.seed}:{trial.number}:{param_name}".encode())
        return optuna.samplers.RandomSampler(seed).sample_independent(study, trial, param_name, param_distribution)
