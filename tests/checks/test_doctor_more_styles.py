"""The doctor on setups written in styles of their own (a review wrote them as users do): a DataLoader whose
collate_fn builds dict batches or casts the pixels, labels shaped (N, 1), label smoothing, a warm-up given
as scheduler=, slow but healthy rates, a hand-written SGD step, a loss rebuilt from .item(), F.dropout, a
per-epoch schedule stepped every batch. Healthy ones draw no warning; each fault is named with its fix."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nnrecipe.checks.doctor import doctor


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    return x[:400], y[:400], x[400:600], y[400:600]


def mlp(out: int = 10, hidden: int = 64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, out))


class FunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x):
        return self.b(F.dropout(F.relu(self.a(x)), 0.5))  # F.dropout's training=True: whatever the mode


def fired(diagnosis):
    return [v for v in diagnosis if v.status in ("warn", "fail", "error")]


CE = nn.CrossEntropyLoss()


def dict_loader(x, y):
    def collate(items):
        return {"pixels": torch.stack([i[0] for i in items]), "label": torch.stack([i[1] for i in items])}
    return DataLoader(TensorDataset(x, y), batch_size=32, collate_fn=collate)


def test_a_step_written_for_the_dict_batches_of_its_collate_fn_is_fed_them(digits):
    x, y, _, _ = digits
    model = mlp()

    def step(model, opt, batch):
        opt.zero_grad()
        loss = CE(model(batch["pixels"]), batch["label"])
        loss.backward()
        opt.step()
        return loss

    d = doctor(model, dict_loader(x, y), train_step=step, loss_fn=CE,
               optimizer=torch.optim.Adam(model.parameters(), 1e-3), checks=["lint", "C1", "C2", "C3"])
    assert fired(d) == []

    def no_zero_grad(model, opt, batch):
        loss = CE(model(batch["pixels"]), batch["label"])
        loss.backward()
        opt.step()
        return loss

    d = doctor(model, dict_loader(x, y), train_step=no_zero_grad, loss_fn=CE,
               optimizer=torch.optim.Adam(model.parameters(), 1e-3), checks=["lint"])
    assert [v.fault for v in fired(d)] == ["missing-zero-grad"]


def test_a_collate_fn_that_casts_the_pixels_is_part_of_the_input_pipeline(digits):
    x, y, _, _ = digits
    raw = TensorDataset((x * 16).to(torch.uint8), y)  # stored as bytes; the collate_fn makes them floats
    loader = DataLoader(raw, batch_size=32, collate_fn=lambda b: (torch.stack([i[0] for i in b]).float() / 16,
                                                                  torch.stack([i[1] for i in b])))
    model = mlp()
    d = doctor(model, loader, loss_fn=CE, optimizer=torch.optim.Adam(model.parameters(), 1e-3),
               checks=["data", "lint", "C1", "C2"])
    assert fired(d) == []


@pytest.mark.parametrize("case", ["ce", "bce_flat_outputs", "bce_flat_targets"])
def test_targets_of_a_shape_the_classification_loss_raises_on_are_named_by_lint(digits, case):
    x, y, _, _ = digits
    if case == "ce":
        model, loss, target, fix = mlp(), CE, y[:, None], "y.squeeze(-1) with y.long()"
    else:
        flat = case == "bce_flat_outputs"
        model = nn.Sequential(mlp(1), nn.Flatten(0)) if flat else mlp(1)
        binary = (y > 4).float()
        loss, target = nn.BCEWithLogitsLoss(), binary[:, None] if flat else binary
        fix = "y.squeeze(-1)" if flat else "y.unsqueeze(-1)"
    d = doctor(model, (x, target), loss_fn=loss, optimizer=torch.optim.Adam(model.parameters(), 1e-3))
    assert not [v for v in d if v.status == "error"]  # the checks the loss breaks say so instead of crashing
    [v] = [v for v in d if v.id == "lint" and v.status == "fail"]
    assert v.name == "target shape" and v.fault == "shape-mismatch" and fix in v.fix
    assert d.faults()[0] == "shape-mismatch"


def test_label_smoothing_is_fitted_down_to_its_floor(digits):
    x, y, _, _ = digits
    model = mlp()
    d = doctor(model, (x, y), loss_fn=nn.CrossEntropyLoss(label_smoothing=0.1),
               optimizer=torch.optim.Adam(model.parameters(), 1e-3), checks=["C1"])
    [c1] = list(d)
    assert c1.status == "pass" and c1.evidence["loss_floor"] == pytest.approx(0.5003, abs=1e-3)


def test_a_warm_up_given_as_scheduler_is_fitted_at_its_base_rate(digits):
    x, y, _, _ = digits
    model = mlp()
    opt = torch.optim.AdamW(model.parameters(), 2e-3)
    warm_up = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20))
    [c1] = list(doctor(model, (x, y), loss_fn=CE, optimizer=opt, scheduler=warm_up, checks=["C1"]))
    assert c1.status == "pass" and c1.evidence["lr"] == pytest.approx(2e-3)


def test_a_slow_healthy_rate_gets_more_steps_and_a_stalled_one_does_not(digits):
    x, y, _, _ = digits
    model = mlp()
    [slow] = list(doctor(model, (x, y), loss_fn=CE, optimizer=torch.optim.AdamW(model.parameters(), 1e-4),
                         checks=["C1"]))
    assert slow.status == "pass" and 1000 < slow.evidence["steps"] <= 4000
    [stalled] = list(doctor(model, (x, y), loss_fn=CE, optimizer=torch.optim.Adam(model.parameters(), 1e-7),
                            checks=["C1"]))
    assert stalled.status == "fail" and stalled.evidence["steps"] == 1000


def test_a_binary_batch_every_row_right_with_the_loss_still_falling_is_fitted(digits):
    x, y, _, _ = digits
    model = mlp(1, hidden=16)
    [c1] = list(doctor(model, (x, (y > 4).float()[:, None]), loss_fn=nn.BCEWithLogitsLoss(),
                       optimizer=torch.optim.Adam(model.parameters(), 1e-3), checks=["C1"]))
    assert c1.status == "pass"


def sgd_step(clear: bool):
    def step(model, opt, batch):
        xb, yb = batch
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
                if clear:
                    p.grad = None
        return loss
    return step


def test_a_hand_written_sgd_step_without_an_optimizer(digits):
    x, y, _, _ = digits
    d = doctor(mlp(), (x, y), train_step=sgd_step(clear=True), loss_fn=CE, checks=["lint"])
    assert fired(d) == []  # it trains as written: no optimizer of the caller's to step
    d = doctor(mlp(), (x, y), train_step=sgd_step(clear=False), loss_fn=CE, checks=["lint"])
    [v] = fired(d)
    assert v.fault == "missing-zero-grad"


def test_a_loss_rebuilt_from_item_is_a_cut_graph_not_a_step_before_backward(digits):
    x, y, _, _ = digits
    model = mlp()

    def step(model, opt, batch):
        xb, yb = batch
        opt.zero_grad()
        loss = torch.tensor(CE(model(xb), yb).item(), requires_grad=True)
        loss.backward()
        opt.step()
        return loss

    d = doctor(model, (x, y), train_step=step, loss_fn=CE, optimizer=torch.optim.Adam(model.parameters(), 1e-3),
               checks=["lint"])
    [v] = fired(d)
    assert v.fault == "frozen-layer" and ".item()" in v.fix and "before optimizer.step" not in v.fix


def test_f_dropout_that_ignores_eval_mode_gets_the_fix_that_switches_it_off(digits):
    x, y, _, _ = digits


    def evaluate(model, x):
        model.eval()
        with torch.no_grad():
            return model(x)

    torch.manual_seed(0)
    model = FunctionalDropout()
    d = doctor(model, (x, y), loss_fn=CE, optimizer=torch.optim.Adam(model.parameters(), 1e-3), evaluate=evaluate,
               checks=["lint"])
    [v] = fired(d)
    assert v.fault == "eval-in-train-mode" and "training=self.training" in v.fix


def test_a_per_epoch_schedule_stepped_every_batch_is_named(digits):
    x, y, xv, yv = digits
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9)
    halving = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)

    def step(model, o, batch):
        xb, yb = batch
        o.zero_grad()
        loss = CE(model(xb), yb)
        loss.backward()
        o.step()
        halving.step()
        return loss

    d = doctor(model, (x, y), train_step=step, loss_fn=CE, optimizer=opt, val_data=(xv, yv),
               checks=["lint", "C1", "C3", "C8"])
    assert d.faults()[0] == "scheduler-misuse"
    for v in fired(d):  # a symptom explained by another symptom cites the cause once
        assert v.fix.count("first fix the cause") <= 1


def test_a_random_collate_fn_such_as_mixup_leaves_the_checks_on_the_datasets_labels(digits):
    from torch.utils.data import default_collate

    x, y, _, _ = digits

    def mixup(items):  # torchvision's recipe: mixed inputs and soft targets, random on every call
        xb, yb = default_collate(items)
        perm, hot = torch.randperm(len(yb)), F.one_hot(yb, 10).float()
        return 0.7 * xb + 0.3 * xb[perm], 0.7 * hot + 0.3 * hot[perm]

    model = mlp()
    d = doctor(model, DataLoader(TensorDataset(x, y), 32, shuffle=True, collate_fn=mixup), loss_fn=CE,
               optimizer=torch.optim.Adam(model.parameters(), 1e-3), checks=["data", "lint", "C1", "C2"])
    assert fired(d) == [] and not [v for v in d if v.id == "D4" and v.status == "skipped"]


def test_a_forward_that_takes_the_whole_dict_is_told_to_name_its_keys(digits):
    from nnrecipe.errors import ConfigError

    x, y, _, _ = digits

    class WholeBatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def forward(self, batch):
            return self.net(batch["pixels"])

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return {"pixels": x[i], "label": y[i]}

    model = WholeBatch()
    with pytest.raises(ConfigError, match=r"inputs 'pixels' do not match the model's forward\(batch\)"):
        doctor(model, Rows(), loss_fn=CE, optimizer=torch.optim.Adam(model.parameters(), 1e-3))


def test_shapes_a_train_step_adapts_itself_are_not_a_lint_failure(digits):
    x, y, _, _ = digits
    model, bce = mlp(1), nn.BCEWithLogitsLoss()

    def step(model, opt, batch):  # outputs (N, 1), targets (N,): the step squeezes them
        xb, yb = batch
        opt.zero_grad()
        loss = bce(model(xb).squeeze(-1), yb)
        loss.backward()
        opt.step()
        return loss

    d = doctor(model, (x, (y > 4).float()), train_step=step, loss_fn=bce,
               optimizer=torch.optim.Adam(model.parameters(), 1e-3), checks=["lint", "C1", "C2"])
    assert fired(d) == []
    [v] = [v for v in doctor(mlp(), (x, y.float()), loss_fn=CE, checks=["lint"]) if v.status == "fail"]
    assert v.name == "target shape" and v.fix == "pass the class indices as int64: y.long()"


def test_a_padding_collate_and_an_eval_that_restores_the_mode_are_read_as_written(digits):
    from torch.nn.utils.rnn import pad_sequence

    x, y, _, _ = digits
    lengths = torch.randint(3, 40, (len(y),), generator=torch.Generator().manual_seed(0))
    rows = [(torch.randint(1, 50, (int(n),), generator=torch.Generator().manual_seed(i)), y[i] % 2)
            for i, n in enumerate(lengths)]

    def pad(items):  # each batch padded to its own longest row, as text pipelines do
        return pad_sequence([t for t, _ in items], batch_first=True), torch.stack([c for _, c in items])

    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.out = nn.Embedding(50, 8, padding_idx=0), nn.Linear(8, 2)

        def forward(self, ids):
            return self.out(self.embed(ids).mean(1))

    torch.manual_seed(0)
    model = Bag()
    d = doctor(model, DataLoader(rows, batch_size=16, collate_fn=pad), loss_fn=CE,
               optimizer=torch.optim.Adam(model.parameters(), 1e-2), checks=["lint", "C2"])
    assert not [v for v in d if v.status in ("fail", "error")]

    def evaluate(model, x):  # eval mode for the forward, the caller's mode restored after it
        was = model.training
        model.eval()
        with torch.no_grad():
            out = model(x)
        model.train(was)
        return out

    torch.manual_seed(0)
    model = FunctionalDropout()
    [v] = fired(doctor(model, (x, y), loss_fn=CE, evaluate=evaluate, checks=["lint"]))
    assert "training=self.training" in v.fix


class Stream(torch.utils.data.IterableDataset):
    """Rows (or, with `batch`, dict batches) read as a stream: no len(), no index."""

    def __init__(self, x, y, batch: int | None = None):
        self.x, self.y, self.batch = x, y, batch

    def __iter__(self):
        if self.batch is None:
            yield from zip(self.x, self.y)
        else:
            for i in range(0, len(self.x), self.batch):
                yield {"pixels": self.x[i:i + self.batch], "label": self.y[i:i + self.batch]}


@pytest.mark.parametrize("batched", [False, True])
def test_an_iterable_dataset_is_read_from_its_first_rows(digits, batched):
    x, y, _, _ = digits
    model = mlp()
    loader = DataLoader(Stream(x, y, 50), batch_size=None) if batched else DataLoader(Stream(x, y), batch_size=32)
    d = doctor(model, loader, loss_fn=CE, optimizer=torch.optim.Adam(model.parameters(), 1e-3),
               checks=["data", "lint", "C1", "C2"])
    assert fired(d) == []
    assert {v.id for v in d if v.status == "pass"} >= {"C1", "C2"}
    bad = Stream(x, torch.full_like(y, 3))  # one class in every row: the data checks read the stream's rows
    d = doctor(mlp(), DataLoader(bad, batch_size=32), loss_fn=CE, checks=["data"])
    assert [(v.id, v.name, v.status) for v in fired(d)] == [("D4", "class imbalance", "fail")]  # no leak, no C2
    assert "shuffle" in fired(d)[0].fix
    d = doctor(mlp(), DataLoader(bad, batch_size=32), loss_fn=CE, checks=["C2", "C3", "C4"])
    assert {v.status for v in d} == {"skipped"}  # a trivial fit is no finding (C2's prior loss is 0)


def test_a_binary_sample_without_positives_is_a_warning_not_a_leak():
    torch.manual_seed(0)
    x, y = torch.randn(300, 5), torch.zeros(300, 1)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))
    d = doctor(model, (x, y), loss_fn=nn.BCEWithLogitsLoss(), checks=["data", "C2"])
    assert [(v.id, v.name, v.status) for v in fired(d)] == [("D4", "class imbalance", "warn")]


@pytest.mark.parametrize("loss", ["cross_entropy", nn.CrossEntropyLoss])
def test_a_loss_named_or_given_as_its_class_is_a_named_error_not_six_crashes(digits, loss):
    from nnrecipe.errors import ConfigError

    x, y, _, _ = digits
    with pytest.raises(ConfigError, match=r"loss_fn=.* not a loss; pass a torch loss"):
        doctor(mlp(), (x, y), loss_fn=loss)
