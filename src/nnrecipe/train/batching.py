"""D12/D13: how batches reach the training step.

Fast path: data that fits in memory lives as pre-collated tensors on the training device and each batch
is a slice through a seeded permutation: no per-sample Python, no collate, no host-to-device copy per
step. The in-memory data is a tuple of tensors (the target last), or a dict of tensors (inputs by name, the
target under its key: steps/batch.py). The DataLoader path serves Datasets that are not tensors (and
DataLoaders users bring); their batches may be tuples or dicts. Each epoch's order is a pure function of
(seed, epoch) (repro.epoch_generator), so resuming at batch k of epoch e replays exactly the batches an
uninterrupted run would have seen."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, TensorDataset

from ..errors import ConfigError, DataError
from ..repro import epoch_generator, worker_init_fn
from ..steps.batch import to_device

RawBatch = Any  # a tuple of tensors or a dict of tensors, as the data holds them
# bucketed batches: rows sorted by length within windows of this many batches of the epoch's seeded order, the
# batches then shuffled (fastai's SortishSampler; Hugging Face's group_by_length takes 50 too)
BUCKET_WINDOW = 50


def sortish(perm: torch.Tensor, lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
            drop_last: bool = False) -> list[torch.Tensor]:
    """The epoch's batches as index tensors: `perm` (a seeded order) cut into windows of BUCKET_WINDOW batches,
    each window sorted by length (longest first), cut into batches, the batches shuffled by `generator`. Every
    row once; the one short batch (n % batch_size rows) left out when `drop_last`."""
    size = batch_size * BUCKET_WINDOW
    batches: list[torch.Tensor] = []
    for start in range(0, len(perm), size):
        window = perm[start:start + size]
        window = window[torch.argsort(lengths[window], descending=True, stable=True)]
        batches += list(torch.split(window, batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _as_tensor(x: Any, name: str, float_dtype: torch.dtype | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        # numpy's floats are float64 unless asked, torch's float32: a float32 model cannot take float64
        # inputs, so they take the model's float type (Keras casts numpy inputs the same way); a float64
        # tensor stays the caller's choice
        t = torch.from_numpy(x)
        return t.to(float_dtype or torch.get_default_dtype()) if t.dtype == torch.float64 else t
    raise ConfigError(f"{name} holds a {type(x).__name__}; pass tensors or numpy arrays, a Dataset or a DataLoader")


def _batch_count(n: int, batch_size: int, drop_last: bool) -> int:
    """Batches in an epoch of n rows: the full ones, plus a last short one unless drop_last."""
    return n // batch_size if drop_last else -(-n // batch_size)


class TensorBatches:
    """Batches sliced from tensors that share their first dimension (`keys`: the dict's keys, when the
    data was a dict of tensors; its batches are dicts)."""

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int, shuffle: bool,
                 device: torch.device, drop_last: bool = False, keys: Sequence[str] | None = None,
                 bucket_by: int | None = None):
        n = {len(t) for t in tensors}
        if len(n) != 1:
            raise ConfigError(f"the data tensors have different lengths {sorted(n)}; they must have one row each per sample")
        self.n = n.pop()
        self.tensors = tuple(t.to(device) for t in tensors)
        self.keys = tuple(keys) if keys is not None else None
        self.batch_size, self.shuffle, self.device, self.drop_last = batch_size, shuffle, device, drop_last
        # bucketed (`bucket_by`: the position of an input of token ids, 0 padding): each row's length
        self.lengths = None if bucket_by is None else (tensors[bucket_by] != 0).sum(1).cpu()

    def __len__(self) -> int:
        return _batch_count(self.n, self.batch_size, self.drop_last)

    @property
    def data(self) -> tuple[torch.Tensor, ...] | dict[str, torch.Tensor]:
        """The tensors in the structure they were given (a tuple, or a dict)."""
        return self.tensors if self.keys is None else dict(zip(self.keys, self.tensors))

    def epoch(self, seed: int, epoch: int, start: int = 0) -> Iterator[RawBatch]:
        bs, keys = self.batch_size, self.keys
        if not self.shuffle:
            for i in range(start, len(self)):
                part = tuple(t[i * bs:(i + 1) * bs] for t in self.tensors)
                yield part if keys is None else dict(zip(keys, part))
            return
        generator = epoch_generator(seed, epoch)
        perm = torch.randperm(self.n, generator=generator)
        if self.lengths is not None:  # batches of similar lengths, in a seeded order: resume replays it
            for idx in sortish(perm, self.lengths, bs, generator, self.drop_last)[start:]:
                part = tuple(t[idx.to(self.device)] for t in self.tensors)
                yield part if keys is None else dict(zip(keys, part))
            return
        perm = perm.to(self.device)
        for i in range(start, len(self)):
            idx = perm[i * bs:(i + 1) * bs]
            part = tuple(t[idx] for t in self.tensors)
            yield part if keys is None else dict(zip(keys, part))


class _EpochSampler(Sampler[int]):
    """The same seeded order as TensorBatches, for a DataLoader over a map-style Dataset."""

    def __init__(self, n: int, shuffle: bool):
        self.n, self.shuffle, self.seed, self.epoch, self.skip = n, shuffle, 0, 0, 0

    def __len__(self) -> int:
        return self.n - self.skip

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.n, generator=epoch_generator(self.seed, self.epoch)) if self.shuffle \
            else torch.arange(self.n)
        return iter(order[self.skip:].tolist())


class _Items(Dataset):
    """A list of items (tuples, or dicts) as a Dataset."""

    def __init__(self, items: list[Any]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]


class LoaderBatches:
    """Batches from a DataLoader: one we build over a Dataset (seeded, resumable exactly), or the user's."""

    def __init__(self, data: Dataset | DataLoader, batch_size: int, shuffle: bool, device: torch.device,
                 num_workers: int = 0, drop_last: bool = False):
        self.device, self.drop_last = device, drop_last
        self.cut = None  # a user's DataLoader: the batches an epoch takes (its last left out when it holds one row)
        if isinstance(data, DataLoader):
            self.loader, self.sampler = data, None
            size = data.batch_size  # the rows an epoch draws are the sampler's (a subset sampler draws fewer)
            if drop_last and size and not data.drop_last and _sized(data.sampler) and len(data.sampler) % size == 1:
                self.cut = len(data) - 1  # type: ignore[arg-type]
        else:
            self.sampler = _EpochSampler(len(data), shuffle)  # type: ignore[arg-type]
            self.loader = DataLoader(data, batch_size=batch_size, sampler=self.sampler, num_workers=num_workers,
                                     worker_init_fn=worker_init_fn, pin_memory=device.type == "cuda",
                                     drop_last=drop_last)
        self.batch_size = self.loader.batch_size or batch_size

    def __len__(self) -> int:
        if self.sampler is None:
            return len(self.loader) if self.cut is None else self.cut
        return _batch_count(self.sampler.n, self.batch_size, self.drop_last)

    def epoch(self, seed: int, epoch: int, start: int = 0) -> Iterator[RawBatch]:
        if self.sampler is not None:
            self.sampler.seed, self.sampler.epoch, self.sampler.skip = seed, epoch, start * self.batch_size
            # iter() draws the workers' base seed from loader.generator, or else from the global RNG,
            # which would shift dropout masks and break exact resume: give it the epoch's own generator
            self.loader.generator = epoch_generator(seed, epoch)
            it: Iterator[Any] = iter(self.loader)
        else:  # a user's DataLoader: its own sampler decides the order; skip what was done
            it = itertools.islice(iter(self.loader), start, self.cut)
        for batch in it:
            if isinstance(batch, Mapping):
                yield to_device(batch, self.device, non_blocking=True)
                continue
            batch = tuple(batch) if isinstance(batch, (list, tuple)) else (batch,)
            yield tuple(to_device(b, self.device, non_blocking=True) for b in batch)


