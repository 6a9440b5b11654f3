"""T12 distillation and T13 adversarial training as steps (steps/distill.py, steps/adversarial.py): the soft
loss is a divergence (zero when student and teacher agree, float64 gradcheck), a student of an oracle
teacher beats the same student on noisy labels alone, the teacher stays frozen and unwrapped, PGD stays in
its ball and raises the loss, FGM moves each row by epsilon (inputs and embeddings), PGD training raises
the accuracy under PGD over clean training, and a step built on the augmentation augments once a batch."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
import torch
from torch import nn

from nnrecipe import Adversarial, ConfigError, Distillation, TrainConfig, Trainer
from nnrecipe.steps import Batch, Step, robustness
from nnrecipe.steps.adversarial import perturb
from nnrecipe.steps.distill import soft_loss


def accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    return float((out.argmax(1) == y).float().mean())


def config(**kw: Any) -> TrainConfig:
    return TrainConfig(**{"device": "cpu", "batch_size": 32, "epochs": 30, "patience": None, "lr": 3e-3, **kw})


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)


# ---------------------------------------------------------------- T12
@pytest.mark.parametrize("softening,width", [("softmax", 3), ("sigmoid", 1), ("sigmoid", 4), ("none", 1)])
def test_the_soft_loss_is_zero_when_the_student_agrees_and_positive_otherwise(softening: str, width: int):
    g = torch.Generator().manual_seed(0)
    t, s = torch.randn(8, width, generator=g), torch.randn(8, width, generator=g)
    assert float(soft_loss(t.clone(), t, 3.0, softening)) == pytest.approx(0.0, abs=1e-6)
    assert float(soft_loss(s, t, 3.0, softening)) > 0.01


@pytest.mark.parametrize("softening", ["softmax", "sigmoid"])
def test_the_soft_loss_has_the_gradient_its_formula_says(softening: str):
    g = torch.Generator().manual_seed(1)
    s = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 3, generator=g, dtype=torch.float64)
    # soft_loss computes in float32 like the step's losses: check its float64 twin's gradient, then that the
    # float32 loss equals it
    def f64(x: torch.Tensor) -> torch.Tensor:
        if softening == "softmax":
            p = torch.softmax(t / 2.0, -1)
            return (p * (torch.log(p) - torch.log_softmax(x / 2.0, -1))).sum(-1).mean() * 4.0
        q = torch.sigmoid(t / 2.0)
        ps = torch.sigmoid(x / 2.0)
        kl = q * (torch.log(q) - torch.log(ps)) + (1 - q) * (torch.log(1 - q) - torch.log(1 - ps))
        return kl.sum(-1).mean() * 4.0
    assert torch.autograd.gradcheck(f64, (s,))
    assert float(soft_loss(s.detach(), t, 2.0, softening)) == pytest.approx(float(f64(s.detach())), rel=1e-5)
    s32 = s.detach().float().requires_grad_(True)
    soft_loss(s32, t.float(), 2.0, softening).backward()
    expected = torch.autograd.grad(f64(s), s)[0]
    assert torch.allclose(s32.grad.double(), expected, atol=1e-5)


class Oracle(nn.Module):
    """A teacher that knows the task: the logits of the true rule, as a trained teacher approximates it."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x @ self.w
        return torch.stack([-z, z], dim=1)


def test_a_student_of_a_good_teacher_beats_the_same_student_on_noisy_labels_alone():
    # Hinton et al.'s soft targets carry what the noisy hard labels blur: the student learns the rule from few rows
    gains = []
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(10, generator=g)
        x = torch.randn(2300, 10, generator=g)
        clean = (x @ w > 0).long()
        y = torch.where(torch.rand(2300, generator=g) < 0.3, 1 - clean, clean)  # 30% of the labels flipped
        teacher = Oracle(w)
        before = copy.deepcopy(teacher.state_dict())
        scores = []
        for step in (None, Distillation(teacher, temperature=2.0, alpha=0.1)):
            torch.manual_seed(seed)
            student = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
            Trainer(student, nn.CrossEntropyLoss(), (x[:200], y[:200]), (x[200:300], y[200:300]),
                    config(seed=seed, patience=5, epochs=60), step=step).fit()
            scores.append(accuracy(student(x[300:]), clean[300:]))
        assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())  # the teacher is frozen
        assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
        gains.append(scores[1] - scores[0])
    assert min(gains) > 0.02, gains


