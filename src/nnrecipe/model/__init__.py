from .artifact import load_model, save_model, save_weights
from .ensemble import Ensemble, build_model
from .heads import Head
from .mlp import MLP, build_mlp, default_hidden, init_weights, make_mlp

__all__ = ["Ensemble", "Head", "MLP", "build_model", "build_mlp", "default_hidden", "init_weights", "load_model",
           "make_mlp", "save_model", "save_weights"]
