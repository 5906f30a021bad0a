"""YAML recipes: the Deep Compression pipeline as a list of stages.

A recipe maps one-to-one onto the configs of the Python API::

    name: lenet5-deep-compression
    stages:
      - prune:                       # PruneConfig fields, plus rounds and retrain
          sparsity: {conv1: 0.34, conv2: 0.88, fc1: 0.92, fc2: 0.81}
          rounds: 2                  # iterative pruning: r/rounds of the target per round
          retrain: {epochs: 4, lr: 0.0005}   # TrainConfig fields; absent: no retraining
      - quantize:                    # WeightSharingConfig fields, plus finetune
          conv_bits: 8
          fc_bits: 5
          finetune: {epochs: 2, lr: 0.0001}
      - encode:                      # EncodingConfig fields
          conv_index_bits: 8
          fc_index_bits: 5
          huffman: true

The recipes shipped in ``netshrink/recipes/`` (package data) load by name:
``load_recipe("lenet5")``, ``netshrink compress --recipe lenet5``.

Stages run in order; ``encode`` comes last (a default one is added when absent). Unknown
keys and out-of-range values are one-line errors naming the key.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from netshrink.errors import NetshrinkError
from netshrink.nsz import EncodingConfig
from netshrink.prune import PruneConfig
from netshrink.quantize import WeightSharingConfig
from netshrink.train import TrainConfig

__all__ = [
    "EncodeStage",
    "PruneStage",
    "QuantizeStage",
    "Recipe",
    "load_recipe",
    "parse_recipe",
    "shipped_recipe",
    "shipped_recipes",
]


@dataclass
class PruneStage:
    config: PruneConfig
    rounds: int = 1
    retrain: TrainConfig | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise NetshrinkError(f"prune: rounds must be a positive integer, got {self.rounds!r}")


@dataclass
class QuantizeStage:
    config: WeightSharingConfig
    finetune: TrainConfig | None = None


@dataclass
class EncodeStage:
    config: EncodingConfig = field(default_factory=EncodingConfig)


Stage = PruneStage | QuantizeStage | EncodeStage


@dataclass
class Recipe:
    stages: list[Stage]
    name: str = ""
    description: str = ""

    @property
    def encode(self) -> EncodingConfig:
        return self.stages[-1].config  # parse_recipe guarantees a final EncodeStage

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe (every default filled in); it parses back to an equal one."""
        stages: list[dict[str, Any]] = []
        for stage in self.stages:
            body = _fields(stage.config)
            if isinstance(stage, PruneStage):
                body.update(rounds=stage.rounds, retrain=_fields(stage.retrain))
                stages.append({"prune": body})
            elif isinstance(stage, QuantizeStage):
                body["finetune"] = _fields(stage.finetune)
                stages.append({"quantize": body})
            else:
                stages.append({"encode": body})
        return {"name": self.name, "description": self.description, "stages": stages}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _fields(config: Any) -> dict[str, Any] | None:
    if config is None:
        return None
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, body: Any, where: str, stage_keys: tuple[str, ...] = ()) -> Any:
    """``cls(**body)`` with a one-line error naming an unknown key (and every key valid at
    that level: ``stage_keys`` are the stage's own, taken out of ``body`` before) or a
    wrong type."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise NetshrinkError(f"recipe: {where} must be a mapping, got {type(body).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in body:
        if key not in known:
            valid = ", ".join(sorted([*known, *stage_keys]))
            raise NetshrinkError(f"recipe: unknown key {where}.{key} (known: {valid})")
    for key, value in body.items():
        default = known[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise NetshrinkError(f"recipe: {where}.{key} must be true or false, got {value!r}")
        if isinstance(default, int | float) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise NetshrinkError(f"recipe: {where}.{key} must be a number, got {value!r}")
            if isinstance(default, float):
                body = {**body, key: float(value)}
        if known[key].default_factory is dict and not isinstance(value, dict):  # type: ignore[comparison-overlap]
            raise NetshrinkError(f"recipe: {where}.{key} must be a mapping, got {value!r}")
    try:
        return cls(**body)
    except NetshrinkError as exc:
        raise NetshrinkError(f"recipe: {where}: {exc}") from None
    except TypeError as exc:
        raise NetshrinkError(f"recipe: {where}: {exc}") from None


def _train_config(body: Any, where: str) -> TrainConfig | None:
    return None if body is None else _build(TrainConfig, body, where)


def parse_recipe(data: Any) -> Recipe:
    """Validate a recipe given as plain data (what ``yaml.safe_load`` returns)."""
    if not isinstance(data, dict):
        raise NetshrinkError("recipe: the document must be a mapping with a 'stages' list")
    unknown = set(data) - {"name", "description", "stages"}
    if unknown:
        raise NetshrinkError(
            f"recipe: unknown key {sorted(unknown)[0]} (known: name, description, stages)"
        )
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise NetshrinkError("recipe: 'stages' must be a non-empty list")
    stages: list[Stage] = []
    for i, item in enumerate(raw_stages):
        where = f"stages[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise NetshrinkError(f"recipe: {where} must be one of prune:, quantize:, encode:")
        ((kind, body),) = item.items()
        body = dict(body or {})
        if stages and isinstance(stages[-1], EncodeStage):
            raise NetshrinkError(f"recipe: {where}: encode must be the last stage")
        if kind == "prune" and any(isinstance(s, QuantizeStage) for s in stages):
            raise NetshrinkError(f"recipe: {where}: prune must come before quantize")
        if kind == "prune":
            rounds = body.pop("rounds", 1)
            retrain = _train_config(body.pop("retrain", None), f"{where}.prune.retrain")
            config = _build(PruneConfig, body, f"{where}.prune", ("retrain", "rounds"))
            stages.append(_stage(PruneStage, where, config=config, rounds=rounds, retrain=retrain))
        elif kind == "quantize":
            if any(isinstance(s, QuantizeStage) for s in stages):
                raise NetshrinkError(f"recipe: {where}: only one quantize stage is allowed")
            finetune = _train_config(body.pop("finetune", None), f"{where}.quantize.finetune")
            config = _build(WeightSharingConfig, body, f"{where}.quantize", ("finetune",))
            stages.append(QuantizeStage(config, finetune))
        elif kind == "encode":
            stages.append(EncodeStage(_build(EncodingConfig, body, f"{where}.encode")))
        else:
            raise NetshrinkError(
                f"recipe: unknown stage {kind!r} in {where} (prune, quantize, encode)"
            )
    if not isinstance(stages[-1], EncodeStage):
        stages.append(EncodeStage())
    return Recipe(stages, str(data.get("name", "")), str(data.get("description", "")))


def _stage(cls: type, where: str, **kwargs: Any) -> Any:
    try:
        return cls(**kwargs)
    except NetshrinkError as exc:
        raise NetshrinkError(f"recipe: {where}: {exc}") from None


SHIPPED = resources.files("netshrink") / "recipes"  # package data: the shipped recipes


def shipped_recipes() -> list[str]:
    """Names of the recipes shipped with netshrink (``lenet5``, ``squeezenet1_0_table1`` ...)."""
    return sorted(
        p.name.removesuffix(".yaml") for p in SHIPPED.iterdir() if p.name.endswith(".yaml")
    )


def shipped_recipe(name: str) -> Recipe:
    """The shipped recipe ``name`` (package data, so it needs no repository checkout)."""
    if name not in shipped_recipes():
        known = ", ".join(shipped_recipes())
        raise NetshrinkError(f"no shipped recipe {name!r} (shipped: {known})")
    return _parse_text((SHIPPED / f"{name}.yaml").read_text(), f"recipe {name}")


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a YAML recipe file, or a shipped recipe by name (``lenet5``)."""
    path = Path(path)
    if not path.is_file():
        if not path.suffix and len(path.parts) == 1:
            if str(path) in shipped_recipes():
                return shipped_recipe(str(path))
            shipped = ", ".join(shipped_recipes())
            raise NetshrinkError(f"recipe {path} does not exist (shipped recipes: {shipped})")
        raise NetshrinkError(f"recipe {path} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise NetshrinkError(f"cannot read recipe {path}: {exc}") from None
    return _parse_text(text, f"recipe {path}")


def _parse_text(text: str, where: str) -> Recipe:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise NetshrinkError(f"{where} is not valid YAML: {first}") from None
    try:
        return parse_recipe(data)
    except NetshrinkError as exc:
        raise NetshrinkError(f"{where.removeprefix('recipe ')}: {exc}") from None
