"""`nnrecipe export RUN --to onnx` (issue 23): a run's model as RUN/model.onnx, for serving without nnrecipe or
torch. The graph is the network alone; the preprocessing stays in model.json, and `onnx_inputs` turns raw rows
(or image files) into the graph's inputs through the same code `nnrecipe predict` runs.

The graph's inputs, in this order, each with a dynamic first (batch) dimension:
- a table: `features` (N, F) float32; `codes` (N, E) int64 when the table has embedded columns or text; `terms`
  and `weights` (N, L) int64 / float32, the text columns' bags (L varies from call to call); `words` (N, W)
  int64, the word ids of --text-model transformer (W at most the model's maximum length);
- images: `images` (N, C, S, S) float32 in [0, 1], resized as model.json's `images` says.
Its outputs: `logits`, the network's raw output (what `predict` decides from), and beside it `probabilities`
(classes: (N, K), column k is model.json's classes[k]; a binary model's are [1 - p, p]) or `prediction`
(regression: (N,), in the target's units, the standardized output times target_scale's std plus its mean).

The export checks itself before it leaves a file: onnxruntime runs the graph on a batch of random inputs of
the right shapes, dtypes and ranges (VERIFY_ROWS rows: standard normal features, codes and term ids drawn in
their embeddings' ranges, bags of random lengths with their padding, uniform pixels) and every output must
match the torch model's within RTOL/ATOL; a graph that disagrees is refused and no file is written. The
libraries are the `onnx` extra's, imported only here."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import types
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, DataError, NNRecipeError, did_you_mean_column, require, shorten
from ..io import atomic_write
from ..models import load_model
from ..models.artifact import FORMAT
from ..models.text import TextBags, TextTransformer
from ..models.transfer import Cut

log = logging.getLogger("nnrecipe")

ONNX_FILE = "model.onnx"
OPSET = 18  # the dynamo exporter's default opset in torch 2.13; onnxruntime >= 1.18 runs it
VERIFY_ROWS = 16  # rows of the check batch (and of the example the exporter traces: more than 1, so no size-1
# specialization fixes the batch dimension)
BAG_WIDTH = 6  # terms per row in the check batch (any width works: the graph's bag dimension is dynamic)
# float32 through two runtimes: the same graph differs by reassociated sums (~1e-6 relative on our models)
RTOL, ATOL = 1e-4, 1e-5
# the exporter's libraries log each step and each optimization pass at INFO (hundreds of lines for a TabM)
QUIET_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")


class ExportError(NNRecipeError, RuntimeError):
    """The run's model cannot be exported, or its graph does not compute what the model does."""


def _require(module: str) -> Any:
    return require(module, "exporting to ONNX", "onnx")


# ---------------------------------------------------------------- what the graph takes and gives


