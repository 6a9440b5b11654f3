"""Issue 23, point 1: NNRecipeClassifier and NNRecipeRegressor are scikit-learn estimators. They pass
check_estimator (the checks that cannot hold are named in EXPECTED_FAILED_CHECKS, with the reason); they
work in GridSearchCV(Pipeline([TfidfVectorizer(), ...])) on a table of text and in cross_val_score on
breast cancer; they train in memory (a run folder only with out=, which predict reads alike); they keep
the checks' verdicts and the history; they pickle, clone and take DataFrames with categories."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from nnrecipe import TrainConfig
from nnrecipe.recipes import predict_table
from nnrecipe.sklearn import EXPECTED_FAILED_CHECKS, NNRecipeClassifier, NNRecipeRegressor
from nnrecipe.testing import docstring_table

# fast settings for scikit-learn's ~50 checks each (each check fits several times): the MLP, no R2 refit,
# no doctor's checks; the regressor needs more epochs to pass check_regressors_train's R2 bound
CHECKED = [NNRecipeClassifier(epochs=10, refit="off", checks=False, model="mlp"),
           NNRecipeRegressor(epochs=20, refit="off", checks=False, model="mlp")]


@parametrize_with_checks(CHECKED, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_check_estimator(estimator, check) -> None:  # type: ignore[no-untyped-def]
    check(estimator)


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    return load_breast_cancer(return_X_y=True)


def test_cross_val_score_on_breast_cancer(cancer) -> None:  # type: ignore[no-untyped-def]
    X, y = cancer
    scores = cross_val_score(NNRecipeClassifier(epochs=30, refit="off", random_state=0, checks=False), X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.min() > 0.93, scores  # a logistic regression scores ~0.95 here; chance is 0.63


def test_grid_search_over_a_tfidf_pipeline_on_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    table = docstring_table(per_module=25)
    table = table[table["module"].isin(["math", "socket", "datetime", "logging"])].reset_index(drop=True)
    pipe = Pipeline([("tfidf", TfidfVectorizer(min_df=2)),
                     ("clf", NNRecipeClassifier(epochs=25, refit="off", checks=False, random_state=0))])
    search = GridSearchCV(pipe, {"clf__hidden": [(32,), (64, 64)], "clf__lr": [1e-3, 3e-3]}, cv=2)
    search.fit(table["doc"], table["module"])
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()  # every setting fitted (no error_score)
    assert {p["clf__lr"] for p in search.cv_results_["params"]} == {1e-3, 3e-3}
    assert search.best_score_ > 0.6, search.cv_results_["mean_test_score"]  # chance: 0.25
    # the refitted pipeline predicts the module names themselves, and each setting reached the run
    best = search.best_estimator_
    assert set(best.predict(table["doc"][:20])) <= {"math", "socket", "datetime", "logging"}
    clf = best.named_steps["clf"]
    assert list(clf.classes_) == ["datetime", "logging", "math", "socket"]
    assert clf.config_["train"]["lr"] == search.best_params_["clf__lr"]
    assert tuple(clf.config_["model"]["hidden"]) == search.best_params_["clf__hidden"]
    assert list(tmp_path.iterdir()) == []  # in memory: no run folder without out=


def test_fit_keeps_the_verdicts_history_and_writes_a_folder_only_with_out(cancer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    X, y = cancer
    frame = pd.DataFrame(X[:, :8], columns=[f"f{i}" for i in range(8)])
    clf = NNRecipeClassifier(epochs=15, refit="off", random_state=0, out=str(tmp_path / "runs")).fit(frame, y)
    assert {"C1", "C2", "C7"} <= {v.id for v in clf.verdicts_}
    assert [row["epoch"] for row in clf.history_] == list(range(1, len(clf.history_) + 1))
    assert "val_loss" in clf.history_[0]
    assert clf.n_iter_ == len(clf.history_)
    assert list(clf.feature_names_in_) == list(frame.columns)
    assert clf.run_dir_ is not None and (clf.run_dir_ / "model.safetensors").exists()
    assert clf.results_["test_measured_on"].startswith("the validation rows")
    # the folder is the run nnrecipe predict reads: the same probabilities as the estimator's
    preds, _ = predict_table(clf.run_dir_, frame.iloc[:50])
    np.testing.assert_allclose(preds["p_1"].to_numpy(), clf.predict_proba(frame.iloc[:50])[:, 1], atol=1e-6)
    # a frame without a column of the fit is refused by scikit-learn's own check, naming it
    with pytest.raises(ValueError, match="f7"):
        clf.predict(frame.drop(columns="f7"))


def test_pickle_clone_and_set_params(cancer) -> None:  # type: ignore[no-untyped-def]
    X, y = cancer
    clf = NNRecipeClassifier(epochs=5, refit="off", checks=False, model="mlp", random_state=1)
    copy = clone(clf).set_params(hidden=[16], dropout=0.1)  # a list is taken as the config's tuple
    assert clf.get_params()["hidden"] is None and copy.get_params()["hidden"] == [16]
    copy.fit(X, y)
    assert tuple(copy.config_["model"]["hidden"]) == (16,) and copy.config_["model"]["dropout"] == 0.1
    assert copy.config_["train"]["seed"] == 1 and copy.config_["data"]["test_fraction"] == 0.0
    again = pickle.loads(pickle.dumps(copy))
    np.testing.assert_array_equal(again.predict_proba(X), copy.predict_proba(X))


def test_a_dataframe_with_categories_and_labels_as_text() -> None:
    g = np.random.default_rng(0)
    n = 240
    colour = g.choice(["red", "green", "blue"], n)
    size = g.normal(size=n)
    label = np.where((colour == "red") | (size > 1.0), "yes", "no")
    frame = pd.DataFrame({"colour": colour, "size": size})
    clf = NNRecipeClassifier(epochs=30, refit="off", checks=False, random_state=0).fit(frame, label)
    assert list(clf.classes_) == ["no", "yes"]
    columns = clf.meta_["preprocessing"]["columns"]  # the recipe read the text column as categories
    assert columns["colour"]["kind"] == "categorical" and columns["size"]["kind"] == "numeric"
    assert clf.score(frame, label) > 0.9
    proba = clf.predict_proba(frame)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_the_regressor_in_target_units() -> None:
    X, y = load_diabetes(return_X_y=True)
    reg = NNRecipeRegressor(epochs=60, refit="off", checks=False, random_state=0).fit(X, y)
    pred = reg.predict(X)
    assert abs(pred.mean() - y.mean()) < 0.2 * y.std()  # in y's units, not standardised ones
    assert reg.score(X, y) > 0.3  # linear regression: ~0.5 on the training rows


def test_bad_input_is_named() -> None:
    X = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(ValueError, match="n_samples = 5"):
        NNRecipeClassifier().fit(X, [0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="X has 30 rows and y has 29"):
        NNRecipeRegressor().fit(np.zeros((30, 2)), np.zeros(29))
    with pytest.raises(ValueError, match="y has 2 columns"):
        NNRecipeRegressor().fit(np.zeros((30, 2)), np.zeros((30, 2)))
    with pytest.raises(ValueError, match="1 class"):
        NNRecipeClassifier().fit(np.zeros((30, 2)), np.zeros(30))
    with pytest.raises(ValueError, match="y must be numbers"):
        NNRecipeRegressor().fit(np.zeros((30, 2)), ["a"] * 30)
    with pytest.raises(ValueError, match="X is an array holding text .* pass a pandas DataFrame"):
        NNRecipeClassifier().fit(np.array([["a", 1.0]] * 20, dtype=object), [0, 1] * 10)
    with pytest.raises(ValueError, match="not allowed"):
        NNRecipeClassifier(val_fraction=0.9).fit(np.random.default_rng(0).normal(size=(30, 2)), [0, 1] * 15)


def test_predict_takes_the_other_kind_of_x_by_position() -> None:
    g = np.random.default_rng(0)
    frame = pd.DataFrame({"a": g.normal(size=120), "b": g.normal(size=120)})
    y = (frame["a"] > 0).astype(int).to_numpy()
    on_frame = NNRecipeClassifier(epochs=5, refit="off", checks=False, model="mlp").fit(frame, y)
    with pytest.warns(UserWarning, match="feature names"):  # scikit-learn's own warning, then the columns by position
        np.testing.assert_array_equal(on_frame.predict_proba(frame.to_numpy()), on_frame.predict_proba(frame))
    on_array = NNRecipeClassifier(epochs=5, refit="off", checks=False, model="mlp").fit(frame.to_numpy(), y)
    with pytest.warns(UserWarning, match="feature names"):
        np.testing.assert_array_equal(on_array.predict_proba(frame), on_array.predict_proba(frame.to_numpy()))
    # one column's name alone is taken as that column, not as its letters
    colour = frame.assign(colour=np.where(y == 1, "red", "blue"))
    clf = NNRecipeClassifier(epochs=5, refit="off", checks=False, categorical="colour").fit(colour, y)
    assert clf.meta_["preprocessing"]["columns"]["colour"]["kind"] == "categorical"


def test_partial_fit_goes_on_training_one_network(cancer) -> None:  # type: ignore[no-untyped-def]
    X, y = cancer
    clf = NNRecipeClassifier(epochs=3, checks=False, random_state=0, model="mlp")
    clf.partial_fit(X[:200], y[:200], classes=[0, 1])  # the first batch: fitted as fit does, one network
    assert clf.config_["train"]["refit"] == "off" and clf.get_params()["refit"] is None  # the parameter kept
    first, epochs = clf.score(X[400:], y[400:]), clf.n_iter_
    losses = []
    for _ in range(5):  # the same batch again: its training loss falls epoch after epoch
        clf.partial_fit(X[200:400], y[200:400])
        losses.append(clf.history_[-1]["train_loss"])
    assert losses == sorted(losses, reverse=True) and clf.n_iter_ == epochs + 5
    assert all(row.get("partial_fit") for row in clf.history_[-5:])
    assert clf.score(X[400:], y[400:]) > first
    again = pickle.loads(pickle.dumps(clf))  # the optimizer's state travels with it: the next epoch is the same
    np.testing.assert_array_equal(again.partial_fit(X[:50], y[:50]).predict_proba(X[400:]),
                                  clf.partial_fit(X[:50], y[:50]).predict_proba(X[400:]))
    with pytest.raises(ValueError, match=r"y holds classes the first batch did not \(\['2'\]\)"):
        clf.partial_fit(X[:20], np.full(20, 2))
    with pytest.raises(ValueError, match="classes= and the first batch's labels differ in"):
        NNRecipeClassifier(epochs=2, checks=False).partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    with pytest.raises(ValueError, match="refit='on' train several"):
        NNRecipeClassifier(refit="on").partial_fit(X, y)
    with pytest.raises(ValueError, match="cv_folds=3 train several"):  # given through the config as well
        NNRecipeClassifier(train_config=TrainConfig(cv_folds=3)).partial_fit(X, y)
    pair = NNRecipeClassifier(epochs=2, checks=False, refit="on", model="mlp").fit(X[:200], y[:200])
    with pytest.raises(ValueError, match="this fit made an ensemble of 2"):
        pair.partial_fit(X[200:300], y[200:300])


def test_fit_leaves_the_callers_random_streams_where_they_were(cancer) -> None:  # type: ignore[no-untyped-def]
    import random

    import torch

    X, y = cancer
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    expected = (random.random(), np.random.rand(), float(torch.rand(1)))
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    clf = NNRecipeClassifier(epochs=2, checks=False, refit="off", model="mlp").fit(X[:100], y[:100])
    clf.partial_fit(X[100:200], y[100:200])  # seeds the training too
    assert (random.random(), np.random.rand(), float(torch.rand(1))) == expected
