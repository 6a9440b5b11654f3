"""scikit-learn estimators over the recipe (issue 23): `NNRecipeClassifier` and `NNRecipeRegressor` fit the
network `nnrecipe train` would build, with its checks, in a `Pipeline`, `cross_val_score` or `GridSearchCV`.

    from nnrecipe.sklearn import NNRecipeClassifier
    clf = NNRecipeClassifier(epochs=50).fit(X, y)

What a fit does: X (an array, a sparse matrix from a vectorizer, or a DataFrame, whose categorical and text
columns the recipe reads as `nnrecipe train` does) and y become one table; the recipe holds out
`val_fraction` of the rows for early stopping and keeps no test split (the user's own cross-validation is
the test: test_fraction 0), audits the data when `audit=True`, runs the doctor's checks (`checks=True`),
trains with its safeguards and keeps the model in memory. A run folder is written under `out` only when
`out=` is given; otherwise the run's folder is a temporary one, removed when the fit returns. The checks'
verdicts are on `verdicts_`, the curves on `history_`, results.json on `results_`. `partial_fit` fits the
first batch so, with one network, and trains it one more epoch on each later batch.

The settings are the recipe's: each parameter left None takes the recipe's rule (or the value in
`data_config`, `model_config`, `train_config`, the frozen configs of `nnrecipe train`, for a setting without
its own parameter); GridSearchCV searches them by name (`nnrecipeclassifier__lr`).

Pickling an estimator is the user's choice here (scikit-learn's way to keep one: joblib); nnrecipe's own
artifacts stay safetensors + JSON (`out=` writes the run folder, which `nnrecipe predict` reads)."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .config import DataConfig, ModelConfig, TrainConfig, as_config, from_dict
from .data.split import MIN_ROWS
from .data.transforms import TablePreprocessor, label_strings
from .io import scratch
from .models import load_model
from .repro import rng_kept

log = logging.getLogger("nnrecipe")

# the parameters that set one field of a config (name -> (config, field)); the rest are the estimator's own
DATA = ("val_fraction", "scaling", "balance", "split", "categorical", "text")
MODEL = ("model", "hidden", "activation", "dropout", "batchnorm", "loss", "members")
TRAIN = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "schedule", "patience", "metric", "cv_folds",
         "refit", "device", "precision")
TARGET = "target"  # the table's target column, renamed when X has a column of that name

# scikit-learn's check_estimator checks that cannot hold for these estimators, and why (pass it as
# check_estimator(est, expected_failed_checks=EXPECTED_FAILED_CHECKS); every other check passes)
EXPECTED_FAILED_CHECKS = {
    "check_methods_subset_invariance": "the network computes in float32, where a row's output can differ in its "
    "last bits (1e-7) between batch sizes (the BLAS blocks the product differently); the check allows 1e-7 "
    "absolute, which a regression output in the target's units can exceed by a hair",
}


class _NNRecipe(BaseEstimator):
    """What the classifier and the regressor share: the settings, the table made of X and y, the fit
    through `train_table`, and the model in memory."""

    _task: str = "auto"

    def __init__(self, *, model: str | None = None, hidden: tuple[int, ...] | None = None,
                 activation: str | None = None, dropout: float | None = None, batchnorm: bool | None = None,
                 loss: str | None = None, members: int | None = None, epochs: int | None = None,
                 batch_size: int | None = None, optimizer: str | None = None, lr: float | None = None,
                 weight_decay: float | None = None, schedule: str | None = None, patience: int | None = None,
                 metric: str | None = None, cv_folds: int | None = None, refit: str | None = None,
                 device: str | None = None, precision: str | None = None, val_fraction: float | None = None,
                 scaling: str | None = None, balance: str | None = None, split: str | None = None,
                 categorical: tuple[str, ...] | None = None, text: tuple[str, ...] | None = None,
                 random_state: int | None = None, checks: bool = True, audit: bool = False,
                 out: str | None = None, progress: bool = False, data_config: DataConfig | None = None,
                 model_config: ModelConfig | None = None, train_config: TrainConfig | None = None) -> None:
        # scikit-learn's rule: __init__ stores the parameters as given, and nothing else
        self.model, self.hidden, self.activation, self.dropout = model, hidden, activation, dropout
        self.batchnorm, self.loss, self.members, self.epochs = batchnorm, loss, members, epochs
        self.batch_size, self.optimizer, self.lr, self.weight_decay = batch_size, optimizer, lr, weight_decay
        self.schedule, self.patience, self.metric, self.cv_folds = schedule, patience, metric, cv_folds
        self.refit, self.device, self.precision, self.val_fraction = refit, device, precision, val_fraction
        self.scaling, self.balance, self.split, self.categorical = scaling, balance, split, categorical
        self.text, self.random_state, self.checks, self.audit = text, random_state, checks, audit
        self.out, self.progress, self.data_config = out, progress, data_config
        self.model_config, self.train_config = model_config, train_config

    # ------------------------------------------------------------------ settings
    def _configs(self, target: str, numeric: tuple[str, ...]) -> tuple[DataConfig, ModelConfig, TrainConfig]:
        """The frozen configs of the fit: the given configs (or the defaults), each parameter that is not
        None in its field; no test split; the seed from random_state."""
        def given(names: tuple[str, ...]) -> dict[str, Any]:
            return {n: _setting(n, getattr(self, n)) for n in names if getattr(self, n) is not None}

        dcfg = dataclasses.replace(_config(DataConfig, self.data_config, "data_config"), **given(DATA), target=target,
                                   test_fraction=0.0,
                                   task=self._task)
        if numeric:  # an array's columns are numbers: none is read as categorical for having few values
            dcfg = dataclasses.replace(dcfg, numeric=tuple(c for c in numeric if c not in dcfg.categorical))
        mcfg = dataclasses.replace(_config(ModelConfig, self.model_config, "model_config"), **given(MODEL))
        tcfg = dataclasses.replace(_config(TrainConfig, self.train_config, "train_config"), **given(TRAIN))
        if self.random_state is not None:
            tcfg = dataclasses.replace(tcfg, seed=_seed(self.random_state))
        return dcfg, mcfg, tcfg

    # ------------------------------------------------------------------ the table
    def _table(self, X: Any, reset: bool) -> tuple[pd.DataFrame, tuple[str, ...]]:
        """X as the recipe's table (columns named x0, x1, ... for an array) and the columns that are numbers
        by construction (an array's). Validates X as scikit-learn does: the number of features and their
        names against the fit's, no infinity (a missing value, NaN, the recipe imputes)."""
        if not reset and isinstance(X, pd.DataFrame) != (self._fit_columns is not None):
            return self._as_fitted(X)
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if X.shape[0] < 1:
                raise ValueError(f"X has 0 rows (shape {X.shape}); give at least one")
            frame = X.reset_index(drop=True)
            frame.columns = [str(c) for c in frame.columns]
            if reset:  # the names the table's columns had (scikit-learn keeps feature_names_in_ for text only)
                self._fit_columns: list[str] | None = list(frame.columns)
            return frame, ()
        if reset:
            self._fit_columns = None
        try:
            X = validate_data(self, X, reset=reset, accept_sparse=("csr", "csc", "coo"), dtype="numeric",
                              ensure_all_finite="allow-nan")
        except ValueError as e:
            if "could not convert string" not in str(e):
                raise
            raise ValueError(f"X is an array holding text ({e}); an array's columns are read as numbers: pass a "
                             "pandas DataFrame, whose text and categorical columns the recipe reads (name them "
                             "with text= or categorical= if it does not guess them)") from None
        if sp.issparse(X):  # a vectorizer's matrix: the recipe's network reads dense rows
            X = X.toarray()
        names = [f"x{i}" for i in range(X.shape[1])]
        return pd.DataFrame(X, columns=names), tuple(names)

    def _as_fitted(self, X: Any) -> tuple[pd.DataFrame, tuple[str, ...]]:
        """X of the other kind than the fit's (an array after a DataFrame, or the reverse) as the fit's table:
        the columns taken by position, once scikit-learn has checked their count (and warned of the names)."""
        if isinstance(X, pd.DataFrame):  # fitted on an array: the numbers, as the fit read them
            return self._table(validate_data(self, X, reset=False, dtype="numeric", ensure_all_finite="allow-nan"),
                               reset=False)
        validate_data(self, X, reset=False, skip_check_array=True)
        X = X.toarray() if sp.issparse(X) else np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X has shape {X.shape}; give a 2-D table of {self.n_features_in_} columns")
        return pd.DataFrame(X, columns=self._fit_columns), ()

    def _fit(self, X: Any, y: Any) -> _NNRecipe:
        try:
            return self._fit_once(X, y)
        except BaseException:
            # a fit that fails leaves no half of itself (the new classes_ beside the old model_, whose
            # predict then indexed past them): the estimator is unfitted, as before its first fit
            for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("__")]:
                delattr(self, name)
            for name in ("_fit_columns", "_labels", "_optimizer_state", "_task"):
                self.__dict__.pop(name, None)
            raise

    def _fit_once(self, X: Any, y: Any) -> _NNRecipe:
        from .recipes import train_table

        if y is None:  # scikit-learn's words, which its checks look for
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        frame, numeric = self._table(X, reset=True)
        y = self._target(y, len(frame))
        n = len(frame)
        if n < MIN_ROWS:
            raise ValueError(f"{type(self).__name__}.fit: n_samples = {n}; the recipe needs at least {MIN_ROWS} "
                             "rows to hold out validation rows for early stopping: give more samples")
        target = TARGET
        while target in frame.columns:
            target += "_"
        table = frame.assign(**{target: y})
        dcfg, mcfg, tcfg = self._configs(target, numeric)
        # the recipe seeds every generator (T1); the caller's random streams come back as they were
        with rng_kept(), tempfile.TemporaryDirectory(prefix="nnrecipe-fit-") as temp, scratch(temp):
            run = train_table(table, target, out=self.out if self.out is not None else temp, data_config=dcfg,
                              model_config=mcfg, train_config=tcfg, progress=self.progress,
                              checks=None if self.checks else (), audit=self.audit, report=self.out is not None,
                              note=f"{type(self).__name__}.fit", unread="warn")  # a grid's candidates
            model, meta = load_model(run.run_dir)
        self.model_, self.meta_ = model, meta
        self.verdicts_, self.audit_, self.history_ = run.verdicts, run.audit, run.history
        self.results_, self.config_ = run.results, run.config
        self.run_dir_ = Path(run.run_dir) if self.out is not None else None
        self.n_iter_ = max(1, int(run.results.get("epochs_run") or 1))
        self._optimizer_state = None  # partial_fit's optimizer, from its first later batch on
        for v in run.verdicts:
            if v.status in ("warn", "fail"):
                log.warning("%s", v.line())
        return self

    def _partial_fit(self, X: Any, y: Any, classes: Any = None) -> _NNRecipe:
        """The first call fits as `fit` does, on this batch, with one network (no R2 pair, no T14 ensemble:
        the network that later batches go on training); each later call trains that network one epoch on
        the batch with the fit's preprocessing, loss and optimizer (its state kept between calls)."""
        if not hasattr(self, "model_"):
            def setting(name: str) -> Any:  # a parameter left None takes train_config's value
                value = getattr(self, name)
                return value if value is not None else getattr(_config(TrainConfig, self.train_config, "train_config"), name)

            kept = [f"{name}={setting(name)!r}" for name, one in (("refit", ("off", "auto")), ("cv_folds", (1,)))
                    if setting(name) not in one]
            if kept:
                raise ValueError(f"partial_fit trains one network batch after batch, and {', '.join(kept)} train "
                                 "several: leave them out, or call fit")
            one = clone(self).set_params(refit="off", cv_folds=1)
            one._fit(X, y)
            self.__dict__.update({k: v for k, v in one.__dict__.items() if k.endswith("_") or k.startswith("_")})
            if classes is not None and set(np.unique(classes)) != set(self.classes_):
                missing = [_plain(c) for c in sorted(set(np.unique(classes)) ^ set(self.classes_), key=str)]
                del self.model_
                raise ValueError(f"partial_fit: classes= and the first batch's labels differ in {missing[:10]}; the "
                                 "recipe sizes the network's output from the classes it sees first: give a first "
                                 "batch with a row of every class in classes=")
            return self
        return self._train_more(X, y)

    def _train_more(self, X: Any, y: Any) -> _NNRecipe:
        """One epoch of the fitted network on (X, y): the fit's preprocessing, loss (class weights from this
        batch's counts when the fit weighted its classes: D6) and optimizer settings; no early stopping."""
        from .data.balance import class_weights
        from .recipes.tabular import _inputs
        from .tasks import create_task
        from .tasks.base import REGRESSION_LOSSES
        from .train import Trainer, for_trainer
        from .train.optim import make_optimizer, model_parameters

        from .models import Ensemble

        if isinstance(self.model_, Ensemble):
            raise ValueError(f"partial_fit goes on training one network, and this fit made an ensemble of "
                             f"{len(self.model_.members)} (an R2 refit beside early stopping, or cv_folds): fit with "
                             "refit='off' and cv_folds=1 first, or start with partial_fit")
        frame, _ = self._table(X, reset=False)
        y = self._target_more(y, len(frame))
        meta, config = self.meta_, self.config_
        pre = TablePreprocessor.from_dict(meta["preprocessing"])
        spec = getattr(self.model_, "spec", {})
        inputs = _inputs(pre, frame, bool(spec.get("text_words")))[0]
        options: dict[str, Any] = {"n_classes": len(meta["classes"]), "target_scale": meta["target_scale"]}
        if meta["task"] == "regression":
            names = {cls.__name__: name for name, cls in REGRESSION_LOSSES.items()}
            options["loss"] = names.get(config.get("loss", ""), "mse")
            target = torch.tensor((y - meta["target_scale"]["mean"]) / meta["target_scale"]["std"],
                                  dtype=torch.float32)[:, None]
        else:
            codes = np.asarray(y)
            if str(config.get("head", "")).startswith("weights"):
                options["class_weights"] = class_weights(codes, len(meta["classes"]))
            target = torch.tensor(codes, dtype=torch.float32)[:, None] if meta["task"] == "binary" else \
                torch.tensor(codes, dtype=torch.long)
        task = create_task(meta["task"], **options)
        tcfg = from_dict(TrainConfig, config["train"])
        # one epoch, nothing held out: the training loss is all there is to follow
        tcfg = dataclasses.replace(tcfg, epochs=1, patience=None, refit="off", cv_folds=1, swa_start=None,
                                   schedule="constant", warmup_epochs=0, metric=None, monitor="train_loss",
                                   mode="auto", restore_best=False)
        optimizer = make_optimizer(model_parameters(self.model_, tcfg.lr), tcfg)
        if self._optimizer_state is not None:
            optimizer.load_state_dict(self._optimizer_state)
        self.model_.train()
        trainer = Trainer(self.model_, task.loss(), (*inputs, target), config=for_trainer(tcfg), optimizer=optimizer,
                          task=task,
                          metrics=task.metrics(), train_metrics=True, record=False, report=False)
        with rng_kept():
            rows = trainer.fit()
        self.model_.eval()
        self._optimizer_state = optimizer.state_dict()
        self.history_ = [*self.history_, *({**r, "epoch": len(self.history_) + 1, "partial_fit": True} for r in rows)]
        self.n_iter_ += 1
        return self

    def _outputs(self, X: Any) -> pd.DataFrame:
        """The recipe's prediction frame for X (predict's columns: prediction, p_<class>)."""
        from .recipes.tabular import predict_frame

        check_is_fitted(self, "model_")
        frame, _ = self._table(X, reset=False)
        self.model_.eval()
        return predict_frame(self.model_, self.meta_, frame)[0]

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"allow_nan": True, "non_deterministic": False}

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # the recipe imputes missing values (and adds a was-missing column)
        tags.input_tags.sparse = True  # a vectorizer's matrix, read densely
        return tags


