from .artifact import load_model, save_model
from .heads import Head
from .mlp import MLP, build_mlp, default_hidden, init_weights, make_mlp

__all__ = ["Head", "MLP", "build_mlp", "default_hidden", "init_weights", "load_model", "make_mlp", "save_model"]
