"""Models by name: the registry (create_model, list_models), the recipe's MLP for tables and the T14
cross-validation ensemble, their init, and the shareable artifact (safetensors + JSON)."""

from .artifact import load_model, save_model
from .ensemble import Ensemble
from .mlp import MLP, default_hidden, init_weights, make_mlp
from .registry import build_model, create_model, list_models, register_model
from .cnn import CNN  # registers 'cnn', the image recipe's family
from .tabm import TabM  # registers 'tabm': a saved TabM loads with load_model alone
from .transfer import Transfer, cut  # registers 'transfer' (and 'torchvision', 'timm', imported when used)
from .autoencoder import Autoencoder  # registers 'autoencoder', 'mlp+encoder', 'tabm+encoder' (M13)

__all__ = ["CNN", "Autoencoder", "MLP", "Ensemble", "TabM", "Transfer", "build_model", "cut", "create_model", "default_hidden", "init_weights", "list_models",
           "load_model", "make_mlp", "register_model", "save_model"]
