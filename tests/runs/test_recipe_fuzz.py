"""Hostile and fuzzed recipes: every bad one is one NetshrinkError line naming what is wrong.

Table-driven cases cover each kind of damage (alias bombs, huge numbers, wrong types at
every level, unknown, non-string and duplicate keys, junk bytes, odd files); a Hypothesis
test mutates the shipped recipes and checks that parsing either gives configs that
round-trip or fails with one line, never another exception.
"""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netshrink.errors import NetshrinkError
from netshrink.nsz import EncodingConfig
from netshrink.prune import PruneConfig
from netshrink.quantize import WeightSharingConfig
from netshrink.runs import recipe as recipe_module
from netshrink.runs.recipe import EncodeStage, load_recipe, parse_recipe, shipped_recipes
from netshrink.train import TrainConfig

SHIPPED = Path(recipe_module.SHIPPED)  # type: ignore[arg-type]
PRUNE = "stages: [{prune: {sparsity: {fc1: 0.5}, %s}}]"
RETRAIN = "stages: [{prune: {sparsity: {fc1: 0.5}, retrain: {%s}}}]"
QUANT = "stages: [{quantize: {%s}}]"
ENCODE = "stages: [{encode: {%s}}]"


def _one_line_error(call) -> str:
    with pytest.raises(NetshrinkError) as info:
        call()
    message = str(info.value)
    assert len(message.splitlines()) == 1 and message.strip() == message, message
    assert len(message) <= 400, message
    return message


def _parse(text: str):
    return recipe_module._parse_text(text, "recipe fuzz.yaml")


def _bomb(levels: int, width: int = 9) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + f"\nname: *l{levels - 1}\nstages: [{{encode: {{}}}}]\n"


