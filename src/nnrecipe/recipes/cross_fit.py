"""T14 (Karpathy's recipe, when data is lacking: "split the data several times. And use separate data to train
some models. Then we can ensemble them to gain the final prediction"): a cross-validation ensemble.

The training and validation rows are pooled and cut into K folds; member k trains on the other folds and
stops early on fold k, so every pooled row trains K-1 members and is held out by one: no row is spent on
validation alone, and each member sees (K-1)/K of them (70% + 15% of the table by default, rather than
the 70% one model trains on). The members' predictions are averaged (model/ensemble.py), and each
pooled row's prediction by the member that did not train on it (out of fold) stands in for the
validation predictions.

K = 10 is the usual choice: Kohavi (1995, "A study of cross-validation and bootstrap for accuracy
estimation and model selection") recommends stratified 10-fold. It is not the default: on the small tables
of benchmarks/tabular.py it lifted wine, digits and diabetes but not breast cancer, for 10 times the
training (README: the T14 table). Members are numbered from 1, as the verdicts name them. Member 1 trains
in the run folder itself (its curves, watch and checkpoints are the run's, as a single model's are),
member n > 1 in members/n/. A member that finished leaves members/n/model.safetensors and then
members/n/member.json, so a resumed run loads the finished members and resumes the interrupted one from
its own checkpoint. (In the code, k = n - 1 indexes the folds.)

With --split group:COL the folds hold out whole groups, as the split does (GroupKFold; StratifiedGroupKFold
for classes); a time split takes no folds (check_split says why)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checks.curves import diagnose_curves
from ..checks.verdict import Verdict
from ..config import TrainConfig
from ..data.balance import resample
from ..data.split import fold_indices
from ..errors import ConfigError
from ..io import load_tensors, read_json, save_weights, write_json
from ..train.callbacks import PredictionWatch

log = logging.getLogger("nnrecipe")

MIN_HELD_OUT = 5  # rows each fold holds out: fewer give a member nothing to stop early on


def resolve_folds(requested: int, pooled: int, split: str = "auto") -> int:
    """The number of members, `requested` (cv_folds), checked against the `pooled` training and
    validation rows: each fold must hold out MIN_HELD_OUT of them; and against the data's `split`
    (DataConfig.split): a time split takes no folds (check_split)."""
    check_split(requested, split)
    if requested > 1 and pooled < requested * MIN_HELD_OUT:
        raise ConfigError(f"cv_folds={requested}: the {pooled} training and validation rows leave each of "
                          f"{requested} folds fewer than {MIN_HELD_OUT} rows to stop early on; choose at most "
                          f"{max(1, pooled // MIN_HELD_OUT)} folds, or 1 for one model")
    return requested


def check_split(folds: int, split: str, groups: np.ndarray | None = None) -> None:
    """T14 with --split: a time split takes no folds (a member would train on rows later than the fold it
    stops early on, and K-fold's promise, every pooled row held out once by a member that trained on the
    rest, cannot hold forward in time: forward-chaining folds would hold the earliest rows out of no fold);
    a group split needs at least `folds` groups among the pooled rows (`groups`: their codes)."""
    if folds <= 1:
        return
    if split.startswith("time:"):
        raise ConfigError(f"cv_folds={folds} does not go with --split {split}: cross-validation folds would train "
                          "members on rows later than the rows they are judged on; pass --cv-folds 1 (the time split's "
                          "validation rows follow its training rows), or a random or group split for the ensemble")
    if groups is not None and len(np.unique(groups)) < folds:
        found = len(np.unique(groups))
        raise ConfigError(f"cv_folds={folds} with --split {split}: the training and validation rows hold {found} "
                          f"groups, fewer than the {folds} folds that each hold out whole groups; choose at most "
                          f"{found} folds (--cv-folds), or 1 for one model")


@dataclass
class Member:
    """One member's record (members/n/member.json)."""
    number: int  # 1-based
    best_epoch: int | None
    best_value: float | None
    epochs_run: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"member": self.number, "best_epoch": self.best_epoch, "best_value": self.best_value,
                "epochs_run": self.epochs_run, "seconds": self.seconds}


