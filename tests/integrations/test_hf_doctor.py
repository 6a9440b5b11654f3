"""nnrecipe.integrations.transformers.Doctor in a real Hugging Face Trainer run on a tiny randomly
initialised BERT (no download): a learning rate of 0 reported by C1 before training, C7 on the run's own
steps and C8 on its logged curves; softmax before cross-entropy inside the Trainer's compute_loss_func
(invisible to the lint, which sees logits leave the model) reported by C1, which cannot overfit one batch
with it; the healthy twin quiet; stop_on_fail stopping before training."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # transformers' Trainer needs it (transformers[torch])

from nnrecipe import TrainingError  # noqa: E402
from nnrecipe.integrations.transformers import Doctor, history_of  # noqa: E402

# C3-C6 are left out for time: C5's float64 gradient check alone takes ~10 s on this BERT
CHECKS = ["data", "lint", "C2", "C1", "C7", "C8"]


def rows(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Seeded token rows with a learnable rule: label 1 when most tokens are below 50."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (n, 12), generator=g)
    y = ((ids < 50).sum(1) > 6).long()
    return [{"input_ids": ids[i], "attention_mask": torch.ones(12, dtype=torch.long), "labels": y[i]}
            for i in range(n)]


def softmax_then_ce(outputs, labels, num_items_in_batch=None):
    return F.cross_entropy(outputs.logits.softmax(-1), labels)  # the planted fault: softmax before the loss


class Recorder(transformers.TrainerCallback):
    """The logs as the callbacks after the doctor (the reporters: TensorBoard, W&B, ...) receive them."""

    def __init__(self) -> None:
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs or {}))


def train(tmp_path, doctor: Doctor, lr: float = 1e-3, loss=None, *after, smoothing: float = 0.0
          ) -> transformers.Trainer:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=16, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, learning_rate=lr,
                                          num_train_epochs=3, per_device_train_batch_size=16,
                                          logging_strategy="epoch", eval_strategy="epoch", save_strategy="no",
                                          seed=0, disable_tqdm=True, label_smoothing_factor=smoothing)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows(128, 0), eval_dataset=rows(64, 1),
                                   callbacks=[doctor, *after], compute_loss_func=loss)
    trainer.train()
    return trainer


def raised(doctor: Doctor) -> dict[str, str]:
    return {f"{v.id} {v.name}": v.status for v in doctor.diagnosis if v.status in ("warn", "fail", "error")}


def test_the_healthy_twin_is_quiet(tmp_path):
    doctor, recorder = Doctor(CHECKS), Recorder()
    train(tmp_path, doctor, 1e-3, None, recorder)
    assert raised(doctor) == {}
    assert {"lint", "C1", "C2", "C7", "C8"} <= {v.id for v in doctor.diagnosis if v.status == "pass"}
    assert doctor.found["loss_fn"] == ("the model's own loss for single_label_classification (CrossEntropyLoss, "
                                       "read from its config)")
    assert recorder.logs[0]["doctor/failed"] == 0.0 and recorder.logs[0]["doctor/passed"] >= 5  # before training
    assert "train_runtime" in recorder.logs[-1] and recorder.logs[-1]["doctor/failed"] == 0.0  # after it


def test_label_smoothing_of_the_trainer_is_fitted_to_its_floor(tmp_path):
    doctor = Doctor(CHECKS)  # the smoothed loss stops at 0.1985 for two classes at 0.1: C1 failed at 1000 steps
    train(tmp_path, doctor, 1e-3, None, smoothing=0.1)
    assert raised(doctor) == {}
    c1 = next(v for v in doctor.diagnosis if v.id == "C1")
    assert c1.status == "pass" and c1.evidence["loss_floor"] == pytest.approx(0.1985, abs=1e-3)
    assert "label_smoothing=0.1" in doctor.found["loss_fn"]


def test_a_learning_rate_of_zero_is_reported_before_during_and_after(tmp_path):
    doctor = Doctor(CHECKS)
    train(tmp_path, doctor, lr=0.0)
    (c1,) = doctor.diagnosis.by_id("C1")
    assert (c1.status, c1.fault) == ("fail", "lr-too-low")
    during = {v.name: v.status for v in doctor.diagnosis if v.name.endswith("(in training)")}
    assert during["parameters never change (in training)"] == "fail"
    (c8,) = doctor.diagnosis.by_id("C8")
    assert (c8.name, c8.status) == ("learning rate too low", "warn")


def test_softmax_inside_compute_loss_func_is_reported_by_c1(tmp_path):
    doctor = Doctor(CHECKS)
    train(tmp_path, doctor, loss=softmax_then_ce)
    assert doctor.found["loss_fn"] == "the Trainer's compute_loss_func, on the logits"
    (c1,) = doctor.diagnosis.by_id("C1")
    assert c1.status == "fail"
    # softmax then cross-entropy over 2 classes cannot go below -log(e / (e + 1)) = 0.313
    assert c1.evidence["loss_end"] > 0.31


def test_stop_on_fail_raises_before_training(tmp_path):
    with pytest.raises(TrainingError, match=r"^nnrecipe's doctor stopped the run before training: 1 check\(s\) "
                                            r"failed: C1 overfit one batch: .*\(fix: set a learning rate > 0"):
        train(tmp_path, Doctor(["C1"], stop_on_fail=True), lr=0.0)


def test_the_log_history_becomes_epoch_rows():
    history = [{"loss": 1.0, "epoch": 0.5}, {"loss": 0.8, "epoch": 1.0}, {"eval_loss": 0.9, "epoch": 1.0},
               {"loss": 0.6, "epoch": 2.0}, {"eval_loss": 0.7, "epoch": 2.0},
               {"train_runtime": 1.0, "train_loss": 0.7, "epoch": 2.0}]
    assert history_of(history) == [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.9},
                                   {"epoch": 2, "train_loss": 0.6, "val_loss": 0.7}]


def test_one_doctor_in_a_second_train_judges_that_run_alone(tmp_path):
    doctor = Doctor(["C7", "C8"])
    train(tmp_path / "a", doctor, lr=1e-3)
    train(tmp_path / "b", doctor, lr=0.0)  # the second run's fault: nothing moves
    during = {v.name: v.status for v in doctor.diagnosis if v.name.endswith("(in training)")}
    assert during["parameters never change (in training)"] == "fail"  # C7 judged the second run's steps
    (c8,) = doctor.diagnosis.by_id("C8")
    assert c8.evidence["epochs"] == 3  # the second run's curve alone
