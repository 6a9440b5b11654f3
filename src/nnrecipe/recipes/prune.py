"""M14: weight pruning of a finished run, iterative prune-and-fine-tune (Han et al., NeurIPS 2015, "Learning
both Weights and Connections for Efficient Neural Networks": prune the smallest weights, retrain the rest,
repeat at a higher sparsity; Zhu & Gupta 2017, "To prune, or not to prune", on the gradual schedule).

Two methods, both through torch.nn.utils.prune (the operations on the network: models/prune.py):
- `global`: the weights of smallest magnitude over every hidden layer at once (`global_unstructured` with
  `L1Unstructured`); the masks stay on while the network is fine-tuned, so a pruned weight stays zero, and
  `prune.remove` makes them permanent before saving. The tensors keep their shapes: the saved model is
  as large and as fast as before, with zeros in it (what sparse kernels or compression can use).
- `structured`: whole hidden neurons of an MLP, the rows of smallest L2 norm of each hidden layer
  (`ln_structured`, dim 0), then the network is rebuilt without them (models/mlp.py's MLP with fewer units,
  the neuron's constant output folded into the next layer's bias, so the function is unchanged in eval
  mode) and fine-tuned: fewer parameters and a faster predict. TabM and the CNN are refused: their
  blocks cannot lose units one layer at a time (TabM's share one width; a residual block adds its input).

The output layer is never pruned (it is small, and its rows are the classes), nor are embeddings and
normalization layers. Each sparsity's model is a folder `predict` loads as it loads a run (docs/pruning.md).
"""


from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, did_you_mean
from ..figures import plain_text
from ..io import atomic_write, read_json_or_none, write_json
from ..models import Ensemble
from ..models.artifact import load_model, save_model
from ..models.mlp import MLP
from ..models.prune import count, make_permanent, mlps, prune_global, prune_neurons

log = logging.getLogger("nnrecipe")

METHODS = {"global": "magnitude, every hidden weight at once", "structured": "whole neurons, the MLP shrinks"}
# fine-tuning after each step: 5 epochs at the run's own rate. On MLP runs (128, 128 units) of
# nnrecipe.testing.small_table(400), seeds 0-5, the run's rate beat a tenth of it (Han et al. 2015 retrain
# lower): mean test accuracy at 97% global 0.939 against 0.889, at 90% of the neurons (structured) 0.870
# against 0.697; at 50% both kept the unpruned 0.986 within a test row
FINE_TUNE_EPOCHS = 5
# predict is timed on the test rows repeated to this many rows (a handful of rows would time the overhead)
PREDICT_ROWS, PREDICT_IMAGES = 1024, 128
FORMAT, VERSION = "nnrecipe-prune", 1
# a step's record beyond its settings: what was measured, and the run's folder as it was named (the weights'
# hash names the start): left out of what a resume compares
NOT_SETTINGS = ("seconds", "predict_ms", "run")


@dataclass
class PruneResult:
    """One `prune_run`: the unpruned model's row and one row per sparsity (prune.json holds them)."""
    run_dir: Path
    method: str
    metric: str  # the headline test metric (accuracy, or RMSE in the target's units)
    unpruned: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    resumed: list[float] = field(default_factory=list)  # the sparsities found finished and not redone


def check_sparsities(values: Any, argument: str = "sparsities") -> tuple[float, ...]:
    """The sparsities as floats in [0, 1), strictly increasing; every problem named at once."""
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    shown = f"{argument} {','.join(map(str, values))}" if argument.startswith("--") else _shown(argument, tuple(values))
    fix = ("give the fractions to remove, in [0, 1) and increasing, such as "
           + ("0.5,0.8,0.9" if argument.startswith("--") else "(0.5, 0.8, 0.9)"))
    problems, found = [], []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            problems.append(f"{v!r} is not a number")
            continue
        if not 0 <= x < 1:
            problems.append(f"{v} is outside [0, 1)" + (" (1 would remove every weight)" if x == 1 else ""))
        found.append(x)
    if not values:
        problems.append("no sparsity given")
    elif not problems and any(b <= a for a, b in zip(found, found[1:])):
        problems.append("not in increasing order (each sparsity is pruned from the model of the one before)")
    if problems:
        raise ConfigError(f"{shown}: {'; '.join(problems)}; {fix}")
    return tuple(found)


