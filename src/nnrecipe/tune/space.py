"""R1: the search space, read from a YAML file. Sections `model` and `train` name settings of ModelConfig and
TrainConfig; each takes one of the forms below. `layers` and `units` build `hidden`: `layers` layers of
`units` each (Lavanya Shukla: "the same number of neurons for all hidden layers will suffice"). The default space
ships with the package (default_space.yaml) and cites the source of every range."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..config import ModelConfig, TrainConfig, field_type, unread, whole_field
from ..errors import ConfigError, did_you_mean

FORMS = ("{int: [low, high], step: k}", "{float: [low, high]}", "{loguniform: [low, high]}",
         "{choice: [a, b, ...]}", "a fixed value")
SECTIONS: dict[str, type] = {"model": ModelConfig, "train": TrainConfig}
# `hidden` is searched through layers x units; the seed makes the split and the data order, which every
# trial shares so that their validation scores compare (`ablate --vary seed` varies it on purpose)
WIDTHS = ("layers", "units")
# phi sizes the CNN for images and a backbone starts one; a search tunes the table recipe. A file of
# unlabelled rows (M13) and a teacher's run folder (T12) are inputs, not settings to draw
# ... and a trial trains one network scored on the validation rows: cv_folds and refit are the retrained best's
# (a space drawing them was searched, and every trial trained with cv_folds 1 and refit off)
NOT_SEARCHED = {"model": ("hidden", "phi", "backbone", "transfer", "layout", "unlabelled"),
                "train": ("seed", "device", "epochs", "teacher", "cv_folds", "refit")}


@dataclass(frozen=True)
class Param:
    """One searched setting: `kind` int | float | loguniform | choice | fixed."""
    section: str
    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value for an optuna trial (the parameter is named `name`: unique across the sections)."""
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1))
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, step=self.step)
        if self.kind == "loguniform":
            return trial.suggest_float(self.name, self.low, self.high, log=True)
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        return self.choices[0]


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    source: str = "default"

    def suggest(self, trial: Any, model_config: ModelConfig | None = None,
                train_config: TrainConfig | None = None) -> dict[str, Any]:
        """Each parameter's value for this trial, by name; a parameter the trial would not read (momentum
        beside adam, the activation of TabM's blocks: config.unread) is not drawn, so that no trial spends
        itself on a setting that changes nothing (optuna's conditional parameters: define-by-run)."""
        values: dict[str, Any] = {}
        drawn = [p for p in self.params if not _conditional(p.name)] + [p for p in self.params if _conditional(p.name)]
        for p in drawn:
            if _conditional(p.name):
                mcfg, tcfg = self.apply(values, model_config, train_config)
                if unread(p.name, mcfg, tcfg) is not None:
                    continue
            values[p.name] = p.suggest(trial)
        return values

    def apply(self, values: dict[str, Any], model_config: ModelConfig | None = None,
              train_config: TrainConfig | None = None) -> tuple[ModelConfig, TrainConfig]:
        """The configs with a trial's values in place (the others keep the given configs' values)."""
        by_section: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
        for p in self.params:  # a fixed value is no trial parameter: optuna's params lack it
            if p.name in values or p.kind == "fixed":
                by_section[p.section][p.name] = values[p.name] if p.name in values else p.choices[0]
        model = by_section["model"]
        if "layers" in model and "units" in model:  # parse_space makes sure that they come together
            model["hidden"] = (int(model.pop("units")),) * int(model.pop("layers"))
        return (dataclasses.replace(model_config or ModelConfig(), **model),
                dataclasses.replace(train_config or TrainConfig(), **by_section["train"]))

    def refuse_given(self, model_config: ModelConfig, train_config: TrainConfig) -> None:
        """A setting given (a flag, a config file) that the space also draws is refused: each trial's draw
        replaced it, and `tune --lr 0.05` searched the space's rates without a word."""
        given = []
        for p in self.params:
            if p.name in WIDTHS:
                name, mine, default = "hidden", model_config.hidden, ModelConfig().hidden
            else:
                cls, cfg = (ModelConfig, model_config) if p.section == "model" else (TrainConfig, train_config)
                name, mine, default = p.name, getattr(cfg, p.name), getattr(cls(), p.name)
            if p.name not in WIDTHS and unread(p.name, model_config, train_config) is not None:
                continue  # not read beside the settings given (activation under TabM): never drawn
            fixed = p.choices[0] if p.kind == "fixed" else None
            if fixed is not None and (mine == fixed if p.name not in WIDTHS else mine is not None and (
                    len(mine) == fixed if p.name == "layers" else set(mine) == {fixed})):
                continue  # the space fixes the very value given
            if mine != default and (name, mine) not in given:
                given.append((name, mine))
        if given:
            shown = ", ".join(f"{n}={v!r}" for n, v in given)
            raise ConfigError(f"{shown}: given, and the search space ({self.source}) draws "
                              f"{'it' if len(given) == 1 else 'them'} for each trial, which would replace the value "
                              "given; leave the setting out to search it, or fix it in a space file (lr: 0.05 is "
                              "a value, not a range)")

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "params": [dataclasses.asdict(p) for p in self.params]}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SearchSpace:
        """The space to_dict wrote (as JSON has it: lists for tuples)."""
        return cls(tuple(Param(**{**p, "choices": tuple(p.get("choices", ()))}) for p in doc["params"]),
                   doc.get("source", "default"))