CASES = {
    # aliases and nesting
    "billion laughs": (_bomb(9), "more than 64 aliases"),
    "expansion bomb within the alias limit": (_bomb(6), "more than 100,000 nodes"),
    "many aliases": (
        "a: &a x\nstages: [{prune: {sparsity: {"
        + ", ".join(f"p{i}: *a" for i in range(80))
        + "}}}]",
        "more than 64 aliases",
    ),
    "alias to itself": ("stages: &s [*s]", "refers to the node that contains it"),
    "deep nesting": ("stages: " + "[" * 5000 + "]" * 5000, "nested deeper than 20"),
    "deep through aliases": (
        "a: &a " + "[" * 15 + "1" + "]" * 15 + "\nb: &b " + "[" * 10 + "*a" + "]" * 10,
        "nested deeper than 20 levels (through aliases)",
    ),
    # numbers
    "1e309 sparsity": ("stages: [{prune: {sparsity: {fc1: 1e309}}}]", "for 'fc1' must be"),
    "10**400 sparsity": ("stages: [{prune: {sparsity: {fc1: 1%s}}}]" % ("0" * 400), "'fc1'"),
    "5000-digit int": ("stages: [{prune: {sparsity: {fc1: 1%s}}}]" % ("0" * 5000), "line 1"),
    "10**400 epochs": (RETRAIN % ("epochs: 1" + "0" * 400), "epochs"),
    "10**400 lr": (RETRAIN % ("lr: 1" + "0" * 400), "retrain.lr"),
    "inf lr": (RETRAIN % "lr: .inf", "retrain.lr"),
    "nan weight decay": (RETRAIN % "weight_decay: .nan", "retrain.weight_decay"),
    "nan momentum": (RETRAIN % "momentum: .nan", "retrain.momentum"),
    "momentum above 1": (RETRAIN % "momentum: 2.5", "momentum"),
    "zero gamma": (RETRAIN % "gamma: 0", "gamma"),
    "zero step size": (RETRAIN % "step_size: 0", "step_size"),
    "negative epochs": (RETRAIN % "epochs: -1", "epochs"),
    "negative seed": (RETRAIN % "seed: -1", "seed"),
    "negative sparsity": ("stages: [{prune: {sparsity: {fc1: -0.5}}}]", "'fc1'"),
    "negative quality": ("stages: [{prune: {quality: {fc1: -1}}}]", "'fc1'"),
    "negative rounds": (PRUNE % "rounds: -2", "rounds"),
    "10**400 rounds": (PRUNE % ("rounds: 1" + "0" * 400), "rounds"),
    "huge max_iter": (QUANT % ("max_iter: 1" + "0" * 400), "max_iter"),
    "negative quantize seed": (QUANT % "seed: -3", "seed"),
    "huge index bits": (ENCODE % ("fc_index_bits: 1" + "0" * 400), "fc_index_bits"),
    # wrong types at every level
    "string epochs": (RETRAIN % "epochs: '3'", "retrain.epochs"),
    "float epochs": (RETRAIN % "epochs: 2.5", "retrain.epochs"),
    "bool epochs": (RETRAIN % "epochs: true", "retrain.epochs"),
    "null epochs": (RETRAIN % "epochs: null", "retrain.epochs"),
    "list lr": (RETRAIN % "lr: [1]", "retrain.lr"),
    "bool lr": (RETRAIN % "lr: true", "retrain.lr"),
    "int augment": (RETRAIN % "augment: 1", "retrain.augment"),
    "list optimizer": (RETRAIN % "optimizer: [adam]", "retrain.optimizer"),
    "mapping schedule": (RETRAIN % "schedule: {a: 1}", "retrain.schedule"),
    "bool rounds": (PRUNE % "rounds: true", "rounds"),
    "float rounds": (PRUNE % "rounds: 2.0", "rounds"),
    "string rounds": (PRUNE % "rounds: two", "rounds"),
    "list retrain": (PRUNE % "retrain: [1]", "retrain"),
    "string retrain": (PRUNE % "retrain: fast", "retrain"),
    "list sparsity": ("stages: [{prune: {sparsity: [fc1, 0.5]}}]", "sparsity"),
    "string sparsity value": ("stages: [{prune: {sparsity: {fc1: half}}}]", "'fc1'"),
    "null sparsity value": ("stages: [{prune: {sparsity: {fc1: null}}}]", "'fc1'"),
    "bool sparsity value": ("stages: [{prune: {sparsity: {fc1: true}}}]", "'fc1'"),
    "int sparsity pattern": ("stages: [{prune: {sparsity: {1: 0.5}}}]", "pattern"),
    "null quality": ("stages: [{prune: {sparsity: {fc1: 0.5}, quality: null}}]", "quality"),
    "string prune body": ("stages: [{prune: abc}]", "stages[0].prune must be a mapping"),
    "pairs prune body": ("stages: [{prune: [[sparsity, 1]]}]", "stages[0].prune must be a map"),
    "int prune body": ("stages: [{prune: 5}]", "stages[0].prune must be a mapping"),
    "bool conv bits": (QUANT % "conv_bits: true", "conv_bits"),
    "float fc bits": (QUANT % "fc_bits: 5.0", "fc_bits"),
    "list bits": (QUANT % "bits: [5]", "quantize.bits"),
    "mapping exclude": (QUANT % "exclude: {conv1: 1}", "exclude"),
    "null exclude": (QUANT % "exclude: null", "exclude"),
    "string exclude": (QUANT % "exclude: conv1", "exclude"),
    "set exclude": (QUANT % "exclude: !!set {conv1}", "exclude"),
    "list init": (QUANT % "init: [linear]", "init"),
    "string max_iter": (QUANT % "max_iter: many", "max_iter"),
    "string finetune epochs": (QUANT % "finetune: {epochs: x}", "finetune.epochs"),
    "int huffman": (ENCODE % "huffman: 1", "huffman"),
    "string float16": (ENCODE % "float16: 'yes'", "float16"),
    "list index bits": (ENCODE % "index_bits: [4]", "index_bits"),
    "null index bits value": (ENCODE % "index_bits: {fc1: null}", "index_bits['fc1']"),
    "stages mapping": ("stages: {prune: {}}", "'stages'"),
    "stages string": ("stages: prune", "'stages'"),
    "stages null": ("stages:", "'stages'"),
    "stage list": ("stages: [[prune]]", "stages[0]"),
    "stage two kinds": ("stages: [{prune: {}, encode: {}}]", "stages[0]"),
    "stage int kind": ("stages: [{1: {}}]", "unknown stage 1"),
    "list name": ("name: [a]\nstages: [{encode: {}}]", "name must be a string"),
    "date description": ("description: 2001-01-01\nstages: [{encode: {}}]", "description"),
    "document list": ("- stages", "must be a mapping"),
    "document scalar": ("just text", "must be a mapping"),
    # keys
    "unknown top key": ("stages: [{encode: {}}]\nstagez: 1", "stagez"),
    "unknown stage key": (PRUNE % "retrian: {}", "stages[0].prune.retrian"),
    "unknown retrain key": (RETRAIN % "epoch: 1", "retrain.epoch"),
    "unknown encode key": (ENCODE % "huffmann: true", "encode.huffmann"),
    "int top key": ("1: x\nstages: [{encode: {}}]", "unknown key 1"),
    "mixed top keys": ("null: 1\ntrue: 2\nstages: []", "unknown key None"),
    "list key": ("? [a, b]\n: 1\nstages: []", "unhashable"),
    "newline key": ('stages: [{encode: {"a\\nb": 1}}]', r"encode.'a\nb'"),
    "line separator key": ('stages: [{encode: {"a\\u2028b": 1}}]', r"encode.'a\u2028b'"),
    "duplicate top key": ("stages: []\nstages: [{encode: {}}]", "duplicate key 'stages'"),
    "duplicate nested key": (RETRAIN % "epochs: 1, epochs: 2", "duplicate key 'epochs'"),
    "duplicate 1 and true": ("stages: [{prune: {sparsity: {1: 0.1, true: 0.2}}}]", "duplicate"),
    # junk
    "tab indent": ("stages:\n\t- encode: {}", "'\\t'"),
    "unclosed flow": ("stages: [{prune: {sparsity: {fc1: 0.5}", "line"),
    "nul byte": ("stages: \x00", "#x0000"),
    "control chars": ("stages: [\x07\x1b]", "special characters"),
    "two documents": ("stages: []\n---\nstages: []", "single document"),
    "python tag": ("stages: !!python/object/apply:os.system [ls]", "python/object"),
    "bad date": ("name: 2001-02-30\nstages: []", "timestamp"),
    "bad base64": ("name: !!binary 'x'\nstages: []", "base64"),
    "bad hex": ("name: !!int 0x\nstages: []", "not a valid int"),
    "bad merge": ("stages: [{encode: {<<: 5}}]", "for merging"),
    "unicode junk": ("stages: [{encode: {ßüñ\U0001f600: 1}}]", "encode.'ßüñ\U0001f600'"),
    "empty": ("", "must be a mapping"),
    "only comment": ("# nothing\n", "must be a mapping"),
}