def _sized(sampler: Any) -> bool:
    try:
        len(sampler)
    except TypeError:  # an IterableDataset's sampler has no length
        return False
    return True


def _no_rows(name: str) -> DataError:
    return DataError(f"{name} holds no rows; give it the rows to {'train' if name == 'train_data' else 'use'} on")


def refuse_stream(data: Any, name: str) -> None:
    """An IterableDataset, bare or in a DataLoader, as training data: len() raised deep in the loop. (A
    validation or prediction stream in a DataLoader is read as it comes.)"""
    if name == "train_data" and isinstance(data.dataset if isinstance(data, DataLoader) else data, IterableDataset):
        raise ConfigError(f"{name} is an IterableDataset (a stream: no len(), no index), and the Trainer counts and "
                          "orders each epoch's rows (its schedule, its checkpoints mid-epoch, its resume); give a "
                          "map-style Dataset (__len__ and __getitem__), or read the stream's rows into tensors")


def n_rows(data: Any) -> int:
    """The rows (samples) of training data in any form make_batches accepts."""
    refuse_stream(data, "train_data")
    if isinstance(data, TensorDataset):
        return len(data.tensors[0])
    if isinstance(data, Mapping):
        return len(next(iter(data.values()))) if data else 0
    if isinstance(data, list) and data and isinstance(data[0], (tuple, Mapping)):
        return len(data)  # a list of items
    if isinstance(data, (tuple, list)):
        return len(data[0]) if data else 0
    if isinstance(data, DataLoader):
        return len(data.dataset)  # type: ignore[arg-type]
    return len(data)


