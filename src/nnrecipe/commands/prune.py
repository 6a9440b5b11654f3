"""`nnrecipe prune RUN --sparsity 0.5,0.8,0.9`: M14, a thin layer over nnrecipe.recipes.prune.prune_run
(docs/pruning.md): prune, fine-tune, save each step as a folder `predict` loads, print the table."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "prune a run's model to several sparsities, fine-tuning after each (M14)"
DESCRIPTION = ("Prune RUN's model to each --sparsity in turn, fine-tuning on the run's training rows after each step "
               "and going on from that model. Each step's model is a folder `nnrecipe predict` loads "
               "(RUN/pruned/METHOD-SPARSITY/); the table of sparsity against the test metrics goes to RUN/prune.json "
               "and its plot to RUN/prune.png, and is printed. Run again after a stop, it goes on from the steps "
               "already finished. Exit 0; 2 on bad input. docs/pruning.md")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run folder printed by `nnrecipe train`")
    p.add_argument("--sparsity", default="0.5,0.8,0.9", metavar="S,S,...",
                   help="the fractions to remove, in [0, 1) and increasing: of the hidden weights (global), of each "
                        "hidden layer's neurons (structured) (default: 0.5,0.8,0.9)")
    p.add_argument("--method", default="global", metavar="METHOD",
                   help="global: the smallest weights over every hidden layer, the tensors keep their shapes; "
                        "structured: whole neurons, the MLP rebuilt smaller and faster (runs of --model mlp) "
                        "(default: global)")
    p.add_argument("--fine-tune-epochs", type=int, default=None, metavar="N",
                   help="epochs of fine-tuning after each step, the best on the validation rows kept; 0: none "
                        "(default: 5)")
    p.add_argument("--lr", type=float, default=None, help="the fine-tuning rate (default: the run's own rate)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="the run's data, when the file config.json names is not at hand (moved, or a DataFrame run)")
    p.add_argument("--out", default=None, metavar="DIR", help="where the pruned folders go (default: RUN/pruned)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..recipes.prune import FINE_TUNE_EPOCHS, check_arguments, prune_run

    epochs = FINE_TUNE_EPOCHS if args.fine_tune_epochs is None else args.fine_tune_epochs
    sparsities = check_arguments(Path(args.run), args.sparsity.split(","), args.method, epochs, args.lr, cli=True)
    result = prune_run(args.run, sparsities, method=args.method, fine_tune_epochs=epochs, lr=args.lr, data=args.data,
                       out=args.out)
    print(table(result))
    if result.resumed:
        print(f"finished before, loaded: {', '.join(f'{s:g}' for s in result.resumed)}")
    print(f"the table: {result.run_dir / 'prune.json'}, its plot: {result.run_dir / 'prune.png'}")
    print("each pruned model is a run folder: nnrecipe predict FOLDER DATA")
    return 0


def table(result: Any) -> str:
    """The sparsity-vs-metric table: the run's own model first, then each step."""
    metric = result.metric
    header = ["sparsity", "reached", "nonzero/parameters", f"test {metric}", "test loss", "predict ms",
              "seconds", "folder"]

    def row(sparsity: str, r: dict[str, Any], seconds: str, folder: str) -> list[str]:
        value, loss = r["test"].get(metric), r["test"].get("loss")
        return [sparsity, f"{r['reached']:.3f}", f"{r['nonzero']:,}/{r['parameters']:,}",
                "-" if value is None else f"{value:.4f}", "-" if loss is None else f"{loss:.4f}",
                f"{r['predict_ms']:.2f}", seconds, folder]

    lines = [header, row("0", result.unpruned, "-", str(result.run_dir))]
    lines += [row(f"{s['sparsity']:g}", s, f"{s['seconds']:.1f}", str(result.run_dir / s["folder"]))
              for s in result.steps]
    widths = [max(len(x) for x in col) for col in zip(*lines)]
    title = (f"{result.method} pruning of {result.run_dir} (predict ms: one pass over 1024 test rows repeated, "
             "128 for images; seconds: prune and fine-tune)")
    return "\n".join([title, *("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in lines)])
