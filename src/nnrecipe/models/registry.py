"""Models by name (timm's registry: `register_model`, `create_model`, `list_models`). A registered model
carries `spec`, the JSON-able arguments that build it again ({"name": ..., **arguments}), so a saved
artifact names its model and `load_model` builds any of them the same way, with no code loaded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from ..errors import ConfigError, did_you_mean

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make a model class (or a factory function) creatable by `name`."""
    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS and _MODELS[name] is not factory:
            raise ConfigError(f"a model named {name!r} is registered already; choose another name")
        _MODELS[name] = factory
        return factory
    return add


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """The model registered as `name`, built with `kwargs`; its `spec` records both."""
    if name not in _MODELS:
        raise ConfigError(f"model {name!r} is not registered{did_you_mean(name, _MODELS)}; "
                          f"registered: {', '.join(sorted(_MODELS))}")
    model = _MODELS[name](**kwargs)
    if not isinstance(getattr(model, "spec", None), Mapping):
        model.spec = {"name": name, **kwargs}  # type: ignore[assignment]
    return model


def list_models() -> list[str]:
    return sorted(_MODELS)


def build_model(spec: Mapping[str, Any]) -> nn.Module:
    """A model from its spec (model.json's architecture). Runs saved before the registry wrote "kind" for
    the name; that is read too."""
    spec = dict(spec)
    name = spec.pop("name", None) or spec.pop("kind", None)
    spec.pop("kind", None)
    if name is None:
        raise ConfigError("the model's spec names no model (no 'name' key)")
    return create_model(str(name), **spec)