def check_method(method: str, argument: str = "method") -> None:
    if method not in METHODS:
        raise ConfigError(f"{_shown(argument, method)} is not a pruning method{did_you_mean(method, METHODS)}; "
                          "choose one of: " + ", ".join(f"{k} ({v})" for k, v in METHODS.items()))


def _shown(argument: str, value: Any) -> str:
    """An argument with the value received, as the user wrote it: `--lr 0` (CLI) or `lr=0` (Python)."""
    return f"{argument} {value}" if argument.startswith("--") else f"{argument}={value!r}"


def check_arguments(run_dir: Path, sparsities: Any, method: str, fine_tune_epochs: Any, lr: Any,
                    cli: bool = False) -> tuple[float, ...]:
    """prune_run's arguments checked, every problem in one ConfigError (named as the CLI's flags with `cli`);
    returns the sparsities as floats."""
    names = ("RUN", "--sparsity", "--method", "--fine-tune-epochs", "--lr") if cli else \
        ("run_dir", "sparsities", "method", "fine_tune_epochs", "lr")
    problems, found = [], ()
    if not (run_dir / "model.json").is_file() or not (run_dir / "config.json").is_file():
        problems.append(f"{names[0]} '{run_dir}' is not a finished run folder (no config.json and model.json there); "
                        "give a folder `nnrecipe train` printed (`nnrecipe runs DIR` lists them)")
    try:
        found = check_sparsities(sparsities, names[1])
    except ConfigError as e:
        problems.append(str(e))
    try:
        check_method(method, names[2])
    except ConfigError as e:
        problems.append(str(e))
    if isinstance(fine_tune_epochs, bool) or not isinstance(fine_tune_epochs, int) or fine_tune_epochs < 0:
        problems.append(f"{_shown(names[3], fine_tune_epochs)} is not allowed; give 0 (no fine-tuning) or more")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf):
        problems.append(f"{_shown(names[4], lr)} is not allowed; give a finite rate > 0, or leave it out for the "
                        "run's rate")
    if not problems and (read_json_or_none(run_dir / "config.json") or {}).get("data", {}).get("surrogate"):
        problems.append(f"{names[0]} '{run_dir}' is a surrogate (T15, --surrogate): it holds no validation rows to "
                        "fine-tune against; prune a run trained with a held-out split, or train the surrogate smaller "
                        "(--hidden)")
    if problems:
        raise ConfigError("; ".join(problems))
    return found


# ---------------------------------------------------------------- the run's data, again

def reload(run_dir: Path, config: dict[str, Any], meta: dict[str, Any], data: Any = None) -> Any:
    """The run's data prepared as training prepared it (the recipe of its kind, config.json's settings and
    seed: the same split, preprocessing and loss), checked against model.json and splits.json."""
    import pandas as pd

    from ..config import DataConfig, ModelConfig, TrainConfig, from_dict

    source = data if data is not None else config.get("source")
    if source is None:
        raise ConfigError(f"run '{run_dir}' was trained on a DataFrame (config.json names no data file); pass the "
                          "same table as data= (CLI: --data FILE)")
    if not isinstance(source, pd.DataFrame) and not Path(source).exists():
        raise ConfigError(f"the run's data '{source}' is not there (config.json's source is relative to the folder "
                          "`nnrecipe train` ran in); run prune from that folder, or give the data with data= (CLI: "
                          "--data PATH)")
    dcfg, tcfg = from_dict(DataConfig, config["data"]), from_dict(TrainConfig, config["train"])
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    mcfg = from_dict(ModelConfig, {k: v for k, v in config["model"].items() if k in names})
    refit = config.get("refit")  # the metric an R2 refit's preparation followed (recipes/pipeline.py's `aim`)
    aim = tcfg.metric if refit is None else (str(refit.get("metric") or "").removeprefix("val_") or tcfg.metric)
    aimed = tcfg if aim == tcfg.metric else dataclasses.replace(tcfg, metric=aim, monitor="val_loss")
    if config.get("kind") == "images":
        from ..recipes.images import ImageRecipe

        recipe: Any = ImageRecipe()
    else:
        from ..data.text.folder import text_folder
        from ..recipes.tabular import TableRecipe

        recipe, (source, dcfg) = TableRecipe(), text_folder(source, dcfg)
    prepared = recipe.prepare(source, dcfg, mcfg, aimed)
    with tempfile.TemporaryDirectory() as tmp:  # the split as the run recorded it (splits.json)
        recipe.record(Path(tmp), prepared)
        splits = read_json_or_none(Path(tmp) / "splits.json")
    recorded = read_json_or_none(run_dir / "splits.json")
    differ = [k for k, v in recipe.artifact(prepared).items() if _canonical(v) != _canonical(meta.get(k))]
    differ += ["classes"] * (list(prepared.classes) != list(meta.get("classes", [])))
    differ += ["the split"] * (recorded is not None and _canonical(splits) != _canonical(recorded))
    if differ:
        where = "the DataFrame" if isinstance(source, pd.DataFrame) else f"'{source}'"
        raise CheckpointError(f"{where} is not the data run '{run_dir}' was trained on ({', '.join(differ)} "
                              "differ from its model.json and splits.json); give the run's own data (data=, CLI: "
                              "--data PATH)")
    if not len(prepared.targets["test"]):  # trained with no test split (test_fraction 0): as the run measured
        prepared = prepared.tested_on("val")
    return prepared, tcfg


