"""The doctor on setups written in other styles than nnrecipe's own (a review's panel of 46 cases): (N,)
outputs, DataLoaders of dict rows, dict outputs under the caller's own keys, labels or shapes that break
the loss, standardized sparse pixels, BatchNorm at a tiny rate, a trunk under torch.no_grad(), inputs at
1000x their scale, a LayerNorm regression at its default init. A valid setup gets no error verdict; a
fault is named by its family, and the checks it breaks say so instead of crashing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, Dataset

import nnrecipe


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    d = load_digits()
    return torch.tensor(d.data / 16.0, dtype=torch.float32), torch.tensor(d.target)


def _no_errors(diagnosis) -> None:
    errors = [(v.id, v.summary) for v in diagnosis if v.status == "error"]
    assert not errors, errors


def test_binary_outputs_and_targets_of_shape_n_get_their_loss_at_init_judged():
    torch.manual_seed(0)
    x = torch.randn(400, 5)
    y = (x[:, 0] > 0).float()  # (N,)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1), nn.Flatten(0))  # (N,) outputs
    d = nnrecipe.doctor(model, (x, y), loss_fn=nn.BCEWithLogitsLoss(), checks=["C2"])
    (c2,) = d.by_id("C2")
    assert c2.status == "pass", c2.summary
    assert c2.evidence["expected"] == pytest.approx(0.693, abs=0.01)  # the prior's entropy, balanced classes


class _DictRows(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "target": self.y[i]}


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.m = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x)


@pytest.mark.parametrize("sort", [False, True])
def test_a_dataloader_of_dict_rows_has_its_batch_order_read_from_the_target_key(sort):
    torch.manual_seed(0)
    x = torch.randn(300, 4)
    y = (x[:, 0] > 0).long()
    if sort:
        order = torch.argsort(y, stable=True)
        x, y = x[order], y[order]
    loader = DataLoader(_DictRows(x, y), batch_size=16, shuffle=not sort)
    d = nnrecipe.doctor(_Net(), loader, loss_fn=nn.CrossEntropyLoss(), checks=["C8"])
    _no_errors(d)
    order_verdicts = [v for v in d.by_id("C8") if v.name in ("batch order", "batches sorted by label")]
    assert order_verdicts, [v.name for v in d]
    assert order_verdicts[0].status == ("fail" if sort else "pass")


class _TwoHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.cls, self.dec = nn.Linear(16, 2), nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.enc(x)
        return {"cls": self.cls(h), "recon": self.dec(h)}


def _two_head_step(model, opt, batch):
    x, y = batch
    opt.zero_grad()
    out = model(x)
    loss = F.cross_entropy(out["cls"], y) + 0.1 * F.mse_loss(out["recon"], x)
    loss.backward()
    opt.step()
    return loss


def test_dict_outputs_under_other_keys_skip_the_checks_that_need_the_prediction_with_the_fix():
    torch.manual_seed(0)
    x = torch.randn(400, 8)
    y = (x[:, 0] + x[:, 1] > 0).long()
    m = _TwoHead()
    d = nnrecipe.doctor(m, (x, y), train_step=_two_head_step, optimizer=torch.optim.Adam(m.parameters(), 1e-3))
    _no_errors(d)
    assert not d.failed and d.faults() == []
    (c3,) = d.by_id("C3")
    assert c3.status == "skipped" and c3.name == "input-independent baseline"
    assert "'cls', 'recon'" in c3.summary and "logits" in c3.summary  # what to name the prediction
    assert d.by_id("C1")[0].status == "pass"  # the caller's step still trains: C1 judges its loss


def test_labels_outside_the_outputs_are_named_and_the_checks_they_break_say_so():
    torch.manual_seed(0)
    x = torch.randn(300, 6)
    s = x @ torch.tensor([1.0, -1.0, 0.5, 0.5, 1.0, -0.5])
    y = torch.bucketize(s, torch.tensor([-0.7, 0.7])) + 1  # 1..3 for 3 outputs
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    d = nnrecipe.doctor(model, (x, y), loss_fn=nn.CrossEntropyLoss())
    _no_errors(d)
    assert d.faults() == ["label-range"]
    broken = [v for v in d if v.status == "skipped" and "fails lint first" in v.summary]
    assert {v.id for v in broken} >= {"C1", "C3"}, [(v.id, v.status, v.summary[:80]) for v in d]


def test_outputs_n_by_1_against_targets_n_are_blamed_on_the_shapes_not_the_rate():
    d = load_diabetes()
    x = torch.tensor(StandardScaler().fit_transform(d.data), dtype=torch.float32)
    y = torch.tensor((d.target - d.target.mean()) / d.target.std(), dtype=torch.float32)  # (N,)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))  # (N, 1)
    with pytest.warns(UserWarning, match="target size"):
        diag = nnrecipe.doctor(model, (x[:353], y[:353]), loss_fn=nn.MSELoss(), val_data=(x[353:], y[353:]),
                               optimizer=torch.optim.Adam(model.parameters(), 1e-3))
    assert diag.faults() == ["shape-mismatch"]
    assert "lr-too-low" not in {f for v in diag for f in v.consistent_with[:1]}


def test_standardized_sparse_pixels_are_not_unnormalized_but_raw_features_still_are():
    digits = load_digits()
    x = torch.tensor(StandardScaler().fit_transform(digits.data), dtype=torch.float32)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    (d8,) = nnrecipe.doctor(model, (x, torch.tensor(digits.target)), loss_fn=nn.CrossEntropyLoss(),
                            checks=["data"]).by_id("D8")
    assert d8.status == "pass", d8.summary
    assert d8.evidence["constant_features"] >= 1  # blank or nearly blank pixels: one value on the sampled rows
    cancer = load_breast_cancer()
    raw = torch.tensor(cancer.data, dtype=torch.float32)
    model = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2))
    (d8,) = nnrecipe.doctor(model, (raw, torch.tensor(cancer.target)), loss_fn=nn.CrossEntropyLoss(),
                            checks=["data"]).by_id("D8")
    assert d8.status == "fail"


@pytest.mark.parametrize("seed", [0, 1])
def test_batchnorm_at_a_tiny_rate_is_too_low_in_every_check(seed):
    x, y = _digits()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))
    d = nnrecipe.doctor(model, (x[:1400], y[:1400]), loss_fn=nn.CrossEntropyLoss(), seed=seed,
                        optimizer=torch.optim.Adam(model.parameters(), lr=1e-7), val_data=(x[1400:], y[1400:]),
                        checks=["C7", "C8"])
    assert "lr-too-low" in d.faults() and "lr-too-high" not in d.faults(), [(v.id, v.name, v.fault) for v in d]
    healthy = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))
    d = nnrecipe.doctor(healthy, (x[:1400], y[:1400]), loss_fn=nn.CrossEntropyLoss(), seed=seed,
                        optimizer=torch.optim.Adam(healthy.parameters(), lr=1e-3), val_data=(x[1400:], y[1400:]),
                        checks=["C8"])
    assert d.faults() == []


class _NoGradTrunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.h = nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z = F.relu(self.a(x))
        return self.h(z)


def test_a_trunk_under_no_grad_is_a_layer_cut_from_the_graph_not_a_wrong_backward():
    x, y = _digits()
    torch.manual_seed(0)
    m = _NoGradTrunk()
    d = nnrecipe.doctor(m, (x, y), loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(m.parameters(), 1e-3),
                        checks=["C5", "C7"])
    (c5,) = d.by_id("C5")
    assert c5.status == "fail" and c5.fault == "frozen-layer"
    assert "a.weight" in c5.evidence["cut_from_the_graph"] and "no_grad" in c5.fix
    assert "wrong-custom-backward" not in d.faults()


def test_inputs_at_1000x_learn_the_metric_and_c3_says_overconfident_not_misaligned():
    x, y = _digits()
    x = (x * 1000).view(-1, 1, 8, 8)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10))
    d = nnrecipe.doctor(m, (x[:1400], y[:1400]), loss_fn=nn.CrossEntropyLoss(), val_data=(x[1400:], y[1400:]),
                        optimizer=torch.optim.Adam(m.parameters(), 1e-3), checks=["C3"])
    (c3,) = d.by_id("C3")
    assert c3.status == "warn" and c3.fault != "labels-misaligned", (c3.status, c3.fault, c3.summary)
    assert "confident" in c3.summary and c3.evidence["gain_of_room"] > 0.5


class _LayerNormRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.norm, self.out = nn.Linear(10, 64), nn.LayerNorm(64), nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.gelu(self.norm(self.inp(x))))


def test_a_layernorm_regression_at_its_default_init_passes_c2_and_a_raw_target_does_not():
    d = load_diabetes()
    x = torch.tensor(StandardScaler().fit_transform(d.data), dtype=torch.float32)
    standardized = torch.tensor((d.target - d.target.mean()) / d.target.std(), dtype=torch.float32)[:, None]
    raw = torch.tensor(d.target, dtype=torch.float32)[:, None]
    for seed in range(10):
        torch.manual_seed(seed)
        (c2,) = nnrecipe.doctor(_LayerNormRegression(), (x, standardized), loss_fn=nn.MSELoss(),
                                checks=["C2"]).by_id("C2")
        assert c2.status == "pass", (seed, c2.summary)
    torch.manual_seed(0)
    (c2,) = nnrecipe.doctor(_LayerNormRegression(), (x, raw), loss_fn=nn.MSELoss(), checks=["C2"]).by_id("C2")
    assert c2.status == "fail" and "standardize the target" in c2.fix


def test_c2_on_a_bias_free_output_layer_says_to_give_it_a_bias():
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=2000, n_features=12, n_informative=6, weights=[0.92], flip_y=0.0,
                               random_state=0)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)[:, None]
    fixes = {}
    for bias in (False, True):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(12, 32), nn.Tanh(), nn.Linear(32, 1, bias=bias))
        (c2,) = nnrecipe.doctor(m, (x, y), loss_fn=nn.BCEWithLogitsLoss(), checks=["C2"]).by_id("C2")
        assert c2.status in ("warn", "fail")  # a zero-mean output on a 1:11 target: M6's case either way
        fixes[bias] = c2.fix
    assert "bias=True" in fixes[False] and "bias=True" not in fixes[True]


class _AuxHead(nn.Module):
    def __init__(self, dead: bool = False, as_tuple: bool = False):
        super().__init__()
        self.trunk, self.cls, self.aux = nn.Linear(13, 64), nn.Linear(64, 3), nn.Linear(64, 1)
        self.as_tuple = as_tuple
        if dead:
            nn.init.constant_(self.trunk.bias, -8.0)

    def forward(self, x: torch.Tensor):
        h = F.relu(self.trunk(x))
        return (self.cls(h), self.aux(h)) if self.as_tuple else {"logits": self.cls(h), "aux": self.aux(h)}


@pytest.mark.parametrize("as_tuple", [False, True])
def test_an_auxiliary_head_the_loss_does_not_read_is_no_frozen_layer(as_tuple):
    from sklearn.datasets import load_wine

    wine = load_wine()
    x = torch.tensor(StandardScaler().fit_transform(wine.data), dtype=torch.float32)
    y = torch.tensor(wine.target)
    torch.manual_seed(0)
    m = _AuxHead(as_tuple=as_tuple)
    d = nnrecipe.doctor(m, (x, y), loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(m.parameters(), 1e-3))
    assert d.faults() == [], [(v.id, v.name, v.summary[:80]) for v in d if v.status in ("warn", "fail")]
    torch.manual_seed(0)
    m = _AuxHead(dead=True, as_tuple=as_tuple)  # a dead trunk is still named, and not as a frozen head
    d = nnrecipe.doctor(m, (x, y), loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(m.parameters(), 1e-3))
    assert d.faults() == ["dying-relu"]


class _NormalizesItsInput(nn.Module):  # a custom layer that standardizes its input without a gradient
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-6)


def test_an_input_cut_from_the_graph_alone_passes_c5():
    x, y = _digits()
    torch.manual_seed(0)
    m = nn.Sequential(_NormalizesItsInput(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    (c5,) = nnrecipe.doctor(m, (x, y), loss_fn=nn.CrossEntropyLoss(), checks=["C5"]).by_id("C5")
    assert c5.status == "pass" and c5.evidence["inputs_cut_from_the_graph"] == ["input[0]"]


def test_the_callers_own_crash_is_theirs_even_when_lint_fails():
    x, y = _digits()
    m = nn.Sequential(nn.Linear(64, 10), nn.Softmax(dim=1))  # lint fails: softmax before the loss

    def step(model, opt, batch):
        raise KeyError("a bug in my step")

    d = nnrecipe.doctor(m, (x, y), loss_fn=nn.CrossEntropyLoss(), train_step=step,
                        optimizer=torch.optim.Adam(m.parameters(), 1e-3), checks=["lint", "C1"])
    (c1,) = d.by_id("C1")
    assert c1.status == "error" and "your code raised" in c1.summary


def test_inputs_that_say_little_of_the_target_warn_and_name_no_fault():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(600, 8, generator=gen)
    y = (torch.rand(600, generator=gen) < 0.4).long()  # labels independent of the inputs: a weak-signal table
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    d = nnrecipe.doctor(m, (x[:500], y[:500]), loss_fn=nn.CrossEntropyLoss(), val_data=(x[500:], y[500:]),
                        optimizer=torch.optim.Adam(m.parameters(), 1e-3), checks=["C3", "C4"])
    c3, c4 = d.by_id("C3")[0], d.by_id("C4")[0]
    assert c3.status == "warn" and c4.status == "warn" and "say little of the target" in c3.summary
    assert not d.failed