def _conditional(name: str) -> bool:
    """A setting read only beside others (config.unread): drawn after those others."""
    return unread(name, ModelConfig(model="mlp"), TrainConfig(optimizer="adam")) is not None or \
        unread(name, ModelConfig(), TrainConfig(optimizer="sgd", schedule="step", swa_start=1, stop_criterion="gl",
                                                 weight_decay=1.0)) is not None


def default_space_text() -> str:
    return resources.files(__package__).joinpath("default_space.yaml").read_text()


def default_space() -> SearchSpace:
    """The documented default space (default_space.yaml, ranges from Rishit Dagli and Lavanya Shukla)."""
    return parse_space(default_space_text(), "the default space (nnrecipe/tune/default_space.yaml)")


def read_space(path: str | Path | None) -> SearchSpace:
    """The space in a YAML file; None: the default space. Errors name the file, the key and the forms."""
    if path is None:
        return default_space()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"space file '{path}' cannot be read ({e.strerror}); check the path") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"space file '{path}' is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    return parse_space(text, f"space file '{path}'")


def parse_space(text: str, where: str) -> SearchSpace:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{where} is not valid YAML{line}: {getattr(e, 'problem', e)}; fix it") from None
    if not isinstance(doc, dict) or not doc:
        raise ConfigError(f"{where} must hold sections {' and '.join(SECTIONS)}, each a mapping of setting: form")
    problems, params = [], []
    for section, entries in doc.items():
        if section not in SECTIONS:
            problems.append(f"unknown section '{section}'{did_you_mean(section, SECTIONS)}; "
                            f"sections: {', '.join(SECTIONS)}")
            continue
        if not isinstance(entries, dict):
            problems.append(f"section '{section}' must be a mapping of setting: form")
            continue
        for name, spec in entries.items():
            try:
                params.append(_param(section, str(name), spec))
            except ConfigError as e:
                problems.append(str(e))
    named = {p.name for p in params if p.section == "model"} & set(WIDTHS)
    if len(named) == 1:
        problems.append(f"key 'model.{named.pop()}' needs its partner: give both model.layers and model.units "
                        "(hidden = layers x units), or neither")
    if problems:  # all of them at once (STYLE 4)
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return SearchSpace(tuple(params), where)


