"""T17: the gradient noise scale on a planted case with a known answer, the advice within the measured range,
the verdict on scripted measurements, the caller's model and RNG left as they were, and the command."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from nnrecipe.checks.verdict import Verdict
from nnrecipe.errors import ConfigError
from nnrecipe.testing import blobs, breast_cancer_csv
from nnrecipe.checks.batch_size import batch_size_verdict
from nnrecipe.train.batch_size import BatchSizeReport, measure_batch_sizes


def planted(seed: int, noise: float, n: int = 512, d: int = 5) -> tuple[torch.Tensor, torch.Tensor, nn.Module, float]:
    """Linear regression y = x.w* + noise, a seeded nn.Linear under MSELoss, and its exact B_simple: the
    per-row gradients are 2 (x.w + b - y) (x, 1) in closed form, so tr(Sigma) / |G|^2 is computed, not
    estimated (Sigma over the rows, as batches drawn with replacement see them)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = X @ torch.randn(d, 1, generator=g) + noise * torch.randn(n, 1, generator=g)
    torch.manual_seed(seed)
    model = nn.Linear(d, 1)
    with torch.no_grad():
        per_row = 2 * (model(X) - y) * torch.cat([X, torch.ones(n, 1)], 1)  # (n, d + 1)
    mean = per_row.mean(0)
    return X, y, model, float((per_row - mean).square().sum(1).mean() / mean.square().sum())


@pytest.mark.parametrize("noise", [0.5, 8.0])
def test_the_noise_scale_matches_the_exact_value_on_linear_regression(noise):
    for seed in range(3):
        X, y, model, exact = planted(seed, noise)
        report = measure_batch_sizes(model, nn.MSELoss(), X, y, batch_sizes=[8], seed=seed)
        assert report.noise_bound == "estimate"
        assert exact / 1.5 < report.noise_scale < 1.5 * exact, (seed, exact, report.noise_scale)


def test_the_noise_scale_follows_the_noise_in_the_targets():
    scales = [measure_batch_sizes(planted(0, noise)[2], nn.MSELoss(), *planted(0, noise)[:2],
                                  batch_sizes=[8]).noise_scale for noise in (0.5, 8.0)]
    assert scales[1] > 5 * scales[0]  # exact: 7.7 and 92


def test_a_zero_gradient_gives_a_finite_lower_bound():
    X, y, model, _ = planted(0, 1.0)
    solution = torch.linalg.lstsq(torch.cat([X, torch.ones(len(X), 1)], 1), y).solution  # the optimum: G = 0
    with torch.no_grad():
        model.weight.copy_(solution[:-1].T)
        model.bias.copy_(solution[-1])
    report = measure_batch_sizes(model, nn.MSELoss(), X, y, batch_sizes=[8, 16])
    assert report.noise_bound == "at least"
    assert math.isfinite(report.noise_scale) and report.noise_scale > 16


def test_numbers_are_finite_and_the_advice_is_within_the_measured_range(make_mlp):
    X, y = blobs(300, 8, 3, seed=0)
    report = measure_batch_sizes(make_mlp(), nn.CrossEntropyLoss(), X, y, device="cpu", budget=60.0)
    assert report.batch_sizes == [8, 16, 32, 64, 128, 256]  # powers of two up to the rows
    assert all(s > 0 and math.isfinite(s) for s in report.samples_per_s)
    assert report.recommended in report.batch_sizes and report.knee in report.batch_sizes
    assert min(report.relative_time) == 1.0
    out = json.loads(json.dumps(report.to_dict(), allow_nan=False))  # JSON-able, every number finite
    assert out["recommended"] == report.recommended and out["noise_batches"] == [16, 256]
    verdict = batch_size_verdict(report, 32)
    assert verdict.status in ("pass", "warn")
    json.dumps(verdict.to_dict(), allow_nan=False)