def _canonical(value: Any) -> str:
    """A record as compared: without what measures rather than describes it (M13: a cached encoder is the
    same encoder)."""
    from .techniques import comparable

    return json.dumps(comparable(value), sort_keys=True)


# ---------------------------------------------------------------- fine-tune, score, time

def trainer_for(model: nn.Module, prepared: Any, tcfg: Any, epochs: int = 1, lr: float | None = None) -> Any:
    """A Trainer on the run's training rows, its validation rows watched: the run's optimizer, batch size,
    loss and training step (images: augmented), a constant rate, no early stopping, the best epoch kept."""
    from ..train import Trainer, for_trainer

    cfg = dataclasses.replace(tcfg, epochs=max(1, epochs), lr=lr if lr is not None else tcfg.lr, patience=None,
                              restore_best=True, swa_start=None, swa_lr=None, schedule="constant", cv_folds=1,
                              refit="off", checkpoint_every=0)
    task = prepared.task
    return Trainer(model, task.loss(), prepared.split("train"), prepared.split("val"), for_trainer(cfg),
                   metrics=task.metrics(),
                   task=task, step=prepared.step, bucket_by=prepared.bucket_by)


def fine_tune(model: nn.Module, prepared: Any, tcfg: Any, epochs: int, lr: float) -> dict[str, Any]:
    """`epochs` epochs on the training rows (each member of an ensemble in turn), the masks on; each network
    keeps its epoch best on the validation rows."""
    best = []
    if epochs > 0:
        for member in (model.members if isinstance(model, Ensemble) else [model]):
            trainer = trainer_for(member, prepared, tcfg, epochs, lr)
            trainer.fit()
            best.append(trainer.best_epoch)
    return {"epochs": epochs, "lr": lr, "best_epoch": best}


def score_test(model: nn.Module, prepared: Any, tcfg: Any) -> dict[str, float | None]:
    """Every metric of the task on the test rows, as the run's results.json has them."""
    from .pipeline import test_metrics

    trainer = trainer_for(model, prepared, tcfg)
    return test_metrics(trainer, prepared.task, trainer.predict(prepared.split("test"), model=model),
                        prepared.targets["test"])