def test_distillation_reads_the_teacher_inside_a_data_parallel_wrapper_and_refuses_other_shapes():
    teacher = nn.Linear(4, 3)
    step = Distillation(nn.DataParallel(teacher))
    assert step.teacher is teacher  # unwrapped: a frozen teacher needs no gradient synchronisation
    bad = Distillation(nn.Linear(4, 2), loss_fn=nn.CrossEntropyLoss())
    with pytest.raises(ConfigError) as e:
        bad.loss(nn.Linear(4, 3), Batch((torch.randn(5, 4),), torch.zeros(5, dtype=torch.long)))
    assert str(e.value) == ("the teacher's outputs have shape (5, 2), the student's (5, 3): distil between models of "
                            "one task with the same classes")
    with pytest.raises(ConfigError) as e:
        Distillation(teacher, alpha=1.5)
    assert str(e.value) == ("distillation alpha=1.5 is not allowed; choose the weight of the labels' loss in [0, 1] "
                            "(0: the teacher alone, 1: the labels alone)")


# ---------------------------------------------------------------- T13
def _model(seed: int = 0, d: int = 6) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, 2))


def _loss_of(out: Any, b: Batch) -> torch.Tensor:
    return nn.functional.cross_entropy(out, b.target)


def test_pgd_stays_in_its_ball_raises_the_loss_and_leaves_the_gradients_alone():
    model, g = _model(), torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 6, generator=g), torch.randint(0, 2, (32,), generator=g)
    grads = [torch.full_like(p, 7.0) for p in model.parameters()]
    for p, gr in zip(model.parameters(), grads):
        p.grad = gr.clone()
    batch = Batch((x,), y)
    moved, _ = perturb(model, batch, _loss_of, "pgd", 0.2, steps=10, generator=g)
    assert float((moved.inputs[0] - x).abs().max()) <= 0.2 + 1e-6
    with torch.no_grad():
        assert float(_loss_of(model(moved.inputs[0]), batch)) > float(_loss_of(model(x), batch)) + 0.01
    assert all(torch.equal(p.grad, gr) for p, gr in zip(model.parameters(), grads))


class Embedded(nn.Module):
    """A numeric input and a categorical one through an embedding, like a table's model."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.out = nn.Embedding(5, 3), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([x, self.emb(codes)], dim=1))


def test_fgm_moves_each_row_by_epsilon_in_the_inputs_and_in_the_embeddings():
    model, g = Embedded(), torch.Generator().manual_seed(0)
    x, codes, y = torch.randn(16, 3, generator=g), torch.randint(0, 5, (16,), generator=g), torch.randint(0, 2, (16,))
    moved, deltas = perturb(model, Batch((x, codes), y), _loss_of, "fgm", 0.5, embeddings=True)
    assert torch.allclose((moved.inputs[0] - x).norm(dim=1), torch.full((16,), 0.5), atol=1e-5)
    assert torch.equal(moved.inputs[1], codes)  # the category codes themselves never move
    (shift,) = deltas.values()
    assert shift.shape == (16, 3) and torch.allclose(shift.norm(dim=1), torch.full((16,), 0.5), atol=1e-5)
    step = Adversarial("fgm", 0.5, loss_fn=nn.CrossEntropyLoss())
    total, _ = step.loss(model, Batch((x, codes), y))
    clean, _ = Step(nn.CrossEntropyLoss()).loss(model, Batch((x, codes), y))
    assert float(total.detach()) > float(clean.detach())  # the adversarial half is worse than the clean half


def test_pgd_training_raises_the_accuracy_under_pgd_over_clean_training():
    # 3 of 30 columns decide the label: a clean network leans on the 27 noise columns too, which an attacker
    # in the L-infinity ball moves all at once; PGD training (Madry et al.) learns to ignore them
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(1600, 30, generator=g)
        y = (x[:, :3].sum(1) > 0).long()
        robust = []
        for step in (None, Adversarial("pgd", 0.2, steps=5)):
            model = _model(seed, 30)
            Trainer(model, nn.CrossEntropyLoss(), (x[:600], y[:600]), None,
                    config(epochs=25, batch_size=64, seed=seed), step=step).fit()
            found = robustness(model, [(x[600:], y[600:])], lambda o, t: {"accuracy": accuracy(o, t)},
                               nn.CrossEntropyLoss(), 0.2, seed=0)
            assert found["pgd"]["accuracy"] <= found["fgsm"]["accuracy"] + 0.01 <= found["clean"]["accuracy"] + 0.02
            robust.append(found["pgd"]["accuracy"])
        assert robust[1] > robust[0] + 0.02, (seed, robust)


class Counting(Step):
    """A base step that counts the batches it transformed (as the image augmentation counts them)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def transform(self, batch: Batch) -> Batch:
        self.seen += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seen = state["seen"]


