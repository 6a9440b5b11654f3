"""The CNN's layouts (models/cnn.py's pad_channels and channels_last, models/layout.py's choose_layout, M10,
issue 20): neither changes what the network computes, both survive the spec, the timing leaves the caller's
RNG and model alone and records every candidate, and its rule keeps a layout only past the margin (scripted
times: no wall clock here; speed belongs to benchmarks/layout.py)."""

from __future__ import annotations

import json

import pytest
import torch

from nnrecipe import ConfigError
from nnrecipe.models import build_model, load_model, save_model
from nnrecipe.models.cnn import CNN, make_cnn
from nnrecipe.models.layout import MARGIN, candidates, choose_layout, decide

ARGS = {"in_channels": 3, "out_features": 4, "depths": [1, 1], "widths": [8, 16], "resolution": 16, "dropout": 0.0}


def _images(n=6, c=3, side=16, seed=0):
    return torch.rand(n, c, side, side, generator=torch.Generator().manual_seed(seed))


def _cnn(seed=0, **kw):
    torch.manual_seed(seed)
    model = CNN(**{**ARGS, **kw})
    with torch.no_grad():  # blocks away from the identity and a head that is not ~0, so outputs differ by input
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0)
    return model


def test_the_padded_stem_sees_a_zero_fourth_channel():
    model = _cnn(pad_channels=True)
    seen = []
    model.stem[0].register_forward_hook(lambda m, inputs, out: seen.append(inputs[0]))
    model(_images())
    (x,) = seen
    assert x.shape == (6, 4, 16, 16) and model.stem[0].weight.shape == (8, 4, 3, 3)
    assert torch.equal(x[:, 3], torch.zeros(6, 16, 16)) and x[:, :3].abs().sum() > 0
    assert torch.equal(model.stem[0].weight[:, 3], torch.zeros(8, 3, 3))


def test_padding_changes_nothing_seed_for_seed_and_the_zero_channel_stays_zero_in_training():
    plain, padded = _cnn(), _cnn(pad_channels=True)
    x = _images()
    assert torch.allclose(padded(x), plain(x), atol=1e-5)  # the same draws: the same network
    opt = torch.optim.Adam(padded.parameters(), lr=0.1, weight_decay=0.01)
    padded(x).square().mean().backward()
    assert torch.equal(padded.stem[0].weight.grad[:, 3], torch.zeros(8, 3, 3))  # its input is zero
    opt.step()
    assert torch.equal(padded.stem[0].weight[:, 3], torch.zeros(8, 3, 3))


def test_channels_last_computes_what_contiguous_computes_for_the_same_weights():
    plain = _cnn(channels_last=False).train()
    fast = _cnn(seed=1, channels_last=True).train()
    fast.load_state_dict(plain.state_dict())  # copy_ keeps the NHWC strides of the destination
    assert fast.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.prepare(_images(c=3)).is_contiguous(memory_format=torch.channels_last)
    x = _images(side=20)  # resized inside prepare, before the layout
    assert torch.allclose(fast(x), plain(x), atol=1e-5)
    assert torch.allclose(fast.eval()(x), plain.eval()(x), atol=1e-5)


def test_a_one_channel_cnn_is_not_padded_and_channels_last_works_for_it():
    with pytest.raises(ConfigError) as e:
        CNN(**{**ARGS, "in_channels": 1}, pad_channels=True)
    assert str(e.value) == ("CNN: pad_channels=True pads RGB images to 4 channels, but in_channels=1; build the CNN "
                            "with pad_channels=False")
    grey = _cnn(in_channels=1, channels_last=True)
    assert grey.prepare(_images(c=1)).is_contiguous(memory_format=torch.channels_last)  # C == 1: `to`, not contiguous


@pytest.mark.parametrize("layout", [{"pad_channels": True}, {"channels_last": True},
                                    {"pad_channels": True, "channels_last": True}])
