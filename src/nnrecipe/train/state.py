"""T8: the Trainer's whole state, as one tree for the checkpoint, and the resume that reads it back.
Kept apart from the loop (trainer.py) so that the loop reads in one sitting; `Trainer` inherits this.

Resuming is something the caller asks for and sees: a run folder that already holds a run is refused
unless resume=True (or "auto"), and a resume whose model or settings differ from the checkpoint's is
refused with the differences named (never a raw state_dict error); a resume is logged as a warning."""

from __future__ import annotations

import difflib
import logging
from typing import Any

import torch

from ..config import RECIPE_ONLY, to_dict
from ..errors import CheckpointError, ConfigError
from ..io import sweep_temp
from ..repro import get_rng_state, set_rng_state
from . import checkpoint as ckpt
from . import distributed as dist
from ..steps.step import describe_loss
from .callbacks import Callback

log = logging.getLogger("nnrecipe")

# settings a resume may change: a longer budget (T16: train longer), another device
RESUMABLE_CHANGES = ("epochs", "device")


class TrainerState:
    """What a checkpoint holds: model, optimizer, scheduler, grad scaler, SWA, every RNG state, the position
    in the data order, the epoch accumulators, history, best epoch and weights, callback and step states,
    the config, and the model's architecture (to refuse a resume on another one)."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "swa": None if self.swa_model is None else {"model": self.swa_model.state_dict(),
                                                        "scheduler": self.swa_scheduler.state_dict()},
            "rng": get_rng_state(),
            "position": {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                         "global_step": self.global_step, "stop_training": self.stop_training,
                         "rollbacks": self.rollbacks},
            # T10: the totals over every process (a collective: every process saves at the same points)
            "accumulators": self._acc if self._ddp is None else dist.summed(self._acc),
            "history": self.history,
            # the best weights ride in the same atomic file, so the best epoch and its weights never disagree
            "best": {"epoch": self.best_epoch, "value": self.best_value, "model": self._best_state},
            "callbacks": {key: c.state_dict() for key, c in self._stateful_callbacks().items()},
            "step": self._step_state(),
            "config": self._config_record(),
            "architecture": repr(self.model),
            "loss": describe_loss(self.step.loss_fn),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.swa_model is not None and state.get("swa") is not None:
            self.swa_model.load_state_dict(state["swa"]["model"])
            self.swa_scheduler.load_state_dict(state["swa"]["scheduler"])
        pos = state["position"]
        self.epoch, self.batch_in_epoch = pos["epoch"], pos["batch_in_epoch"]
        self.global_step, self.stop_training = pos["global_step"], pos["stop_training"]
        self.rollbacks = pos.get("rollbacks", 0)
        self._acc = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v  # saved on the CPU
                     for k, v in state["accumulators"].items()}
        if self.distributed:  # T10: the saved totals are counted once, by rank 0
            self._acc = dist.own_share(self._acc, self._new_accumulators())
        self.history = state["history"]
        self.best_epoch, self.best_value = state["best"]["epoch"], state["best"]["value"]
        self._best_state = state["best"]["model"]
        for key, c in self._stateful_callbacks().items():
            if key in state["callbacks"]:
                c.load_state_dict(state["callbacks"][key])
        step = self._full_step or self.step
        if state.get("step") is not None and hasattr(step, "load_state_dict"):
            step.load_state_dict(state["step"])
        set_rng_state(state["rng"])

    def _step_state(self) -> Any:
        step = self._full_step or self.step
        return step.state_dict() if hasattr(step, "state_dict") else None

    def _config_record(self) -> dict[str, Any]:
        """The config as the run trains it: the batch size resolved, and a caller's own optimizer as it is (its
        class, its first group's rate and decay, each group's rate when they differ), not the config's
        unused defaults."""
        record = {**to_dict(self.config), "batch_size": self.batch_size}
        if getattr(self, "_scheduler_given", False):  # the caller's schedule, by its class
            record["schedule"] = type(self.scheduler).__name__
        groups = self.group_settings
        if self._optimizer_given:
            record.update(optimizer=type(self.optimizer).__name__.lower(), lr=groups[0]["lr"],
                          weight_decay=groups[0].get("weight_decay", 0.0))
        if len({g["lr"] for g in groups}) > 1:
            record["group_lrs"] = [g["lr"] for g in groups]
        return record

    def _stateful_callbacks(self) -> dict[str, Callback]:
        """Stateful callbacks keyed by class name and occurrence ('EarlyStopping:0'), so a resumed run
        matches states to callbacks even when the list changed order or grew."""
        keyed, seen = {}, {}
        for c in self.callbacks:
            if hasattr(c, "state_dict") and hasattr(c, "load_state_dict"):
                name = type(c).__name__
                keyed[f"{name}:{seen.get(name, 0)}"] = c
                seen[name] = seen.get(name, 0) + 1
        return keyed

    def save_checkpoint(self) -> None:
        if self.run_dir is not None:
            state = self.state_dict()  # in every process (T10: it sums the running totals over them)
            if self._writes:
                ckpt.save_state(self.run_dir / "checkpoints" / "last.safetensors", state)
        elif self.config.on_nonfinite == "rollback":
            self._good_state = ckpt.dumps_state(self.state_dict())

    def _resume(self) -> bool:
        """Continue from run_dir's last checkpoint when asked to (T8); refuse a used folder otherwise."""
        if self.run_dir is None:
            return False
        if self.resume:
            for path, size in sweep_temp(self.run_dir):  # a killed writer's leftovers: it cannot remove them itself
                log.info("removed %s (%d bytes), left by a process that was killed while writing it", path, size)
        used = self.recorder.used()
        if not used:
            if self.resume is True:
                raise CheckpointError(f"resume=True, but run folder '{self.run_dir}' holds no checkpoint to resume; "
                                      "give the folder of the interrupted run, or resume='auto' (resume when "
                                      "there is one, else start)")
            return False
        if not self.resume:
            raise CheckpointError(
                f"run folder '{self.run_dir}' already holds a run ({', '.join(used)}); to go on with it, pass "
                f"resume=True (CLI: --resume {self.run_dir}); to start a new run, give a new run_dir")
        last = self.run_dir / "checkpoints" / "last.safetensors"
        if not last.exists():  # killed before its first checkpoint: nothing to resume, start again
            log.warning("run folder %s holds no checkpoint (the run stopped before its first one): starting "
                        "it from the beginning", self.run_dir)
            self.recorder.history([])
            return False
        state = ckpt.load_state(last)
        self._check_resumable(state)
        try:
            self.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError) as e:  # what the comparison above cannot see
            raise ConfigError(f"cannot resume {last}: the model or optimizer differs from the one that saved it "
                              f"({str(e).splitlines()[0]}); resume with the same model and optimizer, or start a "
                              "new run_dir") from None
        # metrics.jsonl may hold an epoch the checkpoint does not: rewrite it from the checkpoint's history
        self.recorder.history(self.history)
        log.warning("resuming the run in %s from its checkpoint at epoch %d, batch %d", self.run_dir, self.epoch + 1,
                    self.batch_in_epoch)
        if self.stop_training and self.epoch < self.config.epochs:
            log.warning("the run in %s had stopped after epoch %d (early stopping, or a callback set stop_training): a "
                        "resume goes on from an interruption, not past a stop, so nothing more is trained; to train "
                        "longer, start a new run_dir from its weights (checkpoints/last.safetensors)",
                        self.run_dir, self.epoch)
        return True

    def _check_resumable(self, state: dict[str, Any]) -> None:
        """Refuse, naming every difference, a resume whose model or settings are not the checkpoint's."""
        problems = []
        saved = {k: tuple(v.shape) for k, v in state["model"].items()}
        mine = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}
        for k in sorted(saved.keys() | mine.keys()):
            if saved.get(k) != mine.get(k):
                problems.append(f"{k}: {_shape(saved.get(k))} in the checkpoint, {_shape(mine.get(k))} now")
        arch = state.get("architecture")
        if arch is not None and arch != repr(self.model) and not problems:
            lines = [ln for ln in difflib.unified_diff(arch.splitlines(), repr(self.model).splitlines(), lineterm="", n=0)
                     if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
            problems.append("the architecture differs: " + "; ".join(ln.strip() for ln in lines[:6]))
        recorded, now = state.get("config") or {}, self._config_record()
        changed = [k for k in sorted(recorded.keys() | now.keys())
                   if k in recorded and recorded.get(k) != now.get(k) and k not in RESUMABLE_CHANGES
                   and k not in RECIPE_ONLY  # a checkpoint of a recipe's Trainer from before they were left out
                   and not (k == "batch_size" and recorded.get(k) is None)]  # None: the rule, as it resolved now
        problems += [f"{k}: {recorded.get(k)!r} in the checkpoint, {now.get(k)!r} now" for k in changed]
        spans = recorded.get("schedule") in ("onecycle", "cosine") and not getattr(self, "_scheduler_given", False)
        if spans and "epochs" in recorded and recorded["epochs"] != now.get("epochs"):
            # its length is the run's: cosine came back up from its floor (a restart nobody asked for), 1cycle
            # raised torch's "stepped more than total_steps"
            problems.append(f"epochs: {recorded['epochs']!r} in the checkpoint, {now.get('epochs')!r} now, and the "
                            f"{recorded['schedule']} schedule spans the run's epochs (its rate planned to end at "
                            f"epoch {recorded['epochs']})")
        loss = describe_loss(self.step.loss_fn)
        if "loss" in state and state["loss"] != loss:  # (a checkpoint from before the record has none)
            problems.append(f"the loss: {state['loss']} in the checkpoint, {loss} now")
        if problems:
            raise ConfigError(f"cannot resume the run in '{self.run_dir}': the model or settings differ from the "
                              f"recorded ones: {'; '.join(problems)}. Resume with the recorded model and settings, "
                              "or start a new run_dir")
        for k in RESUMABLE_CHANGES:
            if k in recorded and recorded[k] != now.get(k):
                log.warning("resuming with %s=%r (the run was started with %r)", k, now.get(k), recorded[k])


def _shape(s: tuple[int, ...] | None) -> str:
    return "absent" if s is None else str(list(s))
