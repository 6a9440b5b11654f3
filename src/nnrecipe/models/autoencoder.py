"""M13: an autoencoder of a table's feature vectors, and the table networks that read its encoder.

The article "Tips and tricks for Neural Networks" (on a small labelled set): train an autoencoder on the
inputs, unlabelled ones included, "with a sufficiently sized latent space (e.g., 300 to 600 entries) to
achieve a reasonably low reconstruction loss", discard the decoder, and use the encoder's output as
embeddings, or add the encoder to the primary network. Here:

- `Autoencoder` ("autoencoder" in the registry): encoder Linear -> ReLU -> Linear to the latent code, decoder
  the mirror image; trained with steps.Reconstruction (recipes/pretrain.py).
- `Encoder`: the encoder alone, its code standardised by the mean and std it had on the rows it was trained
  on (a frozen code of arbitrary scale would be a badly scaled input). Frozen, its weights are buffers: the
  optimizer and the doctor's C7 see no frozen parameters, and the weights still save with the model.
- `Encoded` ("mlp+encoder", "tabm+encoder"): the recipe's network reading the encoder's code. Modes:
  'features' (the frozen code beside the raw features), 'latent' (the frozen code alone) and 'init' (the
  encoder as the network's first layers, fine-tuned). Its spec is the network's own plus `encoder` and
  `mode`, so the audit, the record and `predict` read it as they read the network's, and it loads by name
  from JSON like every model of the registry.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .mlp import round_width
from .registry import create_model, register_model

PRETRAIN_MODES = ("off", "features", "latent", "init")
# The latent size: the article's 300-600 entries are what inputs of 1,200-2,400 features get from a quarter
# of the input width (a 4x compression, the usual bottleneck of a dense autoencoder), scaled down with the
# width for a table's few dozen features (64 pixels of digits: 16; 20 columns: 5), at least 2 and at most
# 512 (the article's band; 512 a multiple of 64, M10)
LATENT_SHARE, MIN_LATENT, MAX_LATENT = 4, 2, 512


def latent_size(n_features: int) -> int:
    """The rule: ceil(n_features / 4), clipped to [2, 512] (see LATENT_SHARE)."""
    return int(min(MAX_LATENT, max(MIN_LATENT, math.ceil(n_features / LATENT_SHARE))))


def hidden_size(n_features: int, latent: int) -> int:
    """The encoder's (and decoder's) one hidden layer: twice the input width clipped to [64, 1024], rounded
    to a multiple of 64 (M10), and never narrower than the code."""
    return max(round_width(min(1024, max(64, 2 * n_features))), round_width(latent))


class Encoder(nn.Module):
    """x (N, F) -> the standardised code (N, L): (W2 relu(W1 x + b1) + b2 - mean) / std. `trainable`: the
    weights are parameters (fine-tuned); else buffers (frozen)."""

    def __init__(self, in_features: int, hidden: int, latent: int, trainable: bool = True):
        super().__init__()
        self.spec = {"in_features": int(in_features), "hidden": int(hidden), "latent": int(latent)}
        shapes = {"w1": (hidden, in_features), "b1": (hidden,), "w2": (latent, hidden), "b2": (latent,)}
        for name, shape in shapes.items():
            value = torch.zeros(shape)
            if trainable:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.register_buffer("mean", torch.zeros(latent))
        self.register_buffer("std", torch.ones(latent))
        self.trainable = trainable

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The code before standardisation, which the decoder reads."""
        return F.linear(F.relu(F.linear(x, self.w1, self.b1)), self.w2, self.b2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.code(x) - self.mean) / self.std

    def reset(self, generator: torch.Generator | None = None) -> None:
        """He init for the ReLU layer, Glorot for the linear code (M5); biases zero."""
        with torch.no_grad():
            nn.init.kaiming_normal_(self.w1, nonlinearity="relu", generator=generator)
            nn.init.xavier_normal_(self.w2, generator=generator)
            self.b1.zero_()
            self.b2.zero_()