class NNRecipeClassifier(ClassifierMixin, _NNRecipe):
    """The recipe's network for classes (binary or multiclass), as a scikit-learn classifier: `classes_`,
    `predict`, `predict_proba`, `score` (accuracy). See the module's docstring for the settings."""

    def fit(self, X: Any, y: Any) -> NNRecipeClassifier:
        """Fit the recipe's network on X and the class labels y (returns self)."""
        return self._fit(X, y)

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> NNRecipeClassifier:
        """The first call fits on this batch as `fit` does (one network; `classes`, scikit-learn's list of
        every class, must all be in it); each later call trains that network one more epoch on the batch."""
        return self._partial_fit(X, y, classes)

    def _target_more(self, y: Any, n: int) -> np.ndarray:
        """A later batch's labels as the network's class positions (meta_'s order); a new class refused."""
        y = column_or_1d(_array(y, n), warn=True)
        order = {str(c): i for i, c in enumerate(self.meta_["classes"])}
        labels = label_strings(pd.Series(y)).to_numpy(dtype=object)
        unknown = sorted({c for c in labels if c not in order})
        if unknown:
            raise ValueError(f"partial_fit: y holds classes the first batch did not ({unknown[:10]}); the network's "
                             f"classes are {[_plain(c) for c in self.classes_][:20]}")
        return np.array([order[c] for c in labels], dtype=np.int64)

    def _target(self, y: Any, n: int) -> pd.Series:
        y = column_or_1d(_array(y, n), warn=True)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__}.fit: y holds 1 class ({_plain(self.classes_[0])!r}); a classifier "
                             "needs at least two")
        self._task = "binary" if len(self.classes_) == 2 else "multiclass"
        labels = label_strings(pd.Series(self.classes_))
        # two labels that print alike, or alike but for surrounding spaces (the recipe reads labels as text
        # and takes ' a' and 'a ' for one label written two ways), cannot both be told apart
        if labels.str.strip().nunique() < len(self.classes_):
            raise ValueError(f"{type(self).__name__}.fit: the class labels {[_plain(c) for c in self.classes_][:10]} "
                             "are not distinct once written as text without surrounding spaces; relabel them (e.g. "
                             "y.str.strip() if the spaces are a typo)")
        counts = np.unique(y, return_counts=True)[1]
        single = [_plain(c) for c, k in zip(self.classes_, counts) if k < 2]
        split = self.split or _config(DataConfig, self.data_config, "data_config").split
        if single and split in ("auto", "stratified"):
            raise ValueError(f"{type(self).__name__}.fit: y holds {len(single)} class(es) with a single row "
                             f"({single[:10]}); the recipe holds out val_fraction of the rows for early stopping, "
                             "stratified by class, and needs 2 rows of each class: add rows, or merge or drop "
                             "those classes (in cross-validation, StratifiedKFold keeps a class's rows apart)")
        self._labels = dict(zip(labels, range(len(self.classes_))))
        return label_strings(pd.Series(y)).reset_index(drop=True)

    def predict_proba(self, X: Any) -> np.ndarray:
        """The probability of each class of `classes_` for each row of X."""
        out = self._outputs(X)
        proba = np.zeros((len(out), len(self.classes_)))
        for c in self.meta_["classes"]:
            proba[:, self._labels[str(c)]] = out[f"p_{c}"].to_numpy(dtype=np.float64)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of `classes_` for each row of X."""
        proba = self.predict_proba(X)  # first: it says NotFittedError before classes_ is looked up
        return self.classes_[np.argmax(proba, axis=1)]


class NNRecipeRegressor(RegressorMixin, _NNRecipe):
    """The recipe's network for a number, as a scikit-learn regressor: `predict`, `score` (R2). See the
    module's docstring for the settings."""

    _task = "regression"

    def fit(self, X: Any, y: Any) -> NNRecipeRegressor:
        """Fit the recipe's network on X and the numbers y (returns self)."""
        return self._fit(X, y)

    def partial_fit(self, X: Any, y: Any) -> NNRecipeRegressor:
        """The first call fits on this batch as `fit` does (one network); each later call trains that network
        one more epoch on the batch."""
        return self._partial_fit(X, y)

    def _target_more(self, y: Any, n: int) -> np.ndarray:
        return self._target(y, n)

    def _target(self, y: Any, n: int) -> np.ndarray:
        y = column_or_1d(_array(y, n), warn=True)
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{type(self).__name__}.fit: y must be numbers ({e})") from None
        if not np.isfinite(y).all():
            raise ValueError(f"{type(self).__name__}.fit: y holds NaN or infinity; drop those rows or fill them")
        return y

    def predict(self, X: Any) -> np.ndarray:
        """The predicted number for each row of X, in y's units."""
        return self._outputs(X)["prediction"].to_numpy(dtype=np.float64)


# ---------------------------------------------------------------------- helpers
def _array(y: Any, n: int) -> np.ndarray:
    """y as an array of n values (a list, a Series or a one-column frame)."""
    y = y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else np.asarray(y)
    if y.shape[0] != n:
        raise ValueError(f"X has {n} rows and y has {y.shape[0]}; give one target per row")
    if y.ndim == 2 and y.shape[1] > 1:
        raise ValueError(f"y has {y.shape[1]} columns; these estimators predict one target (several 0/1 labels "
                         "at once: `nnrecipe train` with the label columns named, comma-separated, as the target)")
    return y


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (np.int64(0) -> 0), for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _config(cls: type[Any], given: Any, name: str) -> Any:
    """A config parameter as its frozen dataclass: None the defaults, a dict its fields ({"epochs": 30})."""
    return as_config(cls, given, name) or cls()


def _setting(name: str, value: Any) -> Any:
    """A parameter as its config field holds it (lists as tuples: the configs are frozen; one column's name
    given alone for `categorical` or `text`, a tuple of it)."""
    if name in ("categorical", "text") and isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


def _seed(random_state: Any) -> int:
    """random_state as the recipe's integer seed (a RandomState draws one, as scikit-learn estimators do)."""
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    return int(random_state)
