"""The techniques a run adds to its training, and what they leave in results.json:
- T12 distillation (--teacher RUN): the student's step reads the teacher run's model (steps/distill.py);
  the run also trains the same model alone, so the report sets the student beside the teacher and beside
  itself without the teacher.
- T13 adversarial training (--adversarial fgm|pgd, steps/adversarial.py) and the robustness it buys: the
  test metrics under FGSM and PGD at --adv-epsilon (also without adversarial training, --robustness).
Both build on the kind of data's own step (an image run's augmentation), as its `base`.
- T15 surrogate (--surrogate): a simulator's table is fitted whole, trained on every row to fit it, and
  measured on a second sample of the simulator (--surrogate-test) or, without one, on the rows it fitted."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import DataConfig, ModelConfig, TrainConfig, unread
from ..errors import ConfigError
from ..io import read_json_or_none

log = logging.getLogger(__name__)

# the continuous input an attack perturbs: a table's standardised columns, an image run's pixels (each
# recipe's inputs start with it; codes, term ids and text weights follow in a table's)
CONTINUOUS = (0,)
# data settings that change nothing of what the model reads (the teacher may have trained with others), and
# the measurements an autoencoder's record holds (M13: a cached one is the same encoder)
MEASURED = ("cached", "seconds")
TEACHER_FREE = ("augment", *MEASURED)


def technique_step(prepared: Any, artifact: dict[str, Any], dcfg: DataConfig, tcfg: TrainConfig) -> Any:
    """The run's training step: the kind of data's own (prepared.step), or a Distillation or an
    Adversarial built on it when --teacher or --adversarial asks; refuses a teacher that reads the data
    differently (its preprocessing, classes or split), and a technique's setting given with it off."""
    check_technique_flags(tcfg)
    base = prepared.step
    if tcfg.teacher is not None:
        from ..steps import Distillation

        teacher = load_teacher(tcfg.teacher, prepared, artifact, dcfg, tcfg.seed)
        step = Distillation(teacher, tcfg.distill_temperature, tcfg.distill_alpha, base=base)
        # the rows every training of the run draws from (an R2 pair and a T14 ensemble take the validation
        # rows too): the teacher answers each of them once
        step.prime(prepared.inputs["train"], prepared.inputs["val"])
        return step
    if tcfg.adversarial != "off":
        from ..steps import Adversarial

        if tcfg.adversarial == "pgd" and not _width(prepared):
            raise ConfigError("--adversarial pgd perturbs continuous inputs, and this data has none (no numeric "
                              "column): use --adversarial fgm, which perturbs the embeddings of categories and text")
        return Adversarial(tcfg.adversarial, tcfg.adv_epsilon, tcfg.adv_steps, tcfg.adv_step_size, which=CONTINUOUS,
                           base=base)
    return base


TECHNIQUE_SETTINGS = ("distill_temperature", "distill_alpha", "adv_epsilon", "adv_steps", "adv_step_size")


def check_technique_flags(tcfg: TrainConfig) -> None:
    """A technique's setting given while the technique is off would be accepted and ignored: refused, named
    (when the run starts: a --config file may set one that a flag then switches off)."""
    default = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    off = [(name, why) for name in TECHNIQUE_SETTINGS
           if (why := unread(name, ModelConfig(), tcfg)) is not None and getattr(tcfg, name) != default[name]]
    if off:
        raise ConfigError("; ".join(f"--{n.replace('_', '-')} is read with {why} only" for n, why in off)
                          + ": add it, or leave the setting out")


def _width(prepared: Any) -> int:
    x = prepared.inputs["train"][CONTINUOUS[0]]
    return int(x[0].numel()) if len(x) and torch.is_floating_point(x) else 0


def load_teacher(run: str, prepared: Any, artifact: dict[str, Any], dcfg: DataConfig, seed: int) -> nn.Module:
    """The teacher run's model, checked to read this run's inputs as this run does: the same task, target
    and classes, the same preprocessing (fitted on the same training rows), and the same split (its data
    settings and seed), so that no test row of this run was a training row of the teacher."""
    from ..models.artifact import load_model

    where = f"--teacher {run}"
    model, meta = load_model(run)
    config = read_json_or_none(Path(run) / "config.json") or {}
    problems = []
    for key, mine in (("task", prepared.task.name), ("target", prepared.target), ("classes", prepared.classes),
                      ("target_scale", prepared.task.target_scale)):
        if comparable(meta.get(key), TEACHER_FREE) != comparable(mine, TEACHER_FREE):
            problems.append(f"its {key} is {meta.get(key)!r}, this run's {mine!r}")
    for key, mine in artifact.items():
        if comparable(meta.get(key), TEACHER_FREE) != comparable(mine, TEACHER_FREE):
            problems.append(f"its '{key}' (the data as the model reads it) differs from this run's")
    theirs, ours = comparable(config.get("data"), TEACHER_FREE), comparable(dataclasses.asdict(dcfg), TEACHER_FREE)
    if theirs != ours or (config.get("train") or {}).get("seed") != seed:
        problems.append("its data settings or --seed differ from this run's (the split must be the same: a "
                        "teacher must not have trained on this run's test rows)")
    if problems:
        raise ConfigError(f"{where}: the teacher does not read this run's data as this run does: "
                          f"{'; '.join(problems)}; train the student on the same table with the teacher's data flags "
                          "and --seed (its config.json lists them)")
    log.info("T12: distilling from %s (%s)", run, meta.get("model"))
    return model


