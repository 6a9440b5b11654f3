"""T3/M9 optimizers and T5 learning-rate schedules, all torch's own, stepped at the right cadence.

An optimizer is given by name (TrainConfig.optimizer), as parameter groups (dicts with "params" and their
own settings, a per-group learning rate say: discriminative rates, a frozen base), or as a torch optimizer
the caller built. Weight decay, where it is on, applies by default to the weights of two dimensions or
more and not to biases and normalization layers' scales and shifts (all one-dimensional): "no bias decay"
(He et al. 2019, "Bag of Tricks for Image Classification with Convolutional Neural Networks", sec. 3.1),
as minGPT and nanoGPT configure AdamW; decaying a bias or a norm's scale only pulls the layer toward a
fixed offset or scale, which is not the capacity that decay is meant to limit."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from ..config import DEFAULT_LR, TrainConfig
from ..errors import ConfigError

OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "nadam": torch.optim.NAdam,
    "rmsprop": torch.optim.RMSprop, "adamax": torch.optim.Adamax, "adagrad": torch.optim.Adagrad}


def _settings(cfg: TrainConfig) -> dict[str, Any]:
    """The constructor settings of cfg.optimizer from the config."""
    lr = cfg.lr if cfg.lr is not None else DEFAULT_LR  # None: the rule (a recipe fills in its model's own rate)
    name, settings = cfg.optimizer, {"lr": lr, "weight_decay": cfg.weight_decay}
    if name == "sgd":
        settings.update(momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    elif name == "rmsprop":
        settings.update(momentum=cfg.momentum)
    return settings


def decay_groups(params: Iterable[Any], weight_decay: float, decay_all: bool = False) -> list[Any]:
    """The parameters as optimizer groups: one group when no decay applies (or `decay_all`), else the
    parameters of 2+ dimensions with `weight_decay` and the others (biases, norm layers) without. Groups
    the caller gave (dicts) are split the same way, each keeping its own settings."""
    params = list(params)
    if not params:
        raise ConfigError("the optimizer has no parameters: the model has none, or every one is frozen")
    given = [g if isinstance(g, Mapping) else None for g in params]
    if any(g is None for g in given) and any(g is not None for g in given):
        raise ConfigError("optimizer parameters mix tensors and groups (dicts); give one or the other")
    if given[0] is None and (weight_decay == 0 or decay_all):
        return params  # one group, as torch makes it
    groups = [dict(g) for g in given] if given[0] is not None else [{"params": params}]
    out = []
    for g in groups:
        g["params"] = list(g["params"])
        wd = g.get("weight_decay", weight_decay)
        if wd == 0 or decay_all:
            out.append(g)
            continue
        decay = [p for p in g["params"] if p.ndim >= 2]
        keep = [p for p in g["params"] if p.ndim < 2]
        out += [x for x in ({**g, "params": decay, "weight_decay": wd}, {**g, "params": keep, "weight_decay": 0.0})
                if x["params"]]
    return out


def model_parameters(model: nn.Module, lr: float | None) -> Any:
    """What an optimizer for `model` is built on: the model's own parameter groups when it defines
    `param_groups(lr)` (a transfer model: discriminative rates, frozen-for-good blocks left out), else all its
    parameters."""
    groups = getattr(model, "param_groups", None)
    return groups(lr if lr is not None else DEFAULT_LR) if callable(groups) else model.parameters()


def make_optimizer(params: Iterable[Any], cfg: TrainConfig) -> torch.optim.Optimizer:
    """cfg.optimizer over `params`: parameters, or parameter groups (dicts) with settings of their own."""
    if cfg.optimizer not in OPTIMIZER_CLASSES:
        raise ConfigError(f"optimizer={cfg.optimizer!r}; choose one of: {', '.join(OPTIMIZER_CLASSES)}")
    return OPTIMIZER_CLASSES[cfg.optimizer](decay_groups(params, cfg.weight_decay, cfg.decay_all), **_settings(cfg))


def check_optimizer(optimizer: torch.optim.Optimizer, model: nn.Module, *also: Any) -> None:
    """A caller's optimizer must train this model's parameters: one it holds that the model does not
    (an optimizer built before the model was copied or rebuilt) would never move the model. `also`: modules
    whose parameters train beside the model's (a loss with a learnable temperature, CenterLoss)."""
    mine = {id(p) for p in model.parameters()} | {id(p) for m in also if isinstance(m, nn.Module)
                                                  for p in m.parameters()}
    held = [p for g in optimizer.param_groups for p in g["params"]]
    foreign = sum(id(p) not in mine for p in held)
    if foreign:
        raise ConfigError(f"the optimizer holds {foreign} of {len(held)} parameters that are not the model's "
                          "(was it built on another model, or before the model was copied?); build it on "
                          "model.parameters() of the model given to the Trainer")