@register_model("autoencoder")
class Autoencoder(nn.Module):
    """The encoder, and the decoder back to the inputs: Linear(L, H) -> ReLU -> Linear(H, F)."""

    def __init__(self, in_features: int, hidden: int, latent: int):
        super().__init__()
        self.spec = {"name": "autoencoder", "in_features": int(in_features), "hidden": int(hidden),
                     "latent": int(latent)}
        self.encoder = Encoder(in_features, hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, in_features))
        self.encoder.reset()
        nn.init.kaiming_normal_(self.decoder[0].weight, nonlinearity="relu")
        for layer in (self.decoder[0], self.decoder[2]):
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, F) -> the reconstruction (N, F)."""
        return self.decoder(self.encoder.code(x))

    def frozen_encoder(self, trainable: bool = False) -> Encoder:
        """A copy of the encoder (frozen unless `trainable`), its code standardised as it stands."""
        enc = self.encoder
        out = Encoder(enc.spec["in_features"], enc.spec["hidden"], enc.spec["latent"], trainable=trainable)
        with torch.no_grad():
            for name, value in enc.state_dict().items():
                getattr(out, name).copy_(value)
        return out


class Encoded(nn.Module):
    """`network` reading the encoder's code: beside the features ('features') or instead of them ('latent',
    frozen; 'init', fine-tuned). The other inputs (category codes, text) go to the network as they come."""

    def __init__(self, network: nn.Module, encoder: Encoder, mode: str):
        super().__init__()
        if mode not in PRETRAIN_MODES[1:]:
            raise ConfigError(f"mode={mode!r} is not allowed; choose one of: {', '.join(PRETRAIN_MODES[1:])}")
        if encoder.trainable != (mode == "init"):
            raise ConfigError(f"mode {mode!r} takes a {'trainable' if mode == 'init' else 'frozen'} encoder")
        self.network, self.encoder, self.mode = network, encoder, mode
        spec = dict(network.spec)  # type: ignore[arg-type]
        self.spec = {**spec, "name": f"{spec['name']}+encoder", "encoder": dict(encoder.spec), "mode": mode}

    def network_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The features as the network reads them: (N, F + L) for 'features', else the code (N, L)."""
        z = self.encoder(x)
        return torch.cat([x, z], dim=1) if self.mode == "features" else z

    def forward(self, x: torch.Tensor, *rest: Any) -> torch.Tensor:
        return self.network(self.network_inputs(x), *rest)

    def param_groups(self, lr: float) -> list[Any]:
        """The network's own groups, and the encoder's weights when it is fine-tuned ('init')."""
        groups = getattr(self.network, "param_groups", None)
        found = list(groups(lr) if callable(groups) else self.network.parameters())
        if self.mode != "init":
            return found
        mine = list(self.encoder.parameters())
        if found and isinstance(found[0], dict):
            return [*found, {"params": mine, "lr": lr}]
        return [*found, *mine]

    @property
    def output_layer(self) -> nn.Module:
        return self.network.output_layer  # type: ignore[return-value]


class EncodedMembers(Encoded):
    """Encoded over a network of members (TabM): each member's outputs for training, the authors' settings."""

    def member_outputs(self, x: torch.Tensor, *rest: Any) -> torch.Tensor:
        return self.network.member_outputs(self.network_inputs(x), *rest)  # type: ignore[operator]

    def combine(self, outs: torch.Tensor) -> torch.Tensor:
        return self.network.combine(outs)  # type: ignore[operator]

    def train_defaults(self, n_rows: int) -> dict[str, float | int]:
        return self.network.train_defaults(n_rows)  # type: ignore[operator]


def encoded(network: nn.Module, encoder: Encoder, mode: str) -> Encoded:
    """`network` behind `encoder` in `mode` (EncodedMembers when the network has members)."""
    cls = EncodedMembers if callable(getattr(network, "member_outputs", None)) else Encoded
    return cls(network, encoder, mode)


def _factory(network: str) -> Any:
    def build(encoder: dict[str, int], mode: str, **arguments: Any) -> Encoded:
        enc = Encoder(encoder["in_features"], encoder["hidden"], encoder["latent"], trainable=mode == "init")
        return encoded(create_model(network, **arguments), enc, mode)
    build.__name__ = f"{network}_encoder"
    return build


for _network in ("mlp", "tabm"):
    register_model(f"{_network}+encoder")(_factory(_network))

__all__ = ["PRETRAIN_MODES", "Autoencoder", "Encoded", "EncodedMembers", "Encoder", "encoded", "hidden_size",
           "latent_size"]
