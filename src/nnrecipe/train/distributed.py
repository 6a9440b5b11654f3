"""T10: data-parallel training with torch's DistributedDataParallel, one process per device, launched by
`torchrun` (docs/distributed.md). The engine's batches stay the GLOBAL batches of the seeded epoch order
(train/batching.py: the same order in every process, a function of (seed, epoch)), and each process trains
on its share of each batch's rows; DDP averages the gradients, so every process takes the same optimizer
step and holds the same weights. The loop position counts global batches, which is what lets a checkpoint
resume exactly and with another number of processes.

What each process does: its rows of each batch (`shard`); the epoch's training loss and metrics are summed
over the processes (`end_epoch`); validation runs in every process on the whole validation split (same
weights, same rows: the same values everywhere, so early stopping and the best epoch agree with no message
sent); rank 0 alone writes the run folder and prints. nanoGPT's train.py is the pattern (torchrun's
environment, the master process logs and checkpoints, the unwrapped model is saved)."""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import inspect
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError, TrainingError
from ..io import alive
from ..steps.batch import Batch
from ..track.recorder import RunRecorder

log = logging.getLogger("nnrecipe")


def launched() -> bool:
    """Whether torchrun started this process as one of several (it sets WORLD_SIZE, RANK, LOCAL_RANK)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Whether a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def setup() -> bool:
    """Join torchrun's process group once (gloo for CPU tensors; NCCL for CUDA tensors where CUDA is there,
    each process on cuda:LOCAL_RANK); whether this process trains with others. Outside torchrun: False."""
    if active():
        return True
    if not launched():
        return False
    if not dist.is_available():
        raise ConfigError("torchrun started several processes, but this torch build has no torch.distributed; "
                          "run one process, or install a torch build with distributed support")
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "cpu:gloo,cuda:nccl"  # each collective on its tensors' device (NCCL: untested here)
    dist.init_process_group(backend)
    atexit.register(_close)
    return True


def _close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if active() else int(os.environ.get("RANK", "0"))


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the process that writes the run folder and prints (every process when there is one)."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """A CUDA device under torchrun is this process's own, cuda:LOCAL_RANK."""
    if device.type == "cuda" and device.index is None and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def shard(batch: Batch) -> tuple[Batch, int, float]:
    """This process's rows of a global batch (rows rank, rank + world, ...), how many they are, and the weight
    of its loss in the gradient: rows * world / batch rows, so that DDP's mean over the processes of these
    weighted shard means is the mean over the batch's rows (shards differ by one row at most). Strided, not
    contiguous: a bucketed batch (train/batching.py: rows sorted by length) gives every process rows of every
    length. A process left without rows (a batch smaller than the world) trains on a stand-in row at weight 0,
    so that its backward pass still joins the gradients' all-reduce."""
    n, r, w = batch.rows, rank(), world()
    mine = len(range(r, n, w))
    take = slice(r, None, w) if mine else slice(0, 1)

    def pick(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[take]

    inputs = batch.inputs
    inputs = {k: pick(v) for k, v in inputs.items()} if isinstance(inputs, dict) else tuple(pick(t) for t in inputs)
    return Batch(inputs, pick(batch.target), pick(batch.weight)), mine, mine * w / n


# the running totals that each process holds for its own rows (the gradient norms are the same everywhere)
PER_RANK = ("loss_sum", "count", "metrics")


def summed(acc: dict[str, Any]) -> dict[str, Any]:
    """The epoch's running totals summed over the processes (a copy; the loss as float64 while summed)."""
    if not active():
        return acc
    names = sorted(acc["metrics"])
    device = acc["loss_sum"].device
    totals = torch.tensor([float(acc["loss_sum"]), float(acc["count"]), *(acc["metrics"][k] for k in names)],
                          dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    values = totals.tolist()
    return {**acc, "loss_sum": torch.tensor(values[0], dtype=acc["loss_sum"].dtype, device=device),
            "count": round(values[1]), "metrics": dict(zip(names, values[2:]))}


def own_share(acc: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    """A resumed process's running totals: rank 0 keeps the checkpoint's (summed over the processes when
    it was saved), the others start theirs from zero, so that the next sum counts each row once."""
    if not launched() or is_main():
        return acc
    return {**acc, **{k: fresh[k] for k in PER_RANK}}


def end_epoch(acc: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """After a training pass: the running totals summed over the processes, and rank 0's buffers (BatchNorm's
    running statistics, each process's from its own rows) given to every process, so that validation gives
    the same values everywhere."""
    if not active():
        return acc
    for buf in model.buffers():
        dist.broadcast(buf, 0)
    return summed(acc)


class _Members(nn.Module):
    """One forward for both calls of a model of members (TabM): `members=True` gives `member_outputs`, which
    training uses; through DDP's forward, so that its gradient hooks see the pass."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *inputs: Any, members: bool = False, **named: Any) -> Any:
        return self.model.member_outputs(*inputs) if members else self.model(*inputs, **named)  # type: ignore[operator]


class MembersParallel(DistributedDataParallel):
    """DDP over a model of members: `member_outputs` and `combine` as the model has them (Step.supervised),
    the members' pass going through DDP's forward."""

    def member_outputs(self, *inputs: Any) -> torch.Tensor:
        return self(*inputs, members=True)

    def combine(self, outs: torch.Tensor) -> torch.Tensor:
        return self.module.model.combine(outs)


def wrap(model: nn.Module, device: torch.device, settings: dict[str, Any]) -> DistributedDataParallel | None:
    """The model in DDP for the training passes (None outside a process group). Refuses, naming them,
    settings that differ between the processes (`settings`: the trainer's resolved config, rows and
    batches): each would take other steps and the weights would part silently. DDP's constructor gives
    every process rank 0's weights."""
    if not active():
        return None
    everyone: list[Any] = [None] * world()
    dist.all_gather_object(everyone, settings)
    differ = sorted(k for k in settings.keys() | everyone[0].keys() if any(s.get(k) != everyone[0].get(k)
                                                                          for s in everyone))
    if differ:
        raise ConfigError("the processes train with different settings, so their weights would part: "
                          + "; ".join(f"{k}: {[s.get(k) for s in everyone]} by rank" for k in differ[:6])
                          + ". Give every process the same command, data and settings")
    ids = [device.index] if device.type == "cuda" else None
    # the buffers are given from rank 0 after each epoch (end_epoch), not before every forward (a collective a
    # step); torch 2.13 renamed the setting
    quiet = {"forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
             else "broadcast_buffers": False}
    if callable(getattr(model, "member_outputs", None)):
        return MembersParallel(_Members(model), device_ids=ids, **quiet)
    return DistributedDataParallel(model, device_ids=ids, **quiet)


def check_same(model: nn.Module) -> None:
    """Every process ends with rank 0's weights and buffers, bit for bit (the all-reduced gradients are the
    same everywhere); raises naming the ranks that part, which would be a bug, not noise."""
    if not active():
        return
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    everyone: list[Any] = [None] * world()
    dist.all_gather_object(everyone, h.hexdigest())
    parted = [r for r, d in enumerate(everyone) if d != everyone[0]]
    if parted:
        raise TrainingError(f"after training, the weights of rank(s) {parted} differ from rank 0's; the processes "
                            "did not take the same steps (a step that calls the model outside DDP's forward, or "
                            "a model whose parameters do not all get a gradient)")


class ReadOnlyRecorder(RunRecorder):
    """A process other than rank 0 reads the run folder (the checkpoint it resumes from) and writes nothing."""

    def start(self, config: Any) -> dict[str, Any]:
        return dict(config)

    def history(self, rows: Any) -> None:
        pass

    def checks(self, verdicts: Any) -> None:
        pass

    def finish(self, results: Any) -> dict[str, Any]:
        return dict(results)


def rank_options(opts: Any) -> Any:
    """The pipeline's options (recipes/pipeline.Options) for this process under torchrun. Rank 0's are as
    given. Another rank runs the same pipeline (the same Trainer.fit calls in the same order: every one of
    them meets the others' collectives) in a private temporary folder, deleted at exit, so that only rank 0
    writes the run folder; a resumed run is copied there first (before rank 0 changes anything: a barrier).
    The data audit, the doctor's checks, the report and the exports are rank 0's alone."""
    if not setup():
        return opts
    own = None
    if not is_main():
        _sweep_private_folders()
        own = Path(tempfile.mkdtemp(prefix=f"nnrecipe-rank{rank()}-pid{os.getpid()}-"))
        atexit.register(shutil.rmtree, own, True)  # not run after a kill: the next launch sweeps it
    resume = opts.resume
    if resume is not None:
        if own is not None:
            resume = own / Path(resume).name
            shutil.copytree(opts.resume, resume, ignore=shutil.ignore_patterns(".*.tmp-*"))
        dist.barrier()
    if own is None:
        return opts
    return dataclasses.replace(opts, out=own, resume=resume, progress=False, report=False, export=(), audit=False,
                               checks=())


def _sweep_private_folders() -> None:
    """The private folders of ranks killed before their exit handler ran (a resumed run's copy of its run
    folder, checkpoints and all): each names its process, removed once that process is gone."""
    for folder in Path(tempfile.gettempdir()).glob("nnrecipe-rank*-pid*-*"):
        pid = folder.name.split("-pid", 1)[1].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed %s, left by a killed process of an earlier run", folder)


def quiet_other_ranks() -> None:
    """Under torchrun, the command line of a rank other than 0 prints nothing and logs errors only."""
    if launched() and not is_main():
        logging.getLogger().setLevel(logging.ERROR)
        logging.getLogger("nnrecipe").setLevel(logging.ERROR)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)