def constructor_settings(optimizer: torch.optim.Optimizer, settings: dict[str, Any]) -> dict[str, Any]:
    """The entries of `settings` that the optimizer's class takes as keywords: a class may list in its
    defaults a setting its constructor fixes itself (torch 2.13's AdamW: 'decoupled_weight_decay'), which
    a copy made with **defaults would pass and be refused for. The groups keep every entry."""
    try:
        accepted = inspect.signature(type(optimizer).__init__).parameters
    except (TypeError, ValueError):  # a constructor without a signature: take them all
        return dict(settings)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return dict(settings)
    return {k: v for k, v in settings.items() if k in accepted}


def clone_optimizer(optimizer: torch.optim.Optimizer, model: nn.Module, copy_model: nn.Module,
                    state: bool = True, settings: list[dict[str, Any]] | None = None) -> torch.optim.Optimizer:
    """An optimizer like `optimizer` (its class, its groups' settings, its state when `state`) over the
    parameters of `copy_model`, a deep copy of `model`, mapped parameter by parameter. A parameter the
    optimizer holds that is not the model's stays apart from the copy (a fresh leaf). The settings a
    scheduler added to the groups (initial_lr, ...) ride in the groups, never in the constructor.
    `settings`: each group's settings to start from instead of its live ones (before a schedule moved
    them: Trainer.group_settings)."""
    names = {id(p): n for n, p in model.named_parameters()}
    mine = dict(copy_model.named_parameters())

    def counterpart(p: torch.Tensor) -> torch.Tensor:
        return mine[names[id(p)]] if id(p) in names else p.detach().clone().requires_grad_(p.requires_grad)

    live = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    groups = [{**copy.deepcopy(s), "params": [counterpart(p) for p in g["params"]]}
              for s, g in zip(settings or live, optimizer.param_groups)]
    clone = type(optimizer)(groups, **constructor_settings(optimizer, optimizer.defaults))
    if state:
        clone.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # moments, step counts: by position
    return clone


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int,
                   mode: str | None = None) -> tuple[Any, str]:
    """The schedule and when it steps: 'step' (after each optimizer step), 'epoch', or 'plateau'
    (each epoch, given the monitored metric). 1cycle and cosine move per step, as their papers define
    them over iterations (Smith & Topin 2018; Loshchilov & Hutter 2017); the others per epoch. Each
    parameter group follows the schedule from its own rate."""
    s = cfg.schedule
    if s == "constant":
        return None, "epoch"
    if s == "step":
        return lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma), "epoch"
    if s == "exponential":
        return lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma), "epoch"
    if s == "plateau":
        # `mode`: the direction of what the trainer follows (val_accuracy under metric='accuracy': 'max');
        # cfg.monitor_mode reads cfg.monitor alone, and a rising accuracy cut the rate as a loss that rose
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode or cfg.monitor_mode, factor=cfg.gamma,
                                              patience=cfg.plateau_patience), "plateau"
    total = cfg.epochs * steps_per_epoch
    if s == "onecycle":
        # cycle_momentum moves SGD's momentum or Adam's beta1 inversely to the rate (Smith 2018, sec. 4.1)
        cycle = any(k in optimizer.defaults for k in ("momentum", "betas"))  # adagrad has neither
        peaks = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
        return lr_scheduler.OneCycleLR(optimizer, max_lr=peaks if len(peaks) > 1 else peaks[0], total_steps=total,
                                       cycle_momentum=cycle), "step"
    warm = cfg.warmup_epochs * steps_per_epoch
    cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - warm))
    if warm == 0:
        return cosine, "step"
    linear = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warm, total_iters=warm)
    return lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[warm]), "step"