def make_batches(data: Any, batch_size: int, shuffle: bool, device: torch.device,
                 name: str = "train_data", drop_single: bool = False,
                 bucket_by: int | None = None, float_dtype: torch.dtype | None = None) -> TensorBatches | LoaderBatches:
    """Accept (X, y) tensors or arrays, a bare X, a dict of tensors, a TensorDataset, any Dataset, or a
    DataLoader. `drop_single`: leave out an epoch's last batch when it would hold a single row (BatchNorm
    cannot normalize one row in training mode); a user's own DataLoader too, when it batches by a size. `bucket_by`: the
    position of an input of token ids (0 padding) whose rows are batched by similar length (`sortish`)."""
    if isinstance(data, TensorDataset):
        data = data.tensors
    if isinstance(data, (torch.Tensor, np.ndarray)):
        data = (data,)
    refuse_stream(data, name)
    if isinstance(data, DataLoader):
        if _sized(data.dataset) and len(data.dataset) == 0:
            raise _no_rows(name)
        return LoaderBatches(data, batch_size, shuffle, device, drop_last=drop_single)
    if isinstance(data, list) and data and isinstance(data[0], (tuple, Mapping)):
        data = _Items(data)  # a list of (x, y) items or of dicts: a map-style dataset, as PyTorch takes it
    keys = None
    if isinstance(data, Mapping):
        if not data:
            raise ConfigError(f"{name} is an empty dict; give it the input tensors and the target by name")
        keys, data = [str(k) for k in data], [_as_tensor(t, f"{name}[{k!r}]", float_dtype) for k, t in data.items()]
    elif isinstance(data, (tuple, list)):
        data = [_as_tensor(t, name, float_dtype) for t in data]
    elif not isinstance(data, Dataset):
        raise ConfigError(f"{name} is a {type(data).__name__}; pass (X, y) tensors or arrays, a dict of tensors, "
                          "a Dataset or a DataLoader")
    n = len(data[0]) if isinstance(data, list) else len(data)  # type: ignore[arg-type]
    if n == 0:  # every epoch 'trained' on nothing, with a NaN loss and a best epoch
        raise _no_rows(name)
    single = drop_single and n % batch_size == 1
    if single and n == 1:
        raise DataError(f"{name} holds one row, and BatchNorm in training mode cannot normalize a batch of one "
                        "row (the Trainer leaves such a batch out: nothing would train); give it more rows")
    if isinstance(data, list) and name == "val_data":  # training's NaN stops the step with its batch named;
        for i, t in enumerate(data):                    # validation's left a NaN loss and no best epoch
            bad = torch.isnan(t) if t.is_floating_point() else None  # (-inf is a value: an additive mask)
            if bad is not None and bool(bad.any()):
                row = int(bad.reshape(len(t), -1).any(1).nonzero()[0])
                what = f"{name}[{keys[i]!r}]" if keys else f"{name}'s tensor {i}"
                raise DataError(f"{what} holds {int(bad.sum())} NaN values (the first in row {row}); impute or drop "
                                "them as the training rows were")
    if isinstance(data, list):
        return TensorBatches(data, batch_size, shuffle, device, drop_last=single, keys=keys, bucket_by=bucket_by)
    if bucket_by is not None:
        raise ConfigError(f"bucket_by={bucket_by}: bucketed batches are drawn from tensors; pass {name} as tensors")
    return LoaderBatches(data, batch_size, shuffle, device, drop_last=single)