class MemberStore:
    """Where an ensemble's members leave their weights and records (members/n/, n from 1), so that a resumed
    run loads the members that finished: T14's members and the R2 refit's pair alike."""

    def __init__(self, run_dir: Path, count: int, label: str):
        self.run_dir, self.count, self.label = run_dir, count, label

    def member_dir(self, k: int) -> Path:
        return self.run_dir / "members" / str(k + 1)

    def finished(self, k: int, model: nn.Module) -> Member | None:
        """Member k's record, its final weights loaded into `model`, when it finished before (--resume)."""
        record = self.member_dir(k) / "member.json"
        if not record.exists():
            return None
        model.load_state_dict(load_tensors(self.member_dir(k) / "model.safetensors"))
        log.info("%s: member %d of %d finished before; its weights are loaded", self.label, k + 1, self.count)
        return Member(**read_json(record))

    def record(self, k: int, model: nn.Module, trainer: Any, seconds: float) -> Member:
        """Save member k's final weights (the best epoch's, restored by fit, or the last), then its record."""
        member = Member(k + 1, trainer.best_epoch, trainer.best_value, len(trainer.history), round(seconds, 2),
                        list(trainer.history))
        save_weights(self.member_dir(k) / "model.safetensors", model)
        write_json(self.member_dir(k) / "member.json", dataclasses.asdict(member))
        value = member.best_value if member.best_value is not None else float("nan")
        log.info("%s: member %d of %d: best epoch %s of %d by %s = %.4g", self.label, k + 1, self.count,
                 member.best_epoch, member.epochs_run, trainer.monitor, value)
        return member