@pytest.mark.parametrize("make", [lambda base: Adversarial("pgd", 0.1, steps=3, base=base),
                                  lambda base: Distillation(_model(1), base=base)], ids=["adversarial", "distillation"])
def test_a_technique_step_transforms_each_batch_once_by_its_base_and_keeps_its_state(make: Any):
    base = Counting()
    x, y = torch.randn(64, 6), torch.randint(0, 2, (64,))
    trainer = Trainer(_model(), nn.CrossEntropyLoss(), (x, y), None, config(epochs=2, batch_size=16), step=make(base))
    trainer.fit()
    assert trainer.step.base.seen == 8  # 2 epochs of 4 batches: one augmentation per batch, not one per pass
    assert trainer.step.state_dict() == {"seen": 8}  # what the checkpoint keeps


def test_adversarial_settings_are_refused_by_name():
    cases = [(lambda: Adversarial("fgsm"), "adversarial method 'fgsm' is not known; choose one of fgm, pgd"),
             (lambda: Adversarial("pgd", epsilon=0), "adversarial epsilon=0 is not allowed; choose a radius > 0 in "
              "the model's input units (standardised columns: 0.05-0.3)"),
             (lambda: Adversarial("pgd", embeddings=True),
              "embeddings=True goes with method='fgm' (Miyato et al.); PGD perturbs continuous inputs"),
             (lambda: TrainConfig(teacher="runs/a", adversarial="pgd"),
              "teacher='runs/a' and adversarial='pgd' are two training steps; choose one per run (distil first, then "
              "train the student adversarially from its run)")]
    for make, message in cases:
        with pytest.raises(ConfigError) as e:
            make()
        assert str(e.value) == message


class CountingTeacher(nn.Module):
    """A teacher that counts the rows it was asked about."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.net, self.rows = nn.Linear(4, 3), 0

    def forward(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        return self.net(x) + codes.float()


def test_a_primed_teacher_answers_known_rows_from_its_cache_and_new_rows_itself():
    g = torch.Generator().manual_seed(0)
    x, codes = torch.randn(200, 4, generator=g), torch.randint(0, 3, (200, 1), generator=g)
    y = torch.randint(0, 3, (200,), generator=g)
    teacher = CountingTeacher()
    live = Distillation(teacher, loss_fn=nn.CrossEntropyLoss())
    primed = Distillation(teacher, loss_fn=nn.CrossEntropyLoss())
    primed.prime((x[:150], codes[:150]), (x[150:], codes[150:]))
    assert teacher.rows == 200  # once each
    student = nn.Linear(4, 3)

    def model(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return student(a)

    wrapped = nn.Module()
    wrapped.forward = model  # type: ignore[method-assign]
    wrapped.student = student
    rows = torch.tensor([5, 170, 5, 42])  # repeated rows, as oversampling makes them
    batch = Batch((x[rows], codes[rows]), y[rows])
    before = teacher.rows
    assert torch.equal(primed.loss(wrapped, batch)[0], live.loss(wrapped, batch)[0])
    assert teacher.rows == before + 4  # the live step asked the teacher; the primed one did not
    moved = Batch((x[rows] + 0.5, codes[rows]), y[rows])  # rows it never saw: the teacher answers
    assert torch.allclose(primed.loss(wrapped, moved)[0], live.loss(wrapped, moved)[0])
    assert teacher.rows == before + 12