def _network_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The table network's own arguments inside model.json's architecture: an ensemble's first member (T14,
    R2: every member reads the same inputs), the network behind a pretrained encoder, or the spec itself."""
    if "embeddings" in spec:
        return spec
    for key in ("members", "network"):
        inner = spec.get(key)
        if isinstance(inner, list) and inner:
            return _network_spec(inner[0])
        if isinstance(inner, dict):
            return _network_spec(inner)
    return spec


def input_names(meta: dict[str, Any]) -> list[str]:
    """The graph's input names for a run's model.json, in the order the model takes them (predict's
    prepare.model_inputs: codes come with embedded columns, and as an (N, 0) input when there is text)."""
    if "images" in meta:
        return ["images"]
    net = _network_spec(meta["architecture"])
    text = bool(net.get("text_terms"))
    return ["features", *(["codes"] if net.get("embeddings") or text else []),
            *(["terms", "weights"] if text else []), *(["words"] if net.get("text_words") else [])]


def output_names(meta: dict[str, Any]) -> list[str]:
    return ["logits", "prediction" if meta["task"] == "regression" else "probabilities"]


class _Graph(nn.Module):
    """The run's model with the head's reading of its output: (logits, probabilities) for classes, (logits,
    prediction in the target's units) for regression. Positional inputs with names the exporter keeps."""

    def __init__(self, model: nn.Module, task: str, target_scale: dict[str, float] | None):
        super().__init__()
        self.model, self.task = model, task
        scale = target_scale or {"mean": 0.0, "std": 1.0}
        self.mean, self.std = float(scale["mean"]), float(scale["std"])

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None, c: torch.Tensor | None = None,
                d: torch.Tensor | None = None, e: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(*(t for t in (a, b, c, d, e) if t is not None))
        if self.task == "regression":
            return logits, logits.squeeze(-1) * self.std + self.mean
        if self.task == "multiclass":
            return logits, torch.softmax(logits, dim=-1)
        p = torch.sigmoid(logits)
        return logits, torch.cat([1 - p, p], dim=-1) if self.task == "binary" else p


# ---------------------------------------------------------------- text paths without data-dependent widths


def _bags_forward(self: TextBags, terms: torch.Tensor, weights: torch.Tensor,
                  words: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """TextBags.forward without its cut of the bags to the batch's longest row: that width is read from the
    data (int(tensor)), which torch.export cannot trace. The cut only drops padding, which adds nothing (id 0 is
    the bags' padding_idx, and its weight is 0), so the graph computes the same values at any width."""
    weights = weights.to(self.wide.weight.dtype)
    wide = self.wide(terms, per_sample_weights=weights)
    if self.sequence is not None:
        return self.sequence(words), wide
    return self.deep(terms, per_sample_weights=weights), wide  # type: ignore[misc]


def _words_forward(self: TextTransformer, ids: torch.Tensor) -> torch.Tensor:
    """TextTransformer.forward without its data-dependent cut to the longest row: the padding positions it
    drops are masked from attention and from the mean, so they change nothing (the graph's `words` dimension is
    bounded by the positions the model has)."""
    pad = ids == 0
    attend = torch.cat([torch.zeros_like(pad[:, :1]), pad[:, 1:]], dim=1)  # as forward: position 0 always attends
    h = self.encoder(self.tokens(ids) + self.positions.weight[:ids.shape[1]], src_key_padding_mask=attend)
    keep = (~pad).unsqueeze(-1).to(h.dtype)
    return (self.norm(h) * keep).sum(1) / keep.sum(1).clamp(min=1.0)


def _cut_forward(self: Cut, *inputs: torch.Tensor) -> torch.Tensor:
    """Cut.forward (a transfer model's backbone up to a layer) without its early stop: Cut raises from a hook
    to skip the layers after the cut, and an exception through the traced modules breaks torch.export. Here the
    whole backbone runs and the hook only keeps the cut layer's value; the layers after it feed no output, so
    the exporter leaves them out of the graph: the same values, the same graph."""
    captured: list[torch.Tensor] = []

    def grab(module: nn.Module, args: Any, output: Any = None) -> None:
        value = args[0] if self.before else output
        captured.append(value[0] if isinstance(value, (tuple, list)) else value)

    hook = self.layer.register_forward_pre_hook(grab) if self.before else self.layer.register_forward_hook(grab)
    try:
        self.model(*inputs)
    finally:
        hook.remove()
    h = captured[0]
    return h.mean(dim=(2, 3)) if h.ndim == 4 else h.flatten(1)


@contextlib.contextmanager
def _traceable(model: nn.Module) -> Iterator[None]:
    """The model's text paths and cut backbones with the forwards above while the exporter traces it; their
    own forwards after."""
    patched = [(m, _bags_forward) for m in model.modules() if isinstance(m, TextBags)]
    patched += [(m, _words_forward) for m in model.modules() if isinstance(m, TextTransformer)]
    patched += [(m, _cut_forward) for m in model.modules() if isinstance(m, Cut)]
    for module, forward in patched:
        module.forward = types.MethodType(forward, module)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for module, _ in patched:
            del module.forward  # back to the class's method


# ---------------------------------------------------------------- inputs


def _check_batch(meta: dict[str, Any], n: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Random inputs of the shapes, dtypes and ranges the model takes (the module's docstring)."""
    g = torch.Generator().manual_seed(seed)
    if "images" in meta:
        side, channels = int(meta["images"]["size"]), int(meta["images"]["channels"])
        return (torch.rand(n, channels, side, side, generator=g),)
    net = _network_spec(meta["architecture"])
    names = input_names(meta)
    width = len(meta["feature_names"])  # the preprocessed features (a pretrained encoder's input, M13)
    out: list[torch.Tensor] = [torch.randn(n, width, generator=g)]
    if "codes" in names:
        sizes = [int(e[0]) for e in net.get("embeddings") or []]
        out.append(torch.stack([torch.randint(0, s, (n,), generator=g) for s in sizes], dim=1) if sizes
                   else torch.zeros(n, 0, dtype=torch.long))
    if "terms" in names:  # each row's terms first, then padding (id 0, weight 0), as data/text/bag.py packs them
        length = torch.randint(1, BAG_WIDTH + 1, (n, 1), generator=g)
        real = torch.arange(BAG_WIDTH)[None, :] < length
        out.append(torch.randint(1, int(net["text_terms"]), (n, BAG_WIDTH), generator=g) * real)
        out.append(torch.rand(n, BAG_WIDTH, generator=g).add_(0.05) * real)
    if "words" in names:
        ids, longest = (int(v) for v in net["text_words"])
        w = max(2, min(BAG_WIDTH, longest))
        real = torch.arange(w)[None, :] < torch.randint(1, w + 1, (n, 1), generator=g)
        out.append(torch.randint(1, ids, (n, w), generator=g) * real)
    return tuple(out)


def _table_inputs(meta: dict[str, Any], df: Any) -> tuple[torch.Tensor, ...]:
    """predict's preprocessing of a table's rows (recipes/tabular.py `_inputs`), with predict's checks."""
    import pandas as pd

    from ..data import TablePreprocessor
    from ..data.schema import numeric_problems
    from .tabular import _inputs

    if not isinstance(df, pd.DataFrame):
        raise DataError(f"onnx_inputs: a table's model takes a pandas DataFrame of rows, not a "
                        f"{type(df).__name__}; read the file with pandas.read_csv first")
    df = df.reset_index(drop=True)
    pre = TablePreprocessor.from_dict(meta["preprocessing"])
    missing = [c for c in pre.columns if c not in df.columns]
    if missing:
        listed = ", ".join(repr(shorten(c, 40)) for c in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataError(f"the rows lack {len(missing)} column(s) the model needs: {listed}"
                        f"{did_you_mean_column(missing[0], df.columns)}; add them")
    problems = numeric_problems(df, [c for c, s in pre.columns.items() if s["kind"] == "numeric"], None,
                                trained=True)
    if problems:
        raise DataError("; ".join(problems))
    inputs, _, _ = _inputs(pre, df, words="words" in input_names(meta))
    return inputs


def _image_inputs(meta: dict[str, Any], data: Any) -> tuple[torch.Tensor, ...]:
    """predict's reading of images: decoded, resized and centre-cropped to the model's side, in [0, 1], with
    its channels. `data`: a folder, a CSV of paths or an .npz (as `nnrecipe predict`), or a list of files."""
    from ..data.image import read_images
    from ..data.image.decode import decode
    from ..data.image.read import _stack
    from .images import _as_channels

    side, channels = int(meta["images"]["size"]), int(meta["images"]["channels"])
    if isinstance(data, (str, os.PathLike)):
        pixels = read_images(data, side, labelled=False).pixels
    else:
        arrays = [decode(str(f), side) for f in data]
        bad = [(f, a) for f, a in zip(data, arrays) if isinstance(a, str)]
        if bad:
            raise DataError(f"{len(bad)} of {len(arrays)} images cannot be read (first: '{bad[0][0]}': "
                            f"{bad[0][1]}); leave them out or replace them")
        pixels = _stack(arrays) if arrays else torch.zeros(0, channels, side, side, dtype=torch.uint8)
    return (_as_channels(pixels.float().div_(255), channels),)


def _description(run_dir: Path) -> dict[str, Any]:
    """model.json alone (the weights are not needed to prepare inputs, and a server calls this per batch)."""
    file = run_dir / "model.json"
    try:
        meta = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"'{file}' cannot be read ({e}); give the run folder that `nnrecipe train` printed") \
            from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "architecture" not in meta or \
            ("images" not in meta and "preprocessing" not in meta):
        raise CheckpointError(f"'{file}' is not the description of a model nnrecipe trained on a table or images; "
                              "give the run folder that `nnrecipe train` printed")
    return meta


def onnx_inputs(run_dir: str | os.PathLike, data: Any) -> dict[str, np.ndarray]:
    """The inputs of RUN/model.onnx for raw data, through the preprocessing `nnrecipe predict` applies
    (model.json's): {input name: array}, ready for onnxruntime's `session.run(None, inputs)`. `data`: a
    DataFrame with the columns the model was trained on, for a table's model; for images, a folder, a CSV of
    paths, an .npz, or a list of image files."""
    meta = _description(Path(run_dir))
    inputs = _image_inputs(meta, data) if "images" in meta else _table_inputs(meta, data)
    return {name: t.numpy() for name, t in zip(input_names(meta), inputs)}


# ---------------------------------------------------------------- export and verification


def _dynamic_shapes(meta: dict[str, Any], names: Sequence[str]) -> tuple[dict[int, Any], ...]:
    batch = torch.export.Dim("batch")
    bag = torch.export.Dim("bag")
    shapes: dict[str, dict[int, Any]] = {name: {0: batch} for name in names}
    if "terms" in shapes:
        shapes["terms"][1] = shapes["weights"][1] = bag
    if "words" in shapes:  # the transformer has a position for each of at most text_words[1] words
        longest = int(_network_spec(meta["architecture"])["text_words"][1])
        shapes["words"][1] = torch.export.Dim("words", min=1, max=max(2, longest))
    return tuple(shapes[name] for name in names)


def _export(graph: _Graph, example: tuple[torch.Tensor, ...], names: list[str], outputs: list[str],
            meta: dict[str, Any]) -> bytes:
    """The ONNX model's bytes, from torch.onnx's dynamo exporter (torch.export, then onnxscript). Its progress
    lines, its libraries' INFO logs and torch's warnings about optional libraries (torchvision's ops) are kept
    from the user's screen: the progress is logged at debug, the rest dropped."""
    said = io.StringIO()
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said), warnings.catch_warnings(), \
                _traceable(graph):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(graph, example, input_names=names, output_names=outputs, opset_version=OPSET,
                                        dynamo=True, dynamic_shapes=_dynamic_shapes(meta, names), verbose=False)
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        log.debug("torch.onnx: %s", said.getvalue())
    return program.model_proto.SerializeToString()


def _verify(data: bytes, graph: _Graph, batch: tuple[torch.Tensor, ...], names: list[str],
            outputs: list[str]) -> dict[str, float]:
    """onnxruntime's outputs against the torch model's on `batch`: the largest absolute difference per output.
    Raises ExportError naming the output, the difference and the rows."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its notes on the graph are not the user's business
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    got = session.run(outputs, {name: t.numpy() for name, t in zip(names, batch)})
    with torch.no_grad():
        want = [t.numpy() for t in graph(*batch)]
    found = {}
    for name, a, b in zip(outputs, got, want):
        if a.shape != b.shape or not np.allclose(a, b, rtol=RTOL, atol=ATOL):
            diff = float(np.abs(a - b).max()) if a.shape == b.shape else float("nan")
            raise ExportError(f"output '{name}' of the ONNX graph differs from the model's on {len(batch[0])} check "
                              f"rows (shape {a.shape} against {b.shape}, largest difference {diff:.3g}, allowed "
                              f"{ATOL} + {RTOL} x |value|)")
        found[name] = float(np.abs(a - b).max()) if a.size else 0.0
    return found


def _reason(e: BaseException) -> str:
    """The part of an exporter's error a user can act on: its summary (torch.onnx puts the underlying error
    under '## Exception summary') and the line of the model's code that raised it, when the text names one."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    summary = next((line for line in lines if line.startswith("<class '")), lines[0] if lines else type(e).__name__)
    summary = re.sub(r"^<class '(?:[\w.]+\.)?(\w+)'>:", r"\1:", summary)
    where = next((line for line in lines if line.startswith('File "') and "/nnrecipe/" in line), None) or \
        next((line for line in lines if line.startswith('File "') and "site-packages/torch" not in line), None)
    return shorten(summary, 300) + (f" (at {shorten(where, 200)})" if where else "")


def export_onnx(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """Export the run's model to ONNX (`out`, default RUN/model.onnx), verify it with onnxruntime against the
    model on VERIFY_ROWS random rows (the module's docstring), and write it atomically. Returns the file.
    Raises MissingDependencyError without the `onnx` extra, ExportError when a part of the model does not
    export or the graph does not compute what the model does (no file is written then)."""
    _require("onnx")
    _require("onnxscript")
    _require("onnxruntime")
    run_dir = Path(run_dir)
    model, meta = load_model(run_dir, required=("task",))
    if meta["task"] not in ("binary", "multiclass", "multilabel", "regression"):
        raise ExportError(f"run '{run_dir}': a {meta['task']} model (an autoencoder) has no prediction to export; "
                          "export the run that trains on its features")
    if "images" not in meta and "preprocessing" not in meta:
        raise ExportError(f"run '{run_dir}' was trained by nnrecipe.Trainer on your own data: its inputs are not "
                          "recorded in model.json; export your module with torch.onnx.export directly")
    graph = _Graph(model, meta["task"], meta.get("target_scale")).eval()
    names, outputs = input_names(meta), output_names(meta)
    batch = _check_batch(meta, VERIFY_ROWS, seed)
    try:
        data = _export(graph, batch, names, outputs, meta)
    except Exception as e:  # torch.export's and onnxscript's own errors: the cause and the line are in the text
        raise ExportError(f"run '{run_dir}': its {meta['architecture']['name']} model does not export to ONNX: "
                          f"{_reason(e)}. The run still predicts with `nnrecipe predict`; to export it, make that part "
                          "traceable by torch.export (no Python branch or int() on tensor values: "
                          "https://pytorch.org/docs/stable/export.html), or report it with the model's name") from None
    try:
        diffs = _verify(data, graph, batch, names, outputs)
    except ExportError as e:
        raise ExportError(f"run '{run_dir}': the exported graph is refused, {e}; no file was written. The run "
                          "still predicts with `nnrecipe predict`; report it with the model's name") from None
    path = Path(out) if out is not None else run_dir / ONNX_FILE
    atomic_write(path, data)
    log.info("%s: %s -> %s, checked on %d rows (largest difference %s)", run_dir, ", ".join(names),
             ", ".join(outputs), VERIFY_ROWS, ", ".join(f"{k} {v:.2g}" for k, v in diffs.items()))
    return path


__all__ = ["ExportError", "export_onnx", "input_names", "onnx_inputs", "output_names"]