def test_the_callers_model_optimizer_and_random_state_are_left_as_they_were(make_mlp, identical):
    X, y = blobs(64, 8, 3, seed=1)
    model = make_mlp(dropout=0.2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(X).sum().backward()
    optimizer.step()  # momentum buffers to keep
    before = copy.deepcopy((model.state_dict(), optimizer.state_dict(), torch.get_rng_state()))
    grads = [p.grad.clone() for p in model.parameters()]
    measure_batch_sizes(model, nn.CrossEntropyLoss(), X, y, optimizer=optimizer, warmup_steps=3)
    identical(before, (model.state_dict(), optimizer.state_dict(), torch.get_rng_state()))
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert model.training


def scripted(noise_scale: float = 50.0) -> BatchSizeReport:
    """A device that saturates near batch 64: samples/s = 1e5 B / (B + 64)."""
    sizes = [8, 16, 32, 64, 128, 256, 512, 1024]
    return BatchSizeReport("cpu", 5000, sizes, [1e5 * b / (b + 64) for b in sizes], noise_scale)


def test_the_advice_on_scripted_measurements():
    report = scripted()
    # time to a given loss ~ (B + 50)(B + 64) / B: least at 64 (sqrt(50 x 64) = 57); 32 is 8% slower, 16 45%
    assert [round(t, 2) for t in report.relative_time[:4]] == [2.29, 1.45, 1.08, 1.0]
    assert report.recommended == 32
    assert report.knee == 512  # 1024 is 6% faster than 512; 512 and 1024 are 11% and 18% faster than 256
    assert batch_size_verdict(report, 32).status == "pass"
    assert batch_size_verdict(report, 128).status == "pass"


def test_the_verdict_warns_on_a_batch_far_above_the_noise_scale():
    verdict = batch_size_verdict(scripted(), 1024)
    assert verdict.status == "warn"
    assert verdict.summary == ("batch 1024 is 20x the gradient noise scale (50 rows): a larger batch saves few steps "
                               "there, and at the start of training it needs about 13.1x the epochs of batch 32 for "
                               "the same loss")
    assert verdict.fix == ("train with --batch-size 32 (TrainConfig(batch_size=32)), the smallest batch predicted "
                           "within 25% of the fastest time to a given loss")
    assert verdict.evidence["noise_scale"] == 50.0 and verdict.evidence["epochs_vs_recommended"] == 13.098
    # a noise scale the rounds could only bound from below does not make the same claim
    bounded = BatchSizeReport("cpu", 5000, [8, 1024], [1e4, 1e5], 50.0, noise_bound="at least")
    assert batch_size_verdict(bounded, 1024).status == "pass"


def test_the_verdict_warns_when_the_device_idles():
    verdict = batch_size_verdict(scripted(), 8)
    assert verdict.status == "warn"
    assert verdict.summary == ("batch 8 keeps the device mostly idle: 11111 samples/s, 12% of the 94118 at batch 1024; "
                               "training to the same loss should take about 2.1x as long as at batch 32")
    # in every run the verdict follows the seeded noise scale alone: a clock reading does not move its status
    quiet = batch_size_verdict(scripted(), 8, judge_speed=False)
    assert quiet.status == "pass" and quiet.evidence["share_of_peak"] == 0.118
    assert batch_size_verdict(scripted(), 1024, judge_speed=False).status == "warn"


def test_bad_arguments_are_named():
    with pytest.raises(ConfigError) as e:
        batch_size_verdict(scripted(), 0)
    assert str(e.value) == "batch_size=0 is not allowed; give the run's batch size, 1 or more"
    with pytest.raises(ConfigError) as e:
        measure_batch_sizes(nn.Linear(2, 1), nn.MSELoss(), torch.zeros(4, 2), torch.zeros(4, 1))
    assert str(e.value) == "inputs (4, 2) and target (4, 1): give tensors of one row count, 8 rows or more"
    with pytest.raises(ConfigError) as e:
        measure_batch_sizes(nn.Linear(2, 1), nn.MSELoss(), torch.zeros(8, 2), torch.zeros(8, 1), rounds=1)
    assert str(e.value) == "rounds=1 is not allowed; give a whole number of 2 or more"


def test_the_command_prints_the_advice_and_writes_the_report(cli, tmp_path):
    data = breast_cancer_csv(tmp_path / "bc.csv")
    out = tmp_path / "bs.json"
    code, text, err = cli("batchsize", data, "--target", "diagnosis", "--model", "mlp", "--batch-size", "64",
                          "--device", "cpu", "--out", out)
    assert code == 0, err
    assert "recommended batch size: " in text and "gradient noise scale B_simple: " in text
    assert "this run's batch size: 64 (--batch-size)" in text and "T17 batch size: " in text
    saved = json.loads(out.read_text())
    report = saved["report"]
    assert saved["batch_size"] == 64 and report["batch_sizes"][0] == 8
    assert report["batch_sizes"][0] <= report["recommended"] <= report["batch_sizes"][-1]
    assert Verdict(**{**saved["verdict"], "consistent_with": ()}).status in ("pass", "warn")
    json.dumps(saved, allow_nan=False)


def test_the_command_refuses_bad_input(cli, tmp_path):
    data = breast_cancer_csv(tmp_path / "bc.csv")
    code, _, err = cli("batchsize", data, "--target", "diagnosis", "--out", tmp_path)
    assert code == 2
    assert err == (f"nnrecipe: error: --out {tmp_path} is a folder; give a file name, such as "
                   f"{tmp_path / 'batchsize.json'}\n")
    code, _, err = cli("batchsize", data, "--target", "Diagnosis")
    assert code == 2 and "did you mean 'diagnosis'?" in err
    code, out, err = cli("batchsize", "--help")
    assert (code, err) == (0, "") and out.startswith("usage: nnrecipe batchsize")
