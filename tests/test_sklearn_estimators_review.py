"""The estimators' errors in scikit-learn's terms and a failed fit that leaves nothing half done (a
review of the estimators used as scikit-learn users use them)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from nnrecipe.sklearn import NNRecipeClassifier

FAST = {"epochs": 2, "refit": "off", "checks": False, "model": "mlp"}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    return X, np.where(X[:, 0] > 0, "cat", "dog")


def test_a_failed_refit_leaves_the_estimator_unfitted_not_half_refitted(data):
    X, y = data
    clf = NNRecipeClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="1 class"):
        clf.fit(X, np.full(len(y), "emu"))
    with pytest.raises(NotFittedError):  # it raised IndexError: the new classes_ beside the old network
        clf.predict(X)
    assert not hasattr(clf, "classes_") and not hasattr(clf, "n_features_in_")
    assert (clf.fit(X, y).predict(X) != "").all()  # and it fits again


def test_a_class_of_one_row_is_refused_in_the_estimators_words(data):
    X, y = data
    y = y.copy()
    y[0] = "emu"
    with pytest.raises(ValueError, match=r"NNRecipeClassifier.fit: y holds 1 class\(es\) with a single row "
                                         r"\(\['emu'\]\).*2 rows of each class") as e:
        NNRecipeClassifier(**FAST).fit(X, y)
    assert "--task" not in str(e.value) and "target column" not in str(e.value)  # the CLI's words


def test_labels_alike_but_for_spaces_are_refused_in_the_estimators_words(data):
    X, y = data
    with pytest.raises(ValueError, match=r"NNRecipeClassifier.fit: the class labels \[' a', 'a '\] are not "
                                         "distinct once written as text without surrounding spaces"):
        NNRecipeClassifier(**FAST).fit(X, np.where(y == "cat", " a", "a "))


def test_partial_fit_names_classes_as_plain_values(data):
    X, y = data
    codes = (y == "cat").astype(np.int64)
    clf = NNRecipeClassifier(**FAST).partial_fit(X, codes)
    with pytest.raises(ValueError) as e:
        clf.partial_fit(X, codes + 2)
    assert "classes are [0, 1]" in str(e.value) and "np.int64" not in str(e.value)
    with pytest.raises(ValueError) as e:
        NNRecipeClassifier(**FAST).partial_fit(X, codes, classes=[0, 1, 2])
    assert "differ in [2]" in str(e.value)
