"""T3/M9 optimizers by name and T5 learning-rate schedules, all torch's own, stepped at the right cadence."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import lr_scheduler

from ..config import TrainConfig


def make_optimizer(params: Iterable[Any], cfg: TrainConfig) -> torch.optim.Optimizer:
    lr, wd = cfg.lr, cfg.weight_decay
    name = cfg.optimizer
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=cfg.momentum, weight_decay=wd)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "nadam": torch.optim.NAdam,
           "adamax": torch.optim.Adamax, "adagrad": torch.optim.Adagrad}[name]
    return cls(params, lr=lr, weight_decay=wd)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
                   ) -> tuple[Any, str]:
    """The schedule and when it steps: 'step' (after each optimizer step), 'epoch', or 'plateau'
    (each epoch, given the monitored metric). 1cycle and cosine move per step, as their papers define
    them over iterations (Smith & Topin 2018; Loshchilov & Hutter 2017); the others per epoch."""
    s = cfg.schedule
    if s == "constant":
        return None, "epoch"
    if s == "step":
        return lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma), "epoch"
    if s == "exponential":
        return lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma), "epoch"
    if s == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode=cfg.monitor_mode, factor=cfg.gamma,
                                              patience=cfg.plateau_patience), "plateau"
    total = cfg.epochs * steps_per_epoch
    if s == "onecycle":
        # cycle_momentum moves SGD's momentum or Adam's beta1 inversely to the rate (Smith 2018, sec. 4.1)
        cycle = any(k in optimizer.defaults for k in ("momentum", "betas"))  # adagrad has neither
        return lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, cycle_momentum=cycle), "step"
    warm = cfg.warmup_epochs * steps_per_epoch
    cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - warm))
    if warm == 0:
        return cosine, "step"
    linear = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warm, total_iters=warm)
    return lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[warm]), "step"
