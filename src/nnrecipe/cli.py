"""The command line: a thin layer over the library. `main(argv) -> int`: 0 success, 1 a failed check
or training that could not go on, 2 bad input (one clear message on stderr, no traceback)."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import importlib
import logging
import os
import sys
import tempfile
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import IMAGE_DATA, DataConfig, ModelConfig, TrainConfig, read_config_file
from .errors import ConfigError, DataError, NNRecipeError, TrainingError
from .logs import quiet

# Flags that the train command takes from each config dataclass (the rest keep their defaults).
TABLE_FLAGS = ("task", "categorical", "numeric", "drop", "text", "text_encoder", "max_tokens", "scaling", "balance",
               "neutral_label", "val_fraction", "test_fraction", "split", "surrogate", "surrogate_test")
DATA_FLAGS = (*TABLE_FLAGS, *IMAGE_DATA)  # train's: a table or images (doctor, audit, clean: tables only)
# Subcommands in modules of their own (nnrecipe/commands/): each has HELP, DESCRIPTION, add_arguments(parser)
# and run(args) -> int, and imports nothing heavy at module level (every command builds the whole parser).
COMMANDS = {"prune": "nnrecipe.commands.prune", "batchsize": "nnrecipe.commands.batchsize"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # argparse's own exit code is 2 as well
        self.print_usage(sys.stderr)
        self.exit(2, f"nnrecipe: error: {message}\n")


def _scalar(annotation: Any) -> tuple[type, bool]:
    """(base type, is a tuple) of a field annotation such as `int | None` or `tuple[str, ...]`."""
    hint = annotation
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], True
    return hint, False


def _add_config_flags(p: argparse.ArgumentParser, cls: type, only: Sequence[str] | None = None,
                      skip: Sequence[str] = ()) -> None:
    """One flag per dataclass field, its help and default taken from the field (config.py is the one place)."""
    hints = typing.get_type_hints(cls)
    group = p.add_argument_group(f"{cls.__name__} options")
    for f in dataclasses.fields(cls):
        if (only is not None and f.name not in only) or f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        base, many = _scalar(hints[f.name])
        shown = (f.metadata.get("shown") or "the rule" if f.default is None
                 else ",".join(map(str, f.default)) if many else f.default)
        helptext = f"{f.metadata.get('help', '')} (default: {shown})".replace("%", "%%")
        if base is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        elif many:
            group.add_argument(flag, dest=f.name, type=base if base is str else _int_list, default=None,
                               action="append" if base is str else "store", metavar="X" if base is str else "N,N",
                               help=helptext)
        else:
            optional = type(None) in typing.get_args(hints[f.name])
            group.add_argument(flag, dest=f.name, type=_parser(base, optional), default=None, help=helptext)


class _NoneGiven:
    """A flag given as `none` where the setting may be None (patience none: no early stopping): told apart
    from a flag not given at all (argparse's None), so that it overrides a default or a --config file."""

    def __repr__(self) -> str:
        return "none"


NONE = _NoneGiven()


def _int_list(text: str) -> tuple[int, ...] | _NoneGiven:
    if text.lower() == "none":
        return NONE
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 128,64 (or none: the sizing rule), got {text!r}") \
            from None


def _parser(base: type, optional: bool) -> Any:
    """The flag's value as its field's type; `none` for a setting that may be None (off, or the rule). A
    setting that cannot be None keeps the word (--balance none is a method)."""
    def parse(text: str) -> Any:
        if optional and text.lower() == "none":
            return NONE
        try:
            return base(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {base.__name__}{' or none' if optional else ''}, got {text!r}") \
                from None
    parse.__name__ = base.__name__
    return parse


def _config(cls: type, args: argparse.Namespace, only: Sequence[str] | None = None,
            base: dict[str, Any] | None = None, **extra: Any) -> Any:
    """The config from a file's section (`base`), then the flags given on the command line over it."""
    values = dict(base or {})
    values.update({f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                   if (only is None or f.name in only) and getattr(args, f.name, None) is not None})
    values = {k: None if v is NONE else tuple(v) if isinstance(v, list) else v for k, v in {**values, **extra}.items()}
    return cls(**values)


def _add_table_flags(p: argparse.ArgumentParser, images: bool = False) -> None:
    """DATA, --target, --config and a flag for every data, model and training setting (train, doctor).
    `images`: DATA may be images too (train), and --target is needed for a table only."""
    if images:
        p.add_argument("data", help="a CSV or Parquet table; or images: a folder with a subfolder per class, a CSV of "
                       "image paths and labels, an .npz of x and y (docs/images.md)")
        p.add_argument("--target", default=None, help="the column to predict (a table's; for images, the label "
                       "column of a CSV; a folder's classes are its subfolders)")
    else:
        p.add_argument("data", help="a CSV or Parquet file")
        p.add_argument("--target", required=True, help="the column to predict")
    p.add_argument("--config", metavar="FILE", default=None,
                   help='a JSON file {"data": {...}, "model": {...}, "train": {...}} of settings; flags win')
    _add_config_flags(p, DataConfig, only=DATA_FLAGS if images else TABLE_FLAGS)
    _add_config_flags(p, ModelConfig, skip=() if images else ("phi", "backbone", "transfer", "layout"))
    _add_config_flags(p, TrainConfig, skip=("device",))
    p.add_argument("--device", default=None, help="auto (cuda when there) | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every verdict and the library's notices as the run goes (default: a short screen)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nnrecipe", description="Execute the recipe for training a neural network, and verify it.")
    parser.add_argument("--version", action="version", version=f"nnrecipe {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="train the recipe's model on a table or a folder of images",
                           description="Read the table (or the images), infer the task, split, preprocess, audit, "
                           "build the model the recipe advises, run the checks, train with early stopping and "
                           "checkpoints, test, and leave a run folder. The last line printed is the run folder.")
    _add_table_flags(train, images=True)
    train.add_argument("--out", default="runs", help="where run folders go (default: runs)")
    train.add_argument("--note", default="", help="why this run: kept in the run's record (R4)")
    train.add_argument("--resume", metavar="RUN", default=None,
                       help="go on with an interrupted run from its last checkpoint, with the config it recorded")
    train.add_argument("--lr-find", choices=("off", "on", "confirm"), default="off",
                       help="T4 LR range test before training: on = train at its candidate (half the rate where "
                       "the loss starts to diverge), confirm = the best of short runs around it (default: off)")
    train.add_argument("--strict", action="store_true", help="stop before training when a check fails (exit 1)")
    train.add_argument("--parent", metavar="RUN", default=None,
                       help="the run this one varies: journal.json records the settings that changed (R3)")
    train.add_argument("--export", choices=("tensorboard", "mlflow"), action="append", default=[],
                       help="also log the run to TensorBoard (RUN/tensorboard) or MLflow (runs/mlflow.db); "
                       "repeatable; needs pip install 'nnrecipe[export]'")
    train.add_argument("--no-report", dest="report", action="store_false",
                       help="skip report.html (`nnrecipe report RUN` makes it later)")

    doc = sub.add_parser("doctor", help="run the recipe's checks on the model `train` would build, without training",
                         description="Build the model `train` would train on DATA with these settings and run every "
                         "check of the recipe on it (pass / warn / fail, the evidence, the fix). Exit 1 when a check "
                         "fails.")
    _add_table_flags(doc)

    aud = sub.add_parser("audit", help="look at the data before training: labels, duplicates, corrupted rows, "
                         "label noise, leakage, scales, size, clusters",
                         description="Audit DATA as `train` would read and split it (Karpathy's recipe: become "
                         "one with the data): D1 label distribution, D2 text lengths, D3 duplicates, corrupted rows, "
                         "constant and ID-like columns, D4 conflicting labels and label noise, leakage, D8 feature "
                         "scales, D5 data size against the model's, D15 clusters. Prints one screen; exit 1 when a "
                         "finding fails.")
    _add_table_flags(aud, images=True)
    aud.add_argument("--test", metavar="FILE", default=None,
                     help="a test table to check for rows that are also in DATA")
    aud.add_argument("--json", metavar="FILE", default=None, help="write the full findings as JSON to FILE")
    aud.add_argument("--out", metavar="DIR", default=None,
                     help="a folder for audit.json and the label distribution plot (label_distribution.png)")

    cln = sub.add_parser("clean", help="write a cleaned copy of a table and a log of every row removed (D16)",
                         description="Write DATA less its corrupted rows (no target; empty, infinite or unparsable "
                         "numeric cells), exact duplicates (the first copy stays) and rows with conflicting labels, "
                         "each rule switchable, to --out (CSV, or Parquet by the extension), and a CSV log of every "
                         "removed row: its data row, its line in the file, the rule and the detail. DATA is only "
                         "read; the copy is written as a plain comma-separated UTF-8 CSV.")
    cln.add_argument("data", help="a CSV or Parquet file")
    cln.add_argument("--target", required=True, help="the column to predict")
    cln.add_argument("--out", required=True, help="the cleaned copy: a .csv or .parquet file (never DATA itself)")
    cln.add_argument("--log", metavar="FILE", default=None,
                     help="the CSV log of removed rows (default: beside --out, NAME.removed.csv)")
    cln.add_argument("--keep-corrupted", action="store_true", help="keep rows without a target or with bad cells")
    cln.add_argument("--keep-duplicates", action="store_true", help="keep exact duplicate rows")
    cln.add_argument("--keep-conflicts", action="store_true",
                     help="keep rows whose inputs repeat another row's under a different label")
    cln.add_argument("--drop-suspicious", action="store_true",
                     help="also drop the rows label-noise estimation flags (D4; sampled on big tables)")
    cln.add_argument("--config", metavar="FILE", default=None, help='a JSON file with a "data" section; flags win')
    cln.add_argument("--seed", type=int, default=0, help="the split and label-noise seed, as train's (default: 0)")
    _add_config_flags(cln, DataConfig, only=TABLE_FLAGS)

    runs = sub.add_parser("runs", help="list the runs in a folder: id, date, note, data, settings, best metric",
                          description="One line per run folder under FOLDER, oldest first: its id, date, note, data, "
                          "the settings that differ between the listed runs (else hidden, optimizer, lr, batch "
                          "size) and the best value of the monitored metric.")
    runs.add_argument("folder", nargs="?", default="runs", help="the folder `train --out` wrote to (default: runs)")
    runs.add_argument("--sort", metavar="KEY", default=None,
                      help="sort by a column (id, date, note, data, best) or a setting (lr, train.lr); "
                      "--sort=-KEY descends")
    runs.add_argument("--filter", metavar="KEY~TEXT|KEY=VALUE", action="append", default=[],
                      help="keep runs whose KEY contains TEXT (note~baseline) or equals VALUE (lr=0.001); repeatable")
    runs.add_argument("--clean", action="store_true",
                      help="first delete the temporary files that killed runs left under FOLDER (a resume does it "
                      "for its own run)")

    compare = sub.add_parser("compare", help="compare runs in one HTML page: curves overlaid, settings that differ",
                             description="Write an HTML page with the runs' curves overlaid in one chart and their "
                             "settings side by side; when exactly one setting differs, it is named (R3, R7).")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run folders, two or more")
    compare.add_argument("--out", default="compare.html", help="the page to write (default: compare.html)")

    report = sub.add_parser("report", help="make a run's report.html again",
                            description="Write RUN/report.html from the run folder alone: verdicts, curves, labels, "
                            "errors, worst rows, predictions over the epochs, inputs, record.")
    report.add_argument("run", help="a run folder")
    report.add_argument("--out", default=None, help="where to write it (default: RUN/report.html)")

    export = sub.add_parser("export", help="log a run to TensorBoard or MLflow (pip install 'nnrecipe[export]'), or "
                            "write its model as ONNX (pip install 'nnrecipe[onnx]')",
                            description="Log a run folder's settings and per-epoch metrics to TensorBoard event files "
                            "(RUN/tensorboard) or to MLflow (default store: a SQLite file beside the run folders, "
                            "runs/mlflow.db; $MLFLOW_TRACKING_URI or --tracking-uri for another); or write the run's "
                            "model as RUN/model.onnx, checked with onnxruntime against the model before it is kept "
                            "(docs/onnx.md).")
    export.add_argument("run", help="a run folder")
    export.add_argument("--to", choices=("tensorboard", "mlflow", "onnx"), required=True,
                        help="where to log it (tensorboard, mlflow), or the format to write (onnx)")
    export.add_argument("--tracking-uri", default=None,
                        help="MLflow's tracking URI (default: sqlite:///<RUN's folder>/mlflow.db)")
    export.add_argument("--out", default=None, help="--to onnx: the file to write (default: RUN/model.onnx)")

    from .tune.study import PRUNERS, SAMPLERS

    tune = sub.add_parser("tune", help="search hyperparameters with optuna, then retrain the best (R1, R2)",
                          description="Random search (or TPE) over a search space for --trials trials of `train` on "
                          "DATA, each scored on the validation split, with pruning on that score each epoch; "
                          "--workers processes share one study in --storage (default: a SQLite file in the study "
                          "folder), and running the same command again resumes it. Then the best configuration is "
                          "retrained on train+validation for its best epoch count (a run folder `predict` takes) "
                          "and report.html shows the trials, the parameter importances, the optimization history "
                          "and the retrained model's test score. The last line printed is the retrained run.")
    _add_table_flags(tune)
    tune.add_argument("--trials", type=int, default=20, help="trials in the study, all workers together (default: 20)")
    tune.add_argument("--space", metavar="FILE", default=None,
                      help="a YAML search space (default: the documented one, nnrecipe/tune/default_space.yaml)")
    tune.add_argument("--sampler", choices=SAMPLERS, default="random",
                      help="random (Rishit Dagli; Bergstra & Bengio 2012) or tpe (default: random)")
    tune.add_argument("--sampler-seed", type=int, default=0, help="seeds the sampler (--seed seeds training "
                      "and the split, which every trial shares) (default: 0)")
    tune.add_argument("--pruner", choices=PRUNERS, default="median",
                      help="stop trials behind the others on the validation score (default: median)")
    tune.add_argument("--storage", metavar="URL", default=None,
                      help="a database URL optuna accepts, for several machines: postgresql://user@host/db "
                      "(pip install nnrecipe[tune-postgres]), mysql://... (default: STUDY/study.db, SQLite)")
    tune.add_argument("--study", default=None, help="the study's name; the same name resumes it "
                      "(default: DATA's file name and the target)")
    tune.add_argument("--workers", type=int, default=1, help="processes on this machine sharing the study (default: 1)")
    tune.add_argument("--timeout", type=float, default=None, metavar="S",
                      help="start no trial after S seconds; what is left waits for a resume (default: none)")
    tune.add_argument("--out", default="studies", help="where study folders go (default: studies)")
    tune.add_argument("--no-refit", action="store_true", help="skip retraining the best on train+validation")

    abl = sub.add_parser("ablate", help="change one setting at a time from a run and compare (R3)",
                         description="Train RUN's configuration with one setting changed at a time, for each "
                         "value and --seeds seeds (the base value too: the control), each run naming RUN as its "
                         "parent, and print the runs side by side (mean +- std over the seeds).")
    abl.add_argument("run", help="the base run folder")
    abl.add_argument("--vary", action="append", required=True, metavar="SETTING=V1,V2",
                     help="a setting and its values, as lr=1e-2,1e-3,1e-4 (widths: hidden=64;128,64); repeat "
                     "the flag to vary several settings, each on its own")
    abl.add_argument("--seeds", type=int, default=1, help="seeds per value: RUN's seed, +1, ... (default: 1)")
    abl.add_argument("--data", default=None, help="the table, when RUN's config names no file")
    abl.add_argument("--out", default=None, help="where the ablation folder goes (default: beside RUN)")

    cache = sub.add_parser("cache", help="show the size of the parsed and prepared tables' cache (D13), or clear it",
                           description="The cache lives in $NNRECIPE_CACHE (default ~/.cache/nnrecipe) and is "
                           "trimmed to NNRECIPE_CACHE_MAX (default 10G; off: no limit), least recently used first.")
    cache.add_argument("--clear", action="store_true", help="delete every cached table (they are made again "
                       "when next read)")

    predict = sub.add_parser("predict", help="predict with a run's model",
                             description="Load a run's model (safetensors + JSON, nothing unpickled), check that "
                             "DATA has the columns it needs, and write predictions (with class probabilities).")
    predict.add_argument("run", help="a run folder printed by `nnrecipe train`")
    predict.add_argument("data", help="a CSV or Parquet file with the model's input columns; for a model of images, "
                         "a folder of images (class subfolders optional), a CSV of image paths or an .npz")
    predict.add_argument("--out", default=None, help="CSV to write (default: print to stdout)")
    predict.add_argument("--path-column", default=None, metavar="COL",
                         help="a model of images given a CSV: the column of image paths (default: the one column "
                         "whose cells are image files)")
    predict.add_argument("--keep", action="append", default=[], metavar="COL",
                         help="copy input column COL to the output, before the predictions (an ID to join on); "
                         "repeat for several")
    embed = sub.add_parser("embed", help="write the embeddings a run's image model gives each image (M12), a table "
                           "to train on", description="Cut a run's network at a layer and write one row per image: "
                           "its file, its label (when the source has labels) and the layer's output, averaged over "
                           "the pixels of a feature map: `nnrecipe train FILE --target label --drop file` trains "
                           "on it.")
    embed.add_argument("run", help="a run folder of images printed by `nnrecipe train`")
    embed.add_argument("data", help="a folder of images (class subfolders optional), a CSV of image paths or an .npz")
    embed.add_argument("--out", required=True, help="CSV to write")
    embed.add_argument("--at", default=None, metavar="LAYER", help="the layer to cut at (a module name, as "
                       "model.named_modules() gives: stages.1); default: the embedding the head reads")
    embed.add_argument("--path-column", default=None, metavar="COL", help="given a CSV: its column of image paths")
    for name, module in COMMANDS.items():  # the subcommands that live in a module of their own
        command = importlib.import_module(module)
        command.add_arguments(sub.add_parser(name, help=command.HELP, description=command.DESCRIPTION))
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def _check_out(path: str, kind: str, example: str = "predictions.csv", flag: str = "--out",
               runs: tuple[str, ...] = (), inputs: tuple[str, ...] = ()) -> None:
    """A bad --out (or `flag`) fails at once with the fix, not with a traceback after the work ('folder': it
    holds run folders, made when missing; 'file': a file, such as `example`, written into a folder that must
    exist). A file is named with `example`'s suffix (what the command writes: '.csv' text under a '.parquet'
    name, or HTML over a CSV, was written before), and never replaces a file of the run folders `runs` (its
    model.json), but the one the command itself writes there (`example`'s name: report.html)."""
    if not str(path).strip():
        raise ConfigError(f"{flag} is empty; give a {'folder' if kind == 'folder' else 'file name, such as ' + example}")
    out = Path(path)
    if kind == "folder" and out.exists() and not out.is_dir():
        raise ConfigError(f"{flag} {path} is a file; give a folder for the run folders (default: runs)")
    if kind == "file" and out.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give a file name, such as {out / example}")
    if kind == "file" and out.parent.exists() and not out.parent.is_dir():
        raise ConfigError(f"{flag} {path}: '{out.parent}' is a file, not a folder; write elsewhere")
    if kind == "file" and not out.parent.is_dir():
        raise ConfigError(f"{flag} {path}: folder '{out.parent}' does not exist; create it, or write elsewhere")
    # before the work, not after it: the folder made (or the file written) under the nearest existing folder
    base = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if kind == "folder" and not base.is_dir():
        raise ConfigError(f"{flag} {path}: '{base}' is a file, not a folder; give a folder for the run folders")
    if base.is_dir():
        try:  # a folder made and removed: permissions, a read-only file system, /sys (os.access says yes to root)
            os.rmdir(tempfile.mkdtemp(prefix=".nnrecipe-probe-", dir=base))
        except OSError as e:
            raise ConfigError(f"{flag} {path}: folder '{base}' cannot be written to ({e.strerror or e}); write "
                              "elsewhere") from None
    suffix = Path(example).suffix
    device = out.exists() and not out.is_file()  # /dev/stdout, a process substitution: written as a stream
    if kind == "file" and suffix and not device and out.suffix.lower() not in (
            suffix, ".htm" if suffix == ".html" else suffix):
        raise ConfigError(f"{flag} {path}: this command writes a {suffix} file; name it so, such as "
                          f"{out.with_suffix(suffix) if out.suffix else out.with_name(out.name + suffix)}")
    for given in inputs:  # the command's input: read again later, or gone (embed replaced its CSV of paths);
        # a run folder inside a folder of images is read as one more class by the next run
        if Path(given).exists() and (out.resolve() == Path(given).resolve() or (
                Path(given).is_dir() and out.resolve().is_relative_to(Path(given).resolve()))):
            where = "the input file" if Path(given).is_file() else "the input folder" \
                if out.resolve() == Path(given).resolve() else "inside the input folder"
            why = " (a folder in a folder of images is read as a class of its own)" if kind == "folder" else ""
            raise ConfigError(f"{flag} {path} is {where} {given}; the input is never written to{why}: write elsewhere")
    if kind == "file" and out.is_file():
        # a file of a run folder: the command's own runs' (model.json, say) and any other run's (another run's
        # report.html was replaced by this one's page); only the file the command writes into its own run stays
        owner = next((p for p in out.resolve().parents if _is_run(p)), None)
        own = owner is not None and any(Path(r).is_dir() and owner == Path(r).resolve() for r in runs)
        if owner is not None and not (own and out.name == example):
            raise ConfigError(f"{flag} {path} is a file of run folder {owner}, which it would replace; write "
                              "elsewhere")


def _is_run(folder: Path) -> bool:
    """Whether `folder` is a run folder: its config.json the record of an nnrecipe run (a project's own
    config.json beside its checkpoints/ is not one)."""
    from .io import read_json_or_none
    from .track.runs import is_run_record

    config = read_json_or_none(folder / "config.json") if (folder / "config.json").is_file() else None
    return is_run_record(config) and any((folder / f).exists() for f in ("metrics.jsonl", "results.json", "checkpoints"))


def _images(args: argparse.Namespace) -> bool:
    """DATA is images (train, audit); a table without --target is refused with the fix."""
    from .data.image import image_source

    if not Path(args.data).exists():
        raise DataError(f"file '{args.data}' does not exist; check the path")
    # a folder without images and without --target: the image reader says what it lacks
    from .data.text.folder import is_text_folder

    dropped = [c.strip() for item in (getattr(args, "drop", None) or []) for c in str(item).split(",")]
    if is_text_folder(args.data):  # a subfolder of .txt files per class: a table (file, text, label)
        return False
    images = image_source(args.data, dropped) or (Path(args.data).is_dir() and args.target is None)
    if not images and args.target is None:  # --target "" goes on, to be refused with the table's own message
        raise ConfigError(f"{args.data}: a table needs --target, the column to predict (images: give a folder with "
                          "a subfolder per class, a CSV of image paths, or an .npz)")
    return images


def cmd_train(args: argparse.Namespace) -> int:
    _check_out(args.out, "folder", inputs=(args.data,))
    file = read_config_file(args.config) if args.config else {}
    images = _images(args)
    settings = dict(
        out=args.out, note=args.note, progress=sys.stdout.isatty(), lr_find=args.lr_find,
        resume=args.resume, strict=args.strict, parent=args.parent, config_file=args.config, report=args.report,
        export=args.export,
        data_config=_config(DataConfig, args, only=DATA_FLAGS, base=file.get("data"), target=args.target or ""),
        model_config=_config(ModelConfig, args, base=file.get("model")),
        train_config=_config(TrainConfig, args, base=file.get("train")))
    if images:
        from .recipes.images import train_images

        run = train_images(args.data, target=args.target or "", **settings)
    else:
        from .recipes import train_table

        run = train_table(args.data, args.target, **settings)  # type: ignore[arg-type]
    from .recipes.pipeline import last_lines, screen

    # exit 0: the run completed and wrote its folder, whatever its verdicts (they are printed first, failures
    # on top); 1 is a run that stopped (--strict, a non-finite loss), 2 bad input (main)
    if args.verbose:
        print((run.run_dir / "summary.txt").read_text() + last_lines(run))
    else:
        print(screen(run), end="")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .recipes import doctor_table
    from .recipes.tabular import refuse_training_settings

    # the flags typed here (a --config file shared with train may hold a run's settings): the teacher and the
    # attack are checked (a bad teacher fails), though the checks run the supervised step
    refuse_training_settings(_config(TrainConfig, args), "the doctor runs its checks on the model without training it",
                             kept=("teacher", "distill_temperature", "distill_alpha", "adversarial", "adv_epsilon",
                                   "adv_steps", "adv_step_size"))
    file = read_config_file(args.config) if args.config else {}
    _refuse_unread(_config(ModelConfig, args, base=file.get("model")), _config(TrainConfig, args, base=file.get("train")))
    with quiet():  # the verdicts are the output: not also a log line each
        diagnosis = doctor_table(
            args.data, args.target,
            data_config=_config(DataConfig, args, only=DATA_FLAGS, base=file.get("data"), target=args.target),
            model_config=_config(ModelConfig, args, base=file.get("model")),
            train_config=_config(TrainConfig, args, base=file.get("train")))
    print(diagnosis.table())
    print(diagnosis.counts_line())
    return 1 if diagnosis.failed else 0


def _refuse_unread(mcfg: ModelConfig, tcfg: TrainConfig) -> None:
    """The model's and optimizer's settings typed that the model train would build never reads (--activation
    beside TabM, --momentum beside Adam): refused as train refuses them."""
    from .config import unread_settings

    unused = unread_settings(mcfg, tcfg)
    if unused:
        raise ConfigError("; ".join(unused) + ": add what reads them, or leave them out")


def cmd_audit(args: argparse.Namespace) -> int:
    from .data.audit import audit
    from .io import write_json

    if args.json:
        _check_out(args.json, "file", "audit.json", "--json", inputs=(args.data,))
    if args.out is not None:
        _check_out(args.out, "folder", inputs=(args.data,))
    file = read_config_file(args.config) if args.config else {}
    tcfg = _config(TrainConfig, args, base=file.get("train"))
    if _images(args):
        from .recipes.images import audit_image_data

        if args.test:
            raise ConfigError("--test compares two tables; for images, the audit finds duplicates across the splits "
                              "train makes (D3 duplicate images)")
        dcfg = _config(DataConfig, args, only=DATA_FLAGS, base=file.get("data"), target=args.target or "")
        mcfg, plain = _config(ModelConfig, args, base=file.get("model")), ModelConfig()
        given = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(ModelConfig)
                 if getattr(mcfg, f.name) != getattr(plain, f.name)]
        if given:
            raise ConfigError(f"{', '.join(given)}: model settings, and the audit of images builds no model; leave "
                              "them out (train takes them)")
        with quiet():
            found = audit_image_data(args.data, dcfg, seed=tcfg.seed, out=args.out)
        print(found.summary())  # type: ignore[attr-defined]
        if args.json:
            write_json(args.json, found.to_json())  # type: ignore[attr-defined]
            print(f"findings: {args.json}")
        if args.out:
            print(f"audit.json and the plots: {args.out}")
        return 1 if found.failed else 0
    # a table's audit reads the seed and, to size the model (D7), its settings: any other flag typed would change
    # nothing (the image audit above refuses the model's too)
    typed, plain = _config(TrainConfig, args), TrainConfig()
    given = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(TrainConfig)
             if f.name != "seed" and getattr(typed, f.name) != getattr(plain, f.name)]
    if given:
        raise ConfigError(f"{', '.join(given)}: settings of a training run, and the audit looks at the data without "
                          "training; leave them out (train takes them)")
    _refuse_unread(_config(ModelConfig, args, base=file.get("model")), plain)
    with quiet():  # the findings are the output
        found = audit(args.data, args.target, seed=tcfg.seed, test=args.test, out=args.out,
                      data_config=_config(DataConfig, args, only=DATA_FLAGS, base=file.get("data"), target=args.target),
                      model_config=_config(ModelConfig, args, base=file.get("model")))
    print(found.summary())
    if args.json:
        write_json(args.json, found.to_json())
        print(f"findings: {args.json}")
    if args.out:
        print(f"audit.json{' and the plot' if found.info.get('plot') else ''}: {args.out}")
    return 1 if found.failed else 0


