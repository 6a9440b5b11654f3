"""T8: the Trainer's whole state, as one tree for the checkpoint, and the resume that reads it back.
Kept apart from the loop (trainer.py) so that the loop reads in one sitting; `Trainer` inherits this."""

from __future__ import annotations

import json
import logging
from typing import Any

from ..config import to_dict
from ..repro import get_rng_state, set_rng_state
from . import checkpoint as ckpt
from .callbacks import Callback

log = logging.getLogger("nnrecipe")


class TrainerState:
    """What a checkpoint holds: model, optimizer, scheduler, grad scaler, SWA, every RNG state, the position
    in the data order, the epoch accumulators, history, best epoch and weights, callback states, config."""

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
            "accumulators": self._acc,
            "history": self.history,
            # the best weights ride in the same atomic file, so the best epoch and its weights never disagree
            "best": {"epoch": self.best_epoch, "value": self.best_value, "model": self._best_state},
            "callbacks": {key: c.state_dict() for key, c in self._stateful_callbacks().items()},
            "config": to_dict(self.config),
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
        self._acc = state["accumulators"]
        self.history = state["history"]
        self.best_epoch, self.best_value = state["best"]["epoch"], state["best"]["value"]
        self._best_state = state["best"]["model"]
        for key, c in self._stateful_callbacks().items():
            if key in state["callbacks"]:
                c.load_state_dict(state["callbacks"][key])
        set_rng_state(state["rng"])

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
            ckpt.save_state(self.run_dir / "checkpoints" / "last.safetensors", self.state_dict())
        elif self.config.on_nonfinite == "rollback":
            self._good_state = ckpt.dumps_state(self.state_dict())

    def _resume(self) -> bool:
        """Continue from run_dir's last checkpoint when there is one (T8: resume automatically)."""
        if self.run_dir is None or not (self.run_dir / "checkpoints" / "last.safetensors").exists():
            return False
        self.load_state_dict(ckpt.load_state(self.run_dir / "checkpoints" / "last.safetensors"))
        # metrics.jsonl may hold an epoch the checkpoint does not: rewrite it from the checkpoint's history
        ckpt.atomic_write(self.run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.history))
        log.info("resumed from %s at epoch %d, batch %d", self.run_dir, self.epoch + 1, self.batch_in_epoch)
        return True

    def _append_metrics(self, logs: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(logs) + "\n")