@pytest.mark.parametrize(("text", "needle"), list(CASES.values()), ids=list(CASES))
def test_hostile_recipe_is_one_line_naming_the_key(text, needle):
    message = _one_line_error(lambda: _parse(text))
    assert needle in message


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"stages": [{"prune": {"sparsity": {"fc1": 10**5000}}}]}, "stages[0].prune"),
        ({"stages": [{"prune": {"sparsity": {"fc1": 0.5}, "rounds": 10**400}}]}, "rounds"),
        ({"stages": [{"quantize": {"conv_bits": 10**400}}]}, "conv_bits"),
        ({("a",): 1, "stages": []}, "('a',)"),
        ({"stages": [{"encode": {"x" * 10_000: 1}}]}, "encode.'xxxx"),
        ({"name": "n" * 10_000, "stages": [{"encode": {"huffman": "\n" * 10_000}}]}, "huffman"),
    ],
)
def test_python_data_with_huge_values_is_one_short_line(data, needle):
    assert needle in _one_line_error(lambda: parse_recipe(data))


def test_the_loader_is_a_safe_loader():
    assert issubclass(recipe_module._RecipeLoader, yaml.SafeLoader)
    # a tag that would run code with the unsafe loader is refused, not constructed
    _one_line_error(lambda: _parse("stages: !!python/name:os.system"))