def cmd_clean(args: argparse.Namespace) -> int:
    from .data.audit import clean

    for flag, given, example in (("--out", args.out, "cleaned.csv"), ("--log", args.log, "removed.csv")):
        if given:  # both writable before either is written
            _check_out(given, "file", Path(given).name if Path(given).suffix else example, flag)
    file = read_config_file(args.config) if args.config else {}
    done = clean(args.data, args.target, args.out, log_file=args.log, seed=args.seed,
                 data_config=_config(DataConfig, args, only=DATA_FLAGS, base=file.get("data"), target=args.target),
                 corrupted=not args.keep_corrupted, duplicates=not args.keep_duplicates,
                 conflicts=not args.keep_conflicts, suspicious=args.drop_suspicious)
    counts = done.removed["rule"].value_counts().to_dict()
    total = done.kept + len(done.removed)
    print(f"kept {done.kept} of {total} rows; removed {len(done.removed)}"
          + (f" ({', '.join(f'{n} {rule}' for rule, n in counts.items())})" if counts else ""))
    print(f"cleaned copy: {done.out}")
    print(f"removed rows: {done.log}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from .io import sweep_temp
    from .track import filter_runs, format_runs, list_runs, sort_runs

    if args.clean and Path(args.folder).is_dir():
        removed = sweep_temp(args.folder)
        print(f"removed {len(removed)} temporary files left by killed runs ({_size(sum(s for _, s in removed))})"
              + "".join(f"\n  {path}" for path, _ in removed), file=sys.stderr)
    found = list_runs(args.folder)
    runs = filter_runs(found, args.filter)
    if args.sort:
        runs = sort_runs(runs, args.sort)
    if not runs:
        print(f"no run in {args.folder}" + (f" matches {' and '.join(args.filter)} (of {len(found)})" if found else ""),
              file=sys.stderr)
        return 0
    print(format_runs(runs), end="")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .report import write_compare
    from .track import compare_runs

    if args.out is not None:
        _check_out(args.out, "file", "compare.html", runs=tuple(args.runs))
    changed = compare_runs(args.runs)
    out = write_compare(args.runs, args.out, comparison=changed)  # the run folders are read once
    from .track import format_runs

    print(f"one setting changed: {changed.changed}" if changed.changed
          else f"{len(changed.diff)} settings changed: {', '.join(changed.diff) or 'none'}")
    if changed.apart:
        print(f"note: {changed.apart}")
    # each run with the settings that changed, its best validation value and its test metric (issue 19)
    print(format_runs(changed.runs, params=[k for k in changed.diff if k not in ("source", "data.sha256")]), end="")
    print(out)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    if args.out is not None:
        _check_out(args.out, "file", "report.html", runs=(args.run,))
    print(write_report(args.run, args.out))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .track.export import export_mlflow, export_tensorboard

    if args.to == "onnx":
        from .recipes.onnx import export_onnx

        if args.tracking_uri is not None:
            raise ConfigError(f"--tracking-uri {args.tracking_uri} is MLflow's; --to onnx writes a file (--out): "
                              "leave it out")
        if args.out is not None:
            _check_out(args.out, "file", "model.onnx", runs=(args.run,))
        print(export_onnx(args.run, args.out))
        return 0
    if args.out is not None:
        raise ConfigError(f"--out {args.out}: only --to onnx writes a file; TensorBoard's goes to RUN/tensorboard, "
                          "MLflow's to its tracking store (--tracking-uri)")
    print(export_mlflow(args.run, args.tracking_uri) if args.to == "mlflow" else export_tensorboard(args.run))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .tune import tune_table

    _check_out(args.out, "folder", inputs=(args.data,))
    file = read_config_file(args.config) if args.config else {}
    result = tune_table(
        args.data, args.target, trials=args.trials, space=args.space, sampler=args.sampler, pruner=args.pruner,
        storage=args.storage, study=args.study, workers=args.workers, timeout=args.timeout, out=args.out,
        seed=args.sampler_seed, refit=not args.no_refit,
        data_config=_config(DataConfig, args, only=DATA_FLAGS, base=file.get("data"), target=args.target),
        model_config=_config(ModelConfig, args, base=file.get("model")),
        train_config=_config(TrainConfig, args, base=file.get("train")))
    print(f"study {result.study}: {', '.join(f'{n} {s.lower()}' for s, n in result.counts.items())}")
    print(f"best trial {result.best_trial}: {result.metric} {result.best_value:.4f} {result.best_params}")
    print(f"report: {result.report}")
    if result.refit is not None:
        from .recipes.pipeline import needs_attention

        name, value = result.refit.metric
        print(f"retrained on train+validation: test {name} {value:.4f}")
        for v in needs_attention(result.refit):  # its failed checks, on top of the folder (tune exits 0 as train)
            print(v.line())
        print(result.refit.run_dir)
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from .tune import ablate
    from .tune.ablate import parse_vary

    if args.out is not None:
        _check_out(args.out, "folder", inputs=(args.data,) if args.data else ())
    result = ablate(args.run, parse_vary(args.vary), seeds=args.seeds, data=args.data, out=args.out)
    print(result.table, end="")
    print(result.folder)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    import shutil

    from .data import cache

    root, limit = cache.cache_root(), cache.cache_limit()
    kinds = {kind: cache.cache_folder(kind=kind) for kind in ("tables", "prepared", "images")}
    if args.clear:
        files, size = map(sum, zip(*(cache.usage(folder) for folder in kinds.values())))
        for folder in kinds.values():
            shutil.rmtree(folder, ignore_errors=True)
        print(f"removed {files} files ({_size(size)}) from {root}")
        return 0
    shown = "off" if limit is None else _size(limit)
    print(f"cache {root} (limit {shown}, NNRECIPE_CACHE_MAX)")
    for kind, folder in kinds.items():
        files, size = cache.usage(folder)
        print(f"  {kind}: {files} files, {_size(size)}")
    return 0


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024:
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def cmd_embed(args: argparse.Namespace) -> int:
    from .io import write_output
    from .recipes.transfer import embed_images

    _check_out(args.out, "file", "embeddings.csv", runs=(args.run,), inputs=(args.data,))
    # a folder without model.json (missing, or not a run) is named by load_model, not called a table's run
    if (Path(args.run) / "model.json").is_file() and _run_kind(args.run) != "images":
        raise ConfigError(f"run {args.run} was trained on a table; `embed` cuts a network of images (a table's own "
                          "columns are its features already)")
    try:
        frame = embed_images(args.run, args.data, at=args.at, path_column=args.path_column)
    except ConfigError as e:  # the Python call's words for the layer, the flag's here
        prefix = f"cut(at={args.at!r})"
        if args.at is None or not str(e).startswith(prefix):
            raise
        raise ConfigError(f"--at {args.at}{str(e)[len(prefix):]}") from None
    try:
        write_output(args.out, frame.to_csv(index=False, float_format="%.6g"))
    except OSError as e:
        raise ConfigError(f"--out {args.out} cannot be written ({e.strerror or e}); write elsewhere") from None
    print(f"wrote the embeddings of {len(frame)} images ({frame.shape[1] - 1 - ('label' in frame)} values each) to "
          f"{args.out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .io import write_output
    from .recipes import predict_table

    if args.out is not None:
        if args.out == "-":
            raise ConfigError("--out -: predict prints the predictions as CSV when --out is left out; leave it out "
                              "to print them")
        _check_out(args.out, "file", runs=(args.run,), inputs=(args.data,))
    if _run_kind(args.run) == "images":
        from .recipes.images import predict_images

        if args.keep:
            raise ConfigError("--keep copies table columns; predictions on images carry each image's file already")
        preds, report = predict_images(args.run, args.data, path_column=args.path_column)
        report["unseen_cells"] = {}
    else:
        if args.path_column:
            raise ConfigError(f"--path-column names a CSV's column of image paths, and run {args.run} was trained on "
                              "a table; leave it out")
        preds, report = predict_table(args.run, args.data, keep=args.keep)
    if args.out:
        try:
            write_output(args.out, preds.to_csv(index=False))
        except OSError as e:
            raise ConfigError(f"--out {args.out} cannot be written ({e.strerror or e}); write the predictions to "
                              "another file") from None
        print(f"wrote {len(preds)} predictions to {args.out}")
    else:
        preds.to_csv(sys.stdout, index=False)
    if report.get("unreadable"):
        files = report["unreadable"]
        print(f"{len(files)} file(s) could not be read and have no prediction: {', '.join(files[:10])}"
              + (" ..." if len(files) > 10 else ""), file=sys.stderr)
    if report.get("unknown_labels"):
        what = ("target values that are not numbers" if "rmse" in report or report.get("task") == "regression"
                else "labels that are not among the model's classes")
        shown_labels = ", ".join(repr(v) for v in report["unknown_labels"][:10])
        print(f"{what} ({shown_labels}{' ...' if len(report['unknown_labels']) > 10 else ''}): those "
              f"{report['unknown_rows']} {report.get('unknown_word', 'images')} are not scored"
              + ("" if report.get("unknown_word") != "rows" or what.startswith("target") else
                 f" (the model's classes: {', '.join(map(str, report.get('classes', [])[:10]))})"), file=sys.stderr)
        report["unscored_rows"] -= report["unknown_rows"]  # said here, in the words of images
    unseen = report["unseen_cells"]
    if unseen:
        print("cells the model had not seen in training (imputed or unknown category): "
              + ", ".join(f"{c} {n}" for c, n in unseen.items()), file=sys.stderr)
    for col, c in report.get("text", {}).items():  # text columns: what the model could not read
        print(f"text column '{col}': {c['truncated_rows']} of {report['rows']} rows cut at the maximum length; "
              f"{c['unknown_tokens']} of {c['tokens']} word tokens not in the training vocabulary", file=sys.stderr)
    shown = sys.stderr if not args.out else sys.stdout
    for name in ("accuracy", "rmse"):
        if name in report:
            without = report.get("unscored_rows", 0)
            print(f"{name} against the target column: {report[name]:.4f}"
                  + (f" ({report['accuracy_of']})" if name == "accuracy" and report.get("accuracy_of") else "")
                  + (f" (on the {report['scored_rows']} rows that hold a target; {without} without one not scored)"
                     if without else ""), file=shown)
    if "scored_rows" in report and not report["scored_rows"] and not report.get("unknown_labels"):
        print(f"not scored: the target column is empty in all {report['unscored_rows']} rows", file=shown)
    return 0


def _run_kind(run: str) -> str:
    """The kind of data a run folder's model was trained on (model.json's "kind"; tables before images had none)."""
    from .io import read_json_or_none

    meta = read_json_or_none(Path(run) / "model.json")
    return str(meta.get("kind") or "table") if isinstance(meta, dict) else "table"


class _Once(logging.Filter):
    """Each message once per command: a search's trials repeat their runs' notices (issue 19)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def _log_once(level: int) -> None:
    """The library's log on stderr at `level` (notices with -v, else warnings and errors), each message once."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_Once())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_nnrecipe", False)]:  # main() called again in one process
        root.removeHandler(old)
    handler._nnrecipe = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _log_once(logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # T10 under torchrun: rank 0 alone prints and logs
        from .train.distributed import quiet_other_ranks

        quiet_other_ranks()
    try:
        if args.command in COMMANDS:
            return importlib.import_module(COMMANDS[args.command]).run(args)
        return {"train": cmd_train, "doctor": cmd_doctor, "audit": cmd_audit, "clean": cmd_clean,
                "runs": cmd_runs, "compare": cmd_compare, "report": cmd_report, "export": cmd_export,
                "tune": cmd_tune, "ablate": cmd_ablate, "cache": cmd_cache,
                "predict": cmd_predict, "embed": cmd_embed}[args.command](args)
    except TrainingError as e:
        print(f"nnrecipe: training stopped: {e}", file=sys.stderr)
        return 1
    except (NNRecipeError, ConfigError) as e:
        print(f"nnrecipe: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: what was written is whole (every file is renamed into place)
        again = {"train": "; a run folder resumes from its last checkpoint: the same command with --resume RUN "
                          "(`nnrecipe runs` lists the run folders)",
                 "tune": "; the same tune command resumes the study (an interrupted trial is run again)"}
        print(f"nnrecipe: interrupted{again.get(args.command, '')}", file=sys.stderr)
        return 130
    except OSError as e:  # a full disk, a folder that cannot be written: the system's words, and the file
        if e.errno == errno.EPIPE:  # `nnrecipe predict ... | head`: the reader had what it wanted
            return 0
        if getattr(args, "verbose", False):
            raise
        where = f" '{e.filename}'" if e.filename else ""
        fix = ("free disk space (or raise the file size limit)" if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
               else "write elsewhere" if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else
               "check the file and the folder (-v shows where it happened)")
        again = {"train": "; what was written before is whole, and a run folder resumes with --resume RUN",
                 "tune": "; what was written before is whole, and the same tune command resumes the study"
                 }.get(args.command, "")
        print(f"nnrecipe: error: {e.strerror or e}{where}: {fix}{again}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