def comparable(value: Any, without: tuple[str, ...] = MEASURED) -> Any:
    """JSON's view of a record (tuples as lists), without the keys `without` at any depth: what two runs'
    records are compared on (a teacher's, T12; a pruned run's data, M14)."""
    def free(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: free(x) for k, x in v.items() if k not in without}
        return [free(x) for x in v] if isinstance(v, list) else v

    return free(json.loads(json.dumps(value, default=str)))


def train_alone(fit_of: Any, prepared: Any, base: Any, run_dir: Path, test_of: Any) -> dict[str, Any]:
    """T12's control: the same model, seed and settings trained without the teacher (in run_dir/alone,
    resumable there), its test metrics and seconds. `fit_of(prepared, run_dir)` builds the run's Fit;
    `test_of(trainer, model)` scores a model on the test rows."""
    started = time.perf_counter()
    alone_dir = run_dir / "alone"
    alone_dir.mkdir(exist_ok=True)
    fit = fit_of(dataclasses.replace(prepared, step=base), alone_dir)
    final, *_ = fit.train()
    return {"test": test_of(fit.trainer, final), "seconds": round(time.perf_counter() - started, 2)}


def distillation_record(tcfg: TrainConfig, student: dict[str, float], alone: dict[str, Any]) -> dict[str, Any]:
    """results.json's "distillation": the teacher's test metrics (from its own results.json: the same test
    rows), the student's and the same model's trained alone."""
    teacher = (read_json_or_none(Path(str(tcfg.teacher)) / "results.json") or {}).get("test") or {}
    return {"teacher_run": str(Path(str(tcfg.teacher)).resolve()), "temperature": tcfg.distill_temperature,
            "alpha": tcfg.distill_alpha, "teacher": teacher, "student": student, "alone": alone["test"],
            "alone_seconds": alone["seconds"]}


def robustness_record(trainer: Any, model: nn.Module, split: tuple[torch.Tensor, ...], tcfg: TrainConfig,
                      loss_fn: nn.Module) -> dict[str, Any] | None:
    """results.json's "robustness": the test metrics clean and under FGSM and PGD (10 steps) at
    --adv-epsilon on the continuous inputs; None when the data has none."""
    from ..steps import robustness

    if not split[CONTINUOUS[0]][0].numel():
        log.info("T13: no continuous input to attack; robustness not measured")
        return None
    started = time.perf_counter()
    batches = [tuple(t[i:i + 512].to(trainer.device) for t in split) for i in range(0, len(split[-1]), 512)]
    result = robustness(model.to(trainer.device), batches, trainer.score, loss_fn.to(trainer.device),
                        tcfg.adv_epsilon, which=CONTINUOUS, seed=tcfg.seed)
    result["method_trained"] = tcfg.adversarial
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def surrogate_settings(tcfg: TrainConfig, prepared: Any) -> tuple[TrainConfig, Any]:
    """T15: the training settings of a surrogate (the training loss picks the epoch and stops the run: no
    row is held out), and the prepared data whose test split is the second sample, or the training rows
    themselves when none was given. Refuses the settings that hold rows out or watch them."""
    given = [flag for flag, on in (("--cv-folds", tcfg.cv_folds > 1), ("--metric", tcfg.metric is not None),
                                   ("--refit on", tcfg.refit == "on"),
                                   (f"--monitor {tcfg.monitor}", tcfg.monitor not in ("val_loss", "train_loss")),
                                   (f"--mode {tcfg.mode}", tcfg.mode != "auto")) if on]
    if given:
        raise ConfigError(f"--surrogate trains on every row and watches none, and {', '.join(given)} hold rows out or "
                          "follow them: leave them out (the surrogate's error is measured on --surrogate-test)")
    tcfg = dataclasses.replace(tcfg, monitor="train_loss", mode="auto", refit="off")
    if not len(prepared.targets["test"]):  # no second sample: the error reached on the rows fitted
        prepared = prepared.tested_on("train")
    return tcfg, prepared


def surrogate_measured_on(dcfg: DataConfig, prepared: Any) -> str:
    """Where a surrogate's test metrics come from, in words."""
    n = len(prepared.targets["test"])
    return (f"the {n} rows of the second sample {dcfg.surrogate_test}" if dcfg.surrogate_test is not None else
            f"the {n} training rows themselves (no second sample given: --surrogate-test FILE measures the error "
            "between them)")


def surrogate_verdict(history: list[dict[str, Any]], measured_on: str) -> Any:
    """T15's verdict in place of the overfitting checks: the fit is the aim. It says how far the training
    loss fell and where the error is measured."""
    from ..checks import Verdict

    first, last = history[0]["train_loss"], min(row["train_loss"] for row in history)
    return Verdict("T15", "surrogate", "pass",
                   f"trained to fit every row on purpose (a simulator's table): the training loss fell from "
                   f"{first:.4g} to {last:.4g} in {len(history)} epochs; no row is held out, so no curve is judged for "
                   f"overfitting; the error is measured on {measured_on}",
                   {"first_train_loss": first, "best_train_loss": last, "epochs": len(history),
                    "measured_on": measured_on},
                   source="Lavanya Shukla (surrogate models: overfit on purpose); Karpathy's recipe (overfit first)")