def test_yaml_12_floats_anchors_and_merges_still_work():
    recipe = _parse(
        "stages:\n"
        "  - prune: {sparsity: {fc1: 5e-1}, retrain: &fast {epochs: 1, lr: 1e-4}}\n"
        "  - quantize: {fc_bits: 4, finetune: {<<: *fast, lr: 2.5E-5}}\n"
    )
    prune, quantize, _ = recipe.stages
    assert prune.config.sparsity == {"fc1": 0.5} and prune.retrain.lr == 1e-4
    assert quantize.finetune.epochs == 1 and quantize.finetune.lr == 2.5e-5


def test_odd_recipe_files(tmp_path):
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as handle:
        handle.write(b"stages: [{encode: {}}]\n# " + b"x" * recipe_module.MAX_BYTES)
    assert "over 1 MiB" in _one_line_error(lambda: load_recipe(huge))
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: caf\xe9\nstages: [{encode: {}}]\n".encode("latin-1"))
    assert "not UTF-8 text (byte 9: 0xe9)" in _one_line_error(lambda: load_recipe(latin1))
    binary = tmp_path / "model.pt"
    binary.write_bytes(bytes(range(256)) * 4)
    assert "model.pt" in _one_line_error(lambda: load_recipe(binary))
    empty = tmp_path / "empty.yaml"
    empty.write_bytes(b"")
    assert "must be a mapping" in _one_line_error(lambda: load_recipe(empty))
    utf8 = tmp_path / "utf8.yaml"  # UTF-8 with a BOM and non-ASCII text reads fine
    utf8.write_bytes("\ufeffname: café ☕\nstages: [{encode: {}}]\n".encode())
    assert load_recipe(utf8).name == "café ☕"
    assert "does not exist" in _one_line_error(lambda: load_recipe(tmp_path))


# ------------------------------------------------------------------------------ Hypothesis

FIELDS = sorted(
    {f.name for cls in (PruneConfig, WeightSharingConfig, EncodingConfig, TrainConfig)
     for f in dataclasses.fields(cls)}
    | {"rounds", "retrain", "finetune", "prune", "quantize", "encode", "stages", "name"}
)  # fmt: skip
SEEDS = [yaml.safe_load((SHIPPED / f"{name}.yaml").read_text()) for name in shipped_recipes()]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2, 16, 17, 10**400, -(10**400), 2**31, 2**32]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 0.999, 1.0, 1e-4, 1e309, -0.0]),
    st.text(max_size=12),
    st.sampled_from(["adam", "sgd", "step", "linear", "*", "", "fc1", "\n", "1e-4"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=6)), inner, max_size=3),
    ),
    max_leaves=6,
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=8), st.integers(), st.none())


def _containers(node, path=()):
    """Every (path, container) in the tree: dicts and lists that a mutation can change."""
    if isinstance(node, dict | list):
        yield path, node
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            yield from _containers(child, (*path, key))


def _mutate(data, draw) -> None:
    containers = list(_containers(data))
    _, target = draw(st.sampled_from(containers))
    slots = list(target) if isinstance(target, dict) else list(range(len(target)))
    action = draw(st.sampled_from(["replace", "delete", "insert"] if slots else ["insert"]))
    if action == "replace":
        target[draw(st.sampled_from(slots))] = draw(values)
    elif action == "delete":
        del target[draw(st.sampled_from(slots))]
    elif isinstance(target, dict):
        target[draw(keys)] = draw(values)
    else:
        target.insert(draw(st.integers(0, len(target))), draw(values))


def _check_valid(recipe) -> None:
    assert isinstance(recipe.stages[-1], EncodeStage)
    resolved = recipe.to_dict()
    json.dumps(resolved, allow_nan=False)  # plain, finite data
    assert parse_recipe(yaml.safe_load(recipe.to_yaml())).to_dict() == resolved


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.data())
def test_mutated_shipped_recipes_parse_or_fail_in_one_line(data):
    tree = json.loads(json.dumps(data.draw(st.sampled_from(SEEDS))))  # a fresh copy
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate(tree, data.draw)
    for parse in (
        lambda: parse_recipe(tree),
        lambda: _parse(yaml.safe_dump(tree, allow_unicode=data.draw(st.booleans()))),
    ):
        try:
            recipe = parse()
        except NetshrinkError as exc:
            message = str(exc)
            assert len(message.splitlines()) == 1 and len(message) <= 400, message
        else:
            _check_valid(recipe)
