"""Column kinds (README 'How columns are read'), the preprocessing they get, and what a run does with them."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from nnrecipe import DataConfig, TrainConfig, predict_table, train_table
from nnrecipe.data.schema import ONE_HOT_MAX, infer_columns
from nnrecipe.data.transforms import TablePreprocessor, embedding_dim


def mixed(n: int = 400, seed: int = 0) -> pd.DataFrame:
    g = np.random.default_rng(seed)
    days = pd.date_range("2024-01-01", periods=n, freq="D")
    frame = pd.DataFrame({
        "customer_id": np.arange(1000, 1000 + n),  # consecutive integers: an ID
        "ticket": [f"T-{g.integers(1e9)}" for _ in range(n)],  # distinct strings: ID-like
        "amount": g.normal(50, 10, n),
        "flag": g.choice([True, False], n),
        "when": days.strftime("%Y-%m-%d"),
        "color": g.choice(["red", "green", "blue"], n),
        "city": [f"city{int(v)}" for v in g.integers(0, 200, n)],  # > ONE_HOT_MAX categories
        "comment": [" ".join(g.choice(["good", "bad", "slow", "fast", "ok"], 5)) for _ in range(n)],
        "source": "web",  # constant
    })
    frame["y"] = np.where(days.day_of_week >= 5, "weekend", "weekday")  # learnable from the expanded date only
    return frame


def test_kinds_follow_the_rules(caplog):
    caplog.set_level(logging.WARNING)
    schema = infer_columns(mixed(), DataConfig(target="y"), None)
    assert schema.kinds == {"amount": "numeric", "flag": "boolean", "when": "datetime", "color": "categorical",
                            "city": "embedding", "comment": "text"}  # 5 words a cell: free text, read as text
    assert schema.dropped == {
        "customer_id": "ID-like: a distinct integer in every row",
        "ticket": "ID-like: a distinct value in every row",
        "source": "constant (every row holds 'web')",
    }
    for col in schema.dropped:
        assert f"column '{col}' is left out" in caplog.text


def test_overrides_win():
    cfg = DataConfig(target="y", categorical=("amount",), numeric=("customer_id",), drop=("color",))
    schema = infer_columns(mixed(), cfg, None)
    assert schema.kinds["amount"] == "embedding"  # 400 distinct values: past ONE_HOT_MAX
    assert schema.kinds["customer_id"] == "numeric"
    assert schema.dropped["color"] == "--drop"


def test_datetime_is_expanded_with_weekday_and_month_one_hot():
    frame = pd.DataFrame({"when": ["2024-01-01", "2024-03-06", None, "2025-12-31"]})  # Mon, Wed, -, Wed
    pre = TablePreprocessor.fit(frame, {"when": "datetime"})
    x, codes, unknown = pre.transform(frame)
    names = pre.feature_names
    assert codes is None and x.shape == (4, len(names))
    row = dict(zip(names, x[0]))
    assert row["when__month=1"] == 1 and row["when__weekday=0"] == 1 and row["when__missing"] == 0
    row = dict(zip(names, x[1]))
    assert row["when__month=3"] == 1 and row["when__weekday=2"] == 1
    assert x[2][names.index("when__missing")] == 1 and x[2][names.index("when__month=1")] == 0
    assert sum(n.startswith("when__month=") for n in names) == 12
    assert sum(n.startswith("when__weekday=") for n in names) == 7


def test_datetime_time_feature_orders_the_dates_and_old_runs_keep_the_year():
    # the trend as one feature: days since 1970, standardized on the training rows, in date order within a
    # year too (the year alone put 1990-01-05 and 1990-12-28 at the same value)
    frame = pd.DataFrame({"when": ["1990-01-05", "1990-12-28", "1991-06-01", "2001-03-04 12:00", None]})
    pre = TablePreprocessor.fit(frame, {"when": "datetime"})
    x, _, _ = pre.transform(frame)
    t = x[:, pre.feature_names.index("when__time")]
    assert t[0] < t[1] < t[2] < t[3] and t[4] == 0  # an empty cell takes the centre (and its indicator)
    assert abs(t[:4].mean()) < 1e-5 and t[:4].std() == pytest.approx(1, rel=1e-4)
    assert "when__year" not in pre.feature_names
    # a model.json written before the time feature holds the year's scale: it keeps its features
    old = {"when": {"kind": "datetime", "year": [1990.0, 5.0], "hour": False, "indicator": False}}
    pre_old = TablePreprocessor.from_dict({"columns": old})
    x_old, _, _ = pre_old.transform(frame.iloc[:3])
    assert pre_old.feature_names[0] == "when__year" and x_old.shape == (3, len(pre_old.feature_names))
    assert x_old[:, 0].tolist() == pytest.approx([0.0, 0.0, 0.2])


@pytest.mark.parametrize("scaling, lo, hi", [("minmax", -1.0, 1.0), ("standard", None, None), ("robust", None, None)])
def test_scalings(scaling, lo, hi):
    x = np.concatenate([np.linspace(0, 10, 99), [1000.0]])  # one heavy outlier
    frame = pd.DataFrame({"v": x})
    pre = TablePreprocessor.fit(frame, {"v": "numeric"}, scaling)
    z = pre.transform(frame)[0][:, 0]
    if scaling == "minmax":
        assert z.min() == pytest.approx(lo) and z.max() == pytest.approx(hi)
    elif scaling == "standard":
        assert z.mean() == pytest.approx(0, abs=1e-6) and z.std() == pytest.approx(1, rel=1e-4)
    else:  # the median at 0 and the bulk of the data within a few units, whatever the outlier
        assert np.median(z) == pytest.approx(0, abs=0.02) and np.abs(z[:99]).max() < 1.1


def test_embedding_width_rule():
    assert embedding_dim(5001) == round(1.6 * 5001 ** 0.56)
    assert embedding_dim(10**9) == 600


def test_high_cardinality_column_trains_through_an_embedding(tmp_path):
    g = np.random.default_rng(0)
    n = 10_000
    shop = g.permutation(np.arange(n) % 5000)  # 5,000 shops, two rows each
    effect = g.normal(0, 1, 5000)  # each shop pushes the label one way
    frame = pd.DataFrame({"shop": [f"s{v}" for v in shop], "x": g.normal(size=n)})
    frame["y"] = np.where(effect[shop] + frame["x"] > 0, "a", "b")
    run = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(epochs=6, batch_size=256, refit="off"),
                      checks=(), audit=False, report=False)  # the embedding is under test, not the checks
    meta = __import__("json").loads((run.run_dir / "model.json").read_text())
    emb = meta["architecture"]["embeddings"]
    n_shops = frame["shop"].nunique()
    assert len(emb) == 1 and emb[0][0] > ONE_HOT_MAX and emb[0][1] == embedding_dim(emb[0][0])
    assert n_shops == 5000
    assert run.test["accuracy"] > 0.7  # x alone gives about 0.62; the shops the model saw add to it (0.76)
    # an unseen shop at predict time is counted and still predicted
    new = frame.head(5).assign(shop=["nowhere"] * 5)
    preds, report = predict_table(run.run_dir, new)
    assert report["unseen_cells"] == {"shop": 5}
    assert len(preds) == 5


def test_date_column_is_expanded_in_a_run(tmp_path):
    frame = mixed()
    run = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(epochs=10), checks=(),
                      report=False)  # the schema is under test (10 epochs reach 1.0 on seeds 0-2)
    meta = __import__("json").loads((run.run_dir / "model.json").read_text())
    assert any(n.startswith("when__weekday=") for n in meta["feature_names"])
    schema = __import__("json").loads((run.run_dir / "schema.json").read_text())
    assert schema["kinds"]["when"] == "datetime" and "customer_id" in schema["dropped"]
    assert "dropped: customer_id (ID-like" in (run.run_dir / "summary.txt").read_text()
    # the label depends on the weekday: the expanded date makes it learnable
    assert run.test["accuracy"] > 0.85


def test_predict_ignores_extra_columns_with_a_notice(tmp_path, caplog):
    frame = mixed()
    run = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(epochs=2))
    caplog.set_level(logging.INFO)
    preds, _ = predict_table(run.run_dir, frame.assign(extra=1))
    assert "columns the model does not use are ignored: customer_id, ticket, source, extra" in caplog.text
    assert len(preds) == len(frame)
    torch.manual_seed(0)


def test_dates_with_a_timezone_enter_as_their_utc_time():
    frame = pd.DataFrame({"when": ["2020-01-01T00:00:00Z", "2021-06-01T12:00:00Z", "2022-01-01T00:00:00Z"]})
    pre = TablePreprocessor.fit(frame, {"when": "datetime"})
    t = pre.transform(frame)[0][:, pre.feature_names.index("when__time")]
    assert t[0] < t[1] < t[2]