def test_the_spec_records_the_layout_and_rebuilds_the_same_model(layout, tmp_path):
    model = _cnn(**layout)
    with torch.no_grad():
        model.train()(_images(16))  # BatchNorm statistics away from init
    spec = json.loads(json.dumps(model.spec))
    assert {k: spec.get(k, False) for k in ("pad_channels", "channels_last")} == {"pad_channels": False,
                                                                                  "channels_last": False, **layout}
    rebuilt = build_model(spec)
    rebuilt.load_state_dict(model.state_dict())  # a padded stem: a (8, 4, 3, 3) weight, loaded as is
    x = _images(seed=1)
    assert torch.equal(rebuilt.eval()(x), model.eval()(x))
    save_model(tmp_path, model, {"task": "multiclass"})  # safetensors is given contiguous copies of NHWC weights
    again, _ = load_model(tmp_path)
    assert torch.equal(again(x), model(x))


def test_a_spec_without_the_keys_builds_the_plain_network():
    spec = _cnn().spec
    assert "pad_channels" not in spec and "channels_last" not in spec  # specs saved before M10 read the same
    model = build_model(spec)
    assert not model.pad_channels and not model.channels_last and model.stem[0].weight.shape[1] == 3
    made = make_cnn(3, 4, 100, 32, pad_channels=True, channels_last=True)
    assert made.spec["pad_channels"] and made.spec["channels_last"] and made.stem[0].weight.shape[1] == 4


@pytest.mark.parametrize("channels", [1, 3])
def test_choose_layout_times_every_candidate_and_leaves_rng_and_model_alone(channels):
    model = _cnn(in_channels=channels)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    settings, record = choose_layout(model.spec, channels, 16, "cpu", batch_size=4, repeats=2)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert model.stages[0][0].conv1.weight.is_contiguous() and model.training  # its layout and mode too
    names = list(candidates(channels))
    assert names == (["contiguous", "channels_last"] + ["padded", "channels_last+padded"] * (channels == 3))
    assert set(record["ms_per_step"]) == set(record["rounds_ms"]) == set(record["median_ms"]) == set(names)
    assert all(len(r) == 2 and min(r) > 0 for r in record["rounds_ms"].values())
    assert record["chosen"] in names and settings == candidates(channels)[record["chosen"]]
    assert record["chosen"] == decide(record["ms_per_step"], MARGIN)
    assert (record["device"], record["margin"], record["batch_size"]) == ("cpu", MARGIN, 4)
    json.dumps(record)  # config.json takes it as it is


def test_choose_layout_takes_a_build_function_and_times_at_most_16_images_on_the_cpu():
    built = []

    def build(pad_channels, channels_last):
        built.append((pad_channels, channels_last))
        return CNN(**ARGS, pad_channels=pad_channels, channels_last=channels_last)

    _, record = choose_layout(build, 3, 16, "cpu", batch_size=64, repeats=1, warmup=0, precision="bf16")
    assert sorted(built) == [(False, False), (False, True), (True, False), (True, True)]
    assert (record["batch_size"], record["precision"]) == (16, "bf16")


def test_the_rule_keeps_a_layout_only_past_the_margin():
    ms = {"contiguous": 100.0, "channels_last": 95.0, "padded": 80.0, "channels_last+padded": 79.0}
    assert decide(ms, 0.10) == "padded"  # channels-last 5% faster: noise; padding 20% faster: kept
    ms = {"contiguous": 100.0, "channels_last": 70.0, "padded": 99.0, "channels_last+padded": 66.0}
    assert decide(ms, 0.10) == "channels_last"  # padding 6% faster than channels-last alone: not kept
    assert decide({**ms, "channels_last+padded": 60.0}, 0.10) == "channels_last+padded"
    assert decide({"contiguous": 100.0, "channels_last": 91.0}, 0.10) == "contiguous"
    assert decide({"contiguous": 100.0, "channels_last": 90.0}, 0.10) == "channels_last"


def test_choose_layout_refuses_what_it_cannot_time():
    with pytest.raises(ConfigError) as e:
        choose_layout(ARGS, 3, 16, precision="16")
    assert str(e.value) == "precision='16' is not one of 32, bf16, fp16; give the run's precision"
    with pytest.raises(ConfigError) as e:
        choose_layout([1, 2], 3, 16)
    assert str(e.value) == ("choose_layout's build is a list; give the CNN's spec (model.spec, or a dict of CNN "
                            "arguments) or a function build(pad_channels=..., channels_last=...)")