def _param(section: str, name: str, spec: Any) -> Param:
    cls = SECTIONS[section]
    fields = {f.name for f in dataclasses.fields(cls)}
    allowed = sorted((fields - set(NOT_SEARCHED[section])) | (set(WIDTHS) if section == "model" else set()))
    key = f"key '{section}.{name}'"
    if name not in allowed:
        raise ConfigError(f"{key} is not a setting that can be searched{did_you_mean(name, allowed)}; "
                          f"allowed: {', '.join(allowed)}")
    kind = "fixed"
    if isinstance(spec, dict):
        kinds = [k for k in ("int", "float", "loguniform", "choice") if k in spec]
        extra = [k for k in spec if k not in ("int", "float", "loguniform", "choice", "step")]
        if len(kinds) != 1 or extra or ("step" in spec and kinds[0] not in ("int", "float")):
            raise ConfigError(f"{key} has the form {spec!r}; use one of: {'; '.join(FORMS)}")
        kind = kinds[0]
    convert = _converter(cls, name, key)
    if kind == "choice":
        values = spec["choice"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{key}: choice takes a non-empty list, as {{choice: [a, b]}}; got {values!r}")
        param = Param(section, name, kind, choices=tuple(convert(v) for v in values))
    elif kind == "fixed":
        param = Param(section, name, kind, choices=(convert(spec),))
    else:
        bounds = spec[kind]
        if not (isinstance(bounds, list) and len(bounds) == 2):
            raise ConfigError(f"{key}: {kind} takes [low, high], as {{{kind}: [1, 10]}}; got {bounds!r}")
        low, high = (_number(b, key) for b in bounds)
        if kind in ("float", "loguniform") and _whole(cls, name):  # a batch of 37.4 rows: a traceback, or
            # accumulate=2.49 stepping at odd batches
            raise ConfigError(f"{key}: {name} takes whole numbers, and {kind} draws fractions; draw it with "
                              f"{{int: [{int(low)}, {int(high)}]}}, or a choice, such as {{choice: [32, 64, 128]}}")
        step = _number(spec["step"], key) if "step" in spec else None
        if kind == "int" and not all(float(v).is_integer() for v in (low, high, step or 1)):
            raise ConfigError(f"{key}: int takes whole numbers for low, high and step; got {spec!r}")
        if not low <= high or (step is not None and step <= 0) or (kind == "loguniform" and low <= 0):
            need = "0 < low <= high" if kind == "loguniform" else "low <= high and a step > 0"
            raise ConfigError(f"{key}: {kind} needs {need}; got {spec!r}")
        param = Param(section, name, kind, low, high, step)
    _check_values(param, cls, key)
    return param


def _whole(cls: type, name: str) -> bool:
    """Whether config field `name` takes whole numbers (the widths layers and units do)."""
    return name in WIDTHS or whole_field(cls, name)


def _check_values(param: Param, cls: type, key: str) -> None:
    """Every choice and both ends of a range must be a value the config accepts (dropout < 1, ...)."""
    if param.name in WIDTHS:
        if any(v < 1 for v in (*param.choices, *(x for x in (param.low,) if x is not None))):
            raise ConfigError(f"{key}: {param.name} must be 1 or more")
        return
    candidates = param.choices or (param.low, param.high)
    for value in candidates:
        try:
            cls(**{param.name: int(value) if param.kind == "int" else value})
        except ConfigError as e:
            raise ConfigError(f"{key}: the value {value!r} is not allowed ({e})") from None


def _converter(cls: type, name: str, key: str) -> Any:
    if name in WIDTHS:
        return lambda v: int(_number(v, key))
    return lambda value: convert_value(cls, name, value, key)


def convert_value(cls: type, name: str, value: Any, where: str) -> Any:
    """`value` as the type of config field `cls.name`: PyYAML reads 1e-3 (no dot) as a string, and the
    command line gives strings ('true', 'none', '128,64' for a tuple of widths)."""
    base, optional = field_type(cls, name)
    if typing.get_origin(base) is tuple:
        base, many = typing.get_args(base)[0], True
    else:
        many = False
    if isinstance(value, str) and value.strip().lower() in ("none", "null"):
        value = None
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: none is not allowed for {name}")
    if many:
        items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
        return tuple(_scalar(base, name, item, where) for item in items)
    return _scalar(base, name, value, where)


def _scalar(base: Any, name: str, value: Any, where: str) -> Any:
    if base is float:
        return _number(value, where)
    if base is int:
        number = _number(value, where)
        if not float(number).is_integer():
            raise ConfigError(f"{where}: {name} takes whole numbers; got {value!r}")
        return int(number)
    if base is bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.strip().lower() in ("true", "yes", "on")
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {name} takes true or false; got {value!r}")
        return value
    return value.strip() if isinstance(value, str) else value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a number, got {value!r}") from None