class CrossFit(MemberStore):
    """The folds of one run and its members' models, rows and records."""

    def __init__(self, prepared: Any, build: Callable[[int, torch.Tensor], nn.Module], train_config: TrainConfig,
                 balance: str, run_dir: Path):
        """`prepared`: the pipeline's Prepared; `build(seed, y_fit)`: a member, initialised with its output
        bias at y_fit's prior; `balance`: the data config's (D6): over- and undersampling are per member."""
        super().__init__(run_dir, train_config.cv_folds, "T14")
        self.prepared, self.build = prepared, build
        self.folds, self.seed, self.balance = train_config.cv_folds, train_config.seed, balance
        train = prepared.unbalanced or prepared.split("train")  # as prepared: resampling is per member
        self.rows = tuple(torch.cat([a, b]) for a, b in zip(train, prepared.split("val")))
        self.data_rows = [*prepared.rows["train"], *prepared.rows["val"]]
        task = prepared.task.name
        self.codes = self.rows[-1].view(-1).long().numpy() if task in ("binary", "multiclass") else None
        # a group split (--split group:COL): each fold holds out whole groups, as the split held them out
        groups = getattr(prepared.data, "groups", None)
        groups = groups[:len(self.data_rows)] if groups is not None else None  # train, then val: the pooled rows
        check_split(self.folds, getattr(prepared.data, "split", "auto"), groups)
        self.held_out = fold_indices(self.codes, len(self.data_rows), self.folds, self.seed, groups)

    def split(self, k: int) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """Member k's training rows (resampled when the run over- or undersamples, D6) and its fold."""
        fit = torch.from_numpy(self._fit_index(k))
        return tuple(t[fit] for t in self.rows), self.held(k)

    def _fit_index(self, k: int) -> np.ndarray:
        """The pooled rows member k trains on, resampled when the run over- or undersamples (D6)."""
        fit = np.setdiff1d(np.arange(len(self.data_rows)), self.held_out[k])
        if self.codes is not None and self.balance in ("oversample", "undersample"):
            fit = fit[resample(self.codes[fit], self.balance, self.seed + k)]
        return fit

    def held(self, k: int) -> tuple[torch.Tensor, ...]:
        """Fold k's rows (inputs and target), which member k stops early on."""
        held = torch.from_numpy(self.held_out[k])
        return tuple(t[held] for t in self.rows)

    def config(self, train_config: TrainConfig, k: int) -> TrainConfig:
        """Member k's training settings: the run's, seeded seed + k (its init and its batches' order)."""
        return dataclasses.replace(train_config, seed=self.seed + k)

    def member(self, k: int) -> nn.Module:
        """Member k, built as the recipe builds one model (M5, M6: its output bias at the prior of its own
        training rows), seeded seed + k."""
        return self.build(self.seed + k, self.rows[-1][torch.from_numpy(self._fit_index(k))])

    def trainer_dir(self, k: int) -> Path:
        return self.run_dir if k == 0 else self.member_dir(k)

    def watch(self, k: int = 0) -> PredictionWatch:
        """C10 on rows of member k's fold (rows it does not train on)."""
        *inputs, y = self.held(k)
        p = self.prepared
        return PredictionWatch.of_rows(inputs, y, [self.data_rows[i] for i in self.held_out[k]], p.task.name,
                                       p.classes, p.task.target_scale)

    def out_of_fold(self, trainer: Any, members: list[nn.Module]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Every pooled row's raw outputs by the member that held it out, with the targets and data rows."""
        outputs: torch.Tensor | None = None
        for k, model in enumerate(members):
            part = trainer.predict(self.held(k), model=model)  # inputs and target
            if outputs is None:
                outputs = torch.empty((len(self.data_rows), *part.shape[1:]), dtype=part.dtype)
            outputs[torch.from_numpy(self.held_out[k])] = part
        assert outputs is not None
        return outputs, self.rows[-1], self.data_rows


def member_curves(histories: list[list[dict[str, Any]]], baseline_loss: float | None,
                  val_rows: Sequence[int | None] | None = None) -> list[Verdict]:
    """C8 on every member's curves (member_verdicts); `val_rows`: what each member's val_accuracy counts (its
    validation rows; rows x labels for multi-label)."""
    sizes = list(val_rows) if val_rows is not None else [None] * len(histories)
    return member_verdicts([diagnose_curves(h, baseline_loss=baseline_loss, val_rows=n)
                            for h, n in zip(histories, sizes)])


def member_verdicts(judged: list[list[Verdict]]) -> list[Verdict]:
    """One check's verdicts on every member, combined: each finding once with the members that show it
    (numbered from 1). A failure in any member is reported; a warning when at least half the members
    show it (a problem of the setup, which every member shares: in fewer it is one fold's noise, each
    member having kept its best epoch's weights); a skip when every member skipped. What is left
    unreported is named in a note on the first reported verdict (or on the pass verdict when nothing is
    reported). One member: its verdicts unchanged."""
    if len(judged) == 1:
        return judged[0]
    n = len(judged)
    found: dict[tuple[str, str], tuple[Verdict, list[int]]] = {}  # a name can be a warning or a failure
    for k, verdicts in enumerate(judged):
        for v in verdicts:
            if v.status != "pass":
                found.setdefault((v.name, v.status), (v, []))[1].append(k + 1)

    def members(ks: list[int]) -> str:
        return f"member{'s' if len(ks) > 1 else ''} {', '.join(map(str, ks))} of {n}"

    def reported(v: Verdict, ks: list[int]) -> bool:
        return v.status == "fail" or (v.status == "warn" and 2 * len(ks) >= n) or len(ks) == n

    def named(v: Verdict, ks: list[int]) -> Verdict:
        return dataclasses.replace(v, summary=f"{members(ks)}: {v.summary}", evidence={**v.evidence, "members": ks})

    shown = [named(v, ks) for v, ks in found.values() if reported(v, ks)]
    minor = {f"{v.name} ({v.status})": ks for v, ks in found.values() if not reported(v, ks)}
    note = "; ".join(f"{name} in {members(ks)} only" for name, ks in minor.items())
    noted = {"minor": minor} if minor else {}
    if shown:
        if minor:
            shown[0] = dataclasses.replace(shown[0], summary=f"{shown[0].summary} (also: {note})",
                                           evidence={**shown[0].evidence, **noted})
        return shown
    passed = next((v for verdicts in judged for v in verdicts if v.status == "pass"), None)
    if passed is None:  # every member has a finding, each in too few members to report: all of them
        return [named(v, ks) for v, ks in found.values()]
    return [dataclasses.replace(passed, summary=f"{passed.summary} (each of the {n} members" + (f"; {note}" if note else "")
                                + ")", evidence={**passed.evidence, **noted})]
