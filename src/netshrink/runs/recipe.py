"""YAML recipes: the Deep Compression pipeline as a list of stages.

A recipe maps one-to-one onto the configs of the Python API::

    name: lenet5-deep-compression
    stages:
      - prune:                       # PruneConfig fields, plus rounds and retrain
          sparsity: {conv1: 0.34, conv2: 0.88, fc1: 0.92, fc2: 0.81}
          rounds: 2                  # iterative pruning: r/rounds of the target per round
          retrain: {epochs: 4, lr: 0.0005}   # TrainConfig fields; absent: no retraining
          final_retrain: {epochs: 8, lr: 0.0005}  # the last round's; absent: retrain's
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
keys, wrong types and out-of-range values are one-line errors naming the key.

A recipe file is read with a subclass of PyYAML's safe loader (plain data, never Python
objects) that also refuses what a hostile file could use to exhaust memory or time: files
over 1 MiB, nesting deeper than 20, more than 64 aliases or a document that expands to
more than 100,000 nodes through them ("billion laughs"), aliases to themselves, and
duplicate keys (which YAML would silently resolve to the last). Numbers follow YAML 1.2,
so ``1e-4`` is a float as it is in Python.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import reprlib
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


MAX_BYTES = 1 << 20  # a recipe is a few hundred bytes; a bigger file is not one
MAX_DEPTH = 20  # nested mappings and lists (a recipe needs 5)
MAX_ALIASES = 64
MAX_NODES = 100_000  # the document with every alias expanded
MAX_ROUNDS = 100


@dataclass
class PruneStage:
    config: PruneConfig
    rounds: int = 1
    retrain: TrainConfig | None = None
    # The last round's retraining (at the final sparsity, where the network has the most
    # to recover); None: ``retrain``'s.
    final_retrain: TrainConfig | None = None

    def __post_init__(self) -> None:
        rounds = self.rounds
        if not isinstance(rounds, int) or isinstance(rounds, bool) or not 1 <= rounds <= MAX_ROUNDS:
            raise NetshrinkError(
                f"prune: rounds must be an integer in 1..{MAX_ROUNDS}, got {_show(rounds)}"
            )
        if self.final_retrain is not None and self.retrain is None:
            raise NetshrinkError("prune: final_retrain needs retrain (the other rounds')")

    def retraining(self, round_: int) -> TrainConfig | None:
        """The retraining after pruning round ``round_`` (1-based) of :attr:`rounds`."""
        if round_ == self.rounds and self.final_retrain is not None:
            return self.final_retrain
        return self.retrain


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
                if stage.final_retrain is not None:
                    body["final_retrain"] = _fields(stage.final_retrain)
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


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 40, 40


def _show(value: Any) -> str:
    """``repr(value)`` cut to a few dozen characters, on one line, whatever the value."""
    try:
        return _REPR.repr(value)
    except ValueError:  # an int of more than 4300 digits has no repr
        return f"<{type(value).__name__} too large to print>"


def _key(key: Any) -> str:
    """A key as it reads in a message: bare when it is a plain name, else its repr."""
    return key if isinstance(key, str) and re.fullmatch(r"[\w*?.\[\]-]{1,40}", key) else _show(key)


def _one_line(message: str) -> str:
    line = " ".join(message.split())  # every line break, \u2028 included
    return line if len(line) <= 300 else line[:297] + "..."


def _number(value: Any, want: type, where: str) -> Any:
    """``value`` as an int (``want`` int: no bools, no floats) or a finite float."""
    if want is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise NetshrinkError(f"recipe: {where} must be an integer, got {_show(value)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int beyond the float range
            number = math.inf
        if math.isfinite(number):
            return number
    raise NetshrinkError(f"recipe: {where} must be a finite number, got {_show(value)}")


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
            raise NetshrinkError(f"recipe: unknown key {where}.{_key(key)} (known: {valid})")
    values = dict(body)
    for key, value in body.items():
        default, factory = known[key].default, known[key].default_factory
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise NetshrinkError(
                    f"recipe: {where}.{key} must be true or false, got {_show(value)}"
                )
        elif isinstance(default, int | float):
            values[key] = _number(value, type(default), f"{where}.{key}")
        elif isinstance(default, str) and not isinstance(value, str):
            raise NetshrinkError(f"recipe: {where}.{key} must be a string, got {_show(value)}")
        elif factory is dict and not isinstance(value, dict):  # type: ignore[comparison-overlap]
            raise NetshrinkError(f"recipe: {where}.{key} must be a mapping, got {_show(value)}")
        elif factory is list and not isinstance(value, list):  # type: ignore[comparison-overlap]
            raise NetshrinkError(f"recipe: {where}.{key} must be a list, got {_show(value)}")
    try:
        return cls(**values)
    except (NetshrinkError, TypeError) as exc:
        raise NetshrinkError(_one_line(f"recipe: {where}: {exc}")) from None
    except ValueError:  # a message's repr of an int of over 4300 digits (not from YAML)
        raise NetshrinkError(f"recipe: {where}: a number too large to print") from None


def _train_config(body: Any, where: str) -> TrainConfig | None:
    return None if body is None else _build(TrainConfig, body, where)


def _text(data: dict[Any, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise NetshrinkError(f"recipe: {key} must be a string, got {_show(value)}")
    return value


def parse_recipe(data: Any) -> Recipe:
    """Validate a recipe given as plain data (what ``yaml.safe_load`` returns)."""
    if not isinstance(data, dict):
        raise NetshrinkError("recipe: the document must be a mapping with a 'stages' list")
    unknown = [key for key in data if key not in ("name", "description", "stages")]
    if unknown:
        raise NetshrinkError(
            f"recipe: unknown key {_key(unknown[0])} (known: name, description, stages)"
        )
    name, description = _text(data, "name"), _text(data, "description")
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise NetshrinkError("recipe: 'stages' must be a non-empty list")
    stages: list[Stage] = []
    for i, item in enumerate(raw_stages):
        where = f"stages[{i}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise NetshrinkError(f"recipe: {where} must be one of prune:, quantize:, encode:")
        ((kind, body),) = item.items()
        if kind not in ("prune", "quantize", "encode"):
            raise NetshrinkError(
                f"recipe: unknown stage {_show(kind)} in {where} (prune, quantize, encode)"
            )
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise NetshrinkError(
                f"recipe: {where}.{kind} must be a mapping, got {type(body).__name__}"
            )
        body = dict(body)
        if stages and isinstance(stages[-1], EncodeStage):
            raise NetshrinkError(f"recipe: {where}: encode must be the last stage")
        if kind == "prune" and any(isinstance(s, QuantizeStage) for s in stages):
            raise NetshrinkError(f"recipe: {where}: prune must come before quantize")
        if kind == "prune":
            rounds = body.pop("rounds", 1)
            retrain = _train_config(body.pop("retrain", None), f"{where}.prune.retrain")
            final = _train_config(body.pop("final_retrain", None), f"{where}.prune.final_retrain")
            config = _build(
                PruneConfig, body, f"{where}.prune", ("retrain", "final_retrain", "rounds")
            )
            stages.append(_stage(PruneStage, where, config=config, rounds=rounds,
                                 retrain=retrain, final_retrain=final))  # fmt: skip
        elif kind == "quantize":
            if any(isinstance(s, QuantizeStage) for s in stages):
                raise NetshrinkError(f"recipe: {where}: only one quantize stage is allowed")
            finetune = _train_config(body.pop("finetune", None), f"{where}.quantize.finetune")
            config = _build(WeightSharingConfig, body, f"{where}.quantize", ("finetune",))
            stages.append(QuantizeStage(config, finetune))
        else:
            stages.append(EncodeStage(_build(EncodingConfig, body, f"{where}.encode")))
    if not isinstance(stages[-1], EncodeStage):
        stages.append(EncodeStage())
    return Recipe(stages, name, description)


def _stage(cls: type, where: str, **kwargs: Any) -> Any:
    try:
        return cls(**kwargs)
    except NetshrinkError as exc:
        raise NetshrinkError(f"recipe: {where}: {exc}") from None


class _Refused(yaml.YAMLError):
    """A recipe file beyond :data:`MAX_DEPTH`, :data:`MAX_ALIASES` or :data:`MAX_NODES`."""


_MERGE = "tag:yaml.org,2002:merge"


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with YAML 1.2 floats and limits on nesting, aliases, expansion
    and duplicate keys (PyYAML shares an aliased node, but code that walks or copies the
    result, a repr in an error message included, pays for every expanded copy)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._open: set[str] = set()  # anchors of the collections being composed

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} aliases (at *{event.anchor})")
            if event.anchor in self._open:
                raise _Refused(f"alias *{event.anchor} refers to the node that contains it")
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels")
        anchor = event.anchor if isinstance(event, yaml.CollectionStartEvent) else None
        if anchor is not None:
            self._open.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor)

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        seen: dict[int, tuple[int, int]] = {}  # id(node): (nodes, height) with aliases expanded

        def measure(node: Any, level: int) -> tuple[int, int]:
            if id(node) not in seen:
                if isinstance(node, yaml.SequenceNode):
                    children = node.value
                elif isinstance(node, yaml.MappingNode):
                    children = [n for pair in node.value for n in pair]
                else:
                    children = []
                counts = [measure(child, level + 1) for child in children]
                nodes = 1 + sum(n for n, _ in counts)
                seen[id(node)] = (nodes, 1 + max((h for _, h in counts), default=0))
                if nodes > MAX_NODES:
                    raise _Refused(f"aliases expand it to more than {MAX_NODES:,} nodes")
            if level + seen[id(node)][1] > MAX_DEPTH + 1:  # an alias nests a deep node deeper
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels (through aliases)")
            return seen[id(node)]

        if node is not None:
            measure(node, 0)
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # a date like 2001-02-30, 5,000 digits
            kind = node.tag.rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"{_show(node.value)} is not a valid {kind} ({exc})", node.start_mark
            ) from None

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue  # "<<: *base" overrides on purpose
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # an unhashable key: the base class names it
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {_show(key)}", key_node.start_mark
                    )
        return super().construct_mapping(node, deep)


# YAML 1.2 floats: an exponent needs no dot ("1e-4"), which YAML 1.1 reads as a string
_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


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
    return _parse_text((SHIPPED / f"{name}.yaml").read_text("utf-8"), f"recipe {name}")


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
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)  # never more, however big the file
    except OSError as exc:
        raise NetshrinkError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise NetshrinkError(f"recipe {path} is over {MAX_BYTES >> 20} MiB: not a recipe")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NetshrinkError(
            f"recipe {path} is not UTF-8 text (byte {exc.start}: {raw[exc.start]:#04x})"
        ) from None
    return _parse_text(text, f"recipe {path}")


def _yaml_error(exc: yaml.YAMLError) -> str:
    """The first line of a YAML error, with its line and column when it has them."""
    if isinstance(exc, yaml.MarkedYAMLError):
        what = ", ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return _one_line(f"{what}{where}")
    return _one_line(str(exc) or "invalid YAML")


def _parse_text(text: str, where: str) -> Recipe:
    try:
        data = yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 (a SafeLoader subclass)
    except _Refused as exc:
        raise NetshrinkError(f"{where} is refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise NetshrinkError(f"{where} is not valid YAML: {_yaml_error(exc)}") from None
    except RecursionError as exc:  # not reached within MAX_DEPTH; kept as a last guard
        raise NetshrinkError(_one_line(f"{where} is not valid YAML: {exc}")) from None
    try:
        return parse_recipe(data)
    except NetshrinkError as exc:
        raise NetshrinkError(_one_line(f"{where.removeprefix('recipe ')}: {exc}")) from None