@torch.no_grad()
def predict_ms(model: nn.Module, prepared: Any, repeats: int = 7, budget: float = 1.0) -> float:
    """Milliseconds for one forward pass over PREDICT_ROWS rows (the test rows repeated; images: 128), the
    median of `repeats` passes after a warm-up (at least 3 passes, fewer than `repeats` past `budget` seconds),
    in eval mode on the CPU threads torch has."""
    inputs = prepared.inputs["test"]
    rows = PREDICT_ROWS if inputs[0].dim() <= 2 else PREDICT_IMAGES
    x = tuple(torch.cat([t] * -(-rows // max(len(t), 1)))[:rows] for t in inputs)
    model = model.cpu().eval()
    model(*x)
    seconds: list[float] = []
    while len(seconds) < repeats and (len(seconds) < 3 or sum(seconds) < budget):
        started = time.perf_counter()
        model(*x)
        seconds.append(time.perf_counter() - started)
    return round(1000 * statistics.median(seconds), 3)


# ---------------------------------------------------------------- the run folder

def step_folder(method: str, sparsity: float) -> str:
    return f"{method}-{sparsity:g}"


def save_step(folder: Path, model: nn.Module, meta: dict[str, Any], config: dict[str, Any],
              record: dict[str, Any]) -> None:
    """A folder `predict` and `runs` read as a run's: model.safetensors + model.json (the run's description,
    the pruned architecture), config.json (the run's, with the pruning), results.json last (its presence
    marks the folder complete)."""
    from ..track.recorder import now

    kept = {k: v for k, v in meta.items() if k not in ("format", "version", "model", "architecture", "weights_sha256")}
    save_model(folder, model, {**kept, "pruned": record["pruned"]})
    pruned = {k: record["pruned"][k] for k in ("method", "sparsity", "fine_tune_epochs", "lr")}  # what `runs` shows
    note = f"{config.get('note') or ''} (pruned: {pruned['method']} {pruned['sparsity']:g})"
    write_json(folder / "config.json", {**config, "note": note.strip(), "created": now(), "pruned": pruned})
    write_json(folder / "results.json", record)


def finished(folder: Path, key: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]] | None:
    """The model and record of a step already done with the same settings from the same weights, else None."""
    record = read_json_or_none(folder / "results.json")
    if not isinstance(record, dict) or not isinstance(record.get("pruned"), dict):
        return None
    if {k: v for k, v in record["pruned"].items() if k not in NOT_SETTINGS} != key:
        log.info("%s was pruned with other settings or from other weights: pruned again", folder)
        return None
    try:
        model, _ = load_model(folder)
    except CheckpointError as e:
        log.info("%s is incomplete (%s): pruned again", folder, e)
        return None
    return model, record


def prune_run(run_dir: str | os.PathLike, sparsities: Any = (0.5, 0.8, 0.9), method: str = "global",
              fine_tune_epochs: int | None = None, lr: float | None = None, data: Any = None,
              out: str | os.PathLike | None = None) -> PruneResult:
    """M14: prune run `run_dir`'s model to each sparsity in turn (increasing), fine-tuning after each step
    and going on from the fine-tuned model; each step's model is saved as a folder `predict` loads
    (`out`/METHOD-SPARSITY, default RUN/pruned/), and the table of sparsity against the test metrics in
    RUN/prune.json with its plot RUN/prune.png. `method`: global (magnitude) or structured (MLP neurons,
    the network shrinks). `fine_tune_epochs`: after each step (None: FINE_TUNE_EPOCHS; 0: none); `lr`: the
    fine-tuning rate (default: the run's). `data`: the run's data when config.json's source is not at hand
    (a DataFrame run, a moved file). Resumable: a step whose folder is complete, made with the same settings
    from the same weights, is loaded, not redone. Raises ConfigError naming the bad argument."""
    run_dir = Path(run_dir)
    fine_tune_epochs = FINE_TUNE_EPOCHS if fine_tune_epochs is None else fine_tune_epochs
    wanted = check_arguments(run_dir, sparsities, method, fine_tune_epochs, lr)
    out_dir = Path(out) if out is not None else run_dir / "pruned"
    model, meta = load_model(run_dir)
    widths = [list(m.spec["hidden"]) for m in mlps(model)] if method == "structured" else []  # refused early
    from ..track.runs import run_config

    config = run_config(run_dir, ("data", "model", "train"))
    prepared, tcfg = reload(run_dir, config, meta, data)
    rate = float(lr) if lr is not None else float(tcfg.lr)
    unpruned = {**count(model), "test": score_test(model, prepared, tcfg), "predict_ms": predict_ms(model, prepared)}
    result = PruneResult(run_dir, method, prepared.task.headline, unpruned)
    # the weights each step starts from, by hash (model.json's; a model saved before it had one: the file's)
    source = meta.get("weights_sha256") or hashlib.sha256((run_dir / "model.safetensors").read_bytes()).hexdigest()
    for s in wanted:
        folder = out_dir / step_folder(method, s)
        key = {"method": method, "sparsity": s, "from_sha256": source, "fine_tune_epochs": fine_tune_epochs,
               "lr": rate}
        done = finished(folder, key)
        if done is not None:
            model, record = done
            result.resumed.append(s)
        else:  # a record of other settings goes first: a kill while this step saves must not pair it with new weights
            (folder / "results.json").unlink(missing_ok=True)
            started = time.perf_counter()
            if method == "global":
                prune_global(model, s)
                tuned = fine_tune(model, prepared, tcfg, fine_tune_epochs, rate)
                make_permanent(model)
            else:  # the smaller network is fine-tuned: no masks to carry
                model = prune_neurons(model, s, widths)
                tuned = fine_tune(model, prepared, tcfg, fine_tune_epochs, rate)
            record = {"test": score_test(model.cpu().eval(), prepared, tcfg), **count(model),
                      "hidden": _hidden(model), "fine_tune": tuned,
                      "pruned": {**key, "run": str(run_dir), "seconds": round(time.perf_counter() - started, 3),
                                 "predict_ms": predict_ms(model, prepared)}}
            if widths:  # structured: the share of hidden neurons removed (the weights left are dense)
                record["reached"] = round(1 - sum(map(sum, record["hidden"])) / sum(map(sum, widths)), 6)
            save_step(folder, model, meta, config, record)
            log.info("pruned to %g (%s): test %s", s, method, record["test"].get(result.metric))
        source = json.loads((folder / "model.json").read_text())["weights_sha256"]
        result.steps.append({"sparsity": s, **{k: record.get(k) for k in ("reached", "parameters", "nonzero",
                                                                           "hidden", "test", "fine_tune")},
                             "seconds": record["pruned"]["seconds"], "predict_ms": record["pruned"]["predict_ms"],
                             "folder": _relative(folder, run_dir)})
    write_table(result)
    return result


def _hidden(model: nn.Module) -> list[list[int]] | None:
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    return [list(m.spec["hidden"]) for m in members] if all(isinstance(m, MLP) for m in members) else None


def _relative(folder: Path, run_dir: Path) -> str:
    try:
        return str(folder.relative_to(run_dir))
    except ValueError:
        return str(folder.resolve())  # outside the run folder: absolute, so the run folder joined to it is it


def write_table(result: PruneResult) -> None:
    """prune.json (every method pruned so far, each its own table beside the unpruned row) and prune.png."""
    from ..repro import environment

    file = result.run_dir / "prune.json"
    doc = read_json_or_none(file)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        doc = {"format": FORMAT, "version": VERSION, "methods": {}}
    doc.update(metric=result.metric, unpruned=result.unpruned, environment=environment())
    doc["methods"][result.method] = {"about": METHODS[result.method], "steps": result.steps}
    write_json(file, doc)
    atomic_write(result.run_dir / "prune.png", plot(doc))
    if (result.run_dir / "report.html").is_file():  # the run's report gets the pruning line
        from ..report import write_report

        write_report(result.run_dir)


@plain_text
def plot(doc: dict[str, Any]) -> bytes:
    """The headline test metric against the sparsity reached, a line per method from the unpruned point."""
    import io

    from matplotlib.figure import Figure

    metric = doc["metric"]
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    base = doc["unpruned"]["test"].get(metric)
    for method, table in doc["methods"].items():
        points = [(0.0, base)] + [(s["reached"], s["test"].get(metric)) for s in table["steps"]]
        ax.plot(*zip(*[(x, y) for x, y in points if y is not None]), marker="o", label=f"{method}")
    if base is not None:
        ax.axhline(base, color="grey", linestyle=":", label="unpruned")
    ax.set_xlabel("sparsity (share of hidden weights, or of neurons, removed)")
    ax.set_ylabel(f"test {metric}")
    ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


__all__ = ["FINE_TUNE_EPOCHS", "METHODS", "PruneResult", "check_arguments", "check_method", "check_sparsities",
           "prune_run"]
