from pathlib import Path

import pytest
import yaml

from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.nsz import unpack
from netshrink.runs.compress import check_recipe, compress
from netshrink.runs.recipe import (
    EncodeStage,
    PruneStage,
    QuantizeStage,
    load_recipe,
    parse_recipe,
    shipped_recipe,
    shipped_recipes,
)

RECIPES = Path(__file__).resolve().parents[2] / "recipes"  # the repository's link to them


def test_recipes_ship_as_package_data_and_load_by_name(tmp_path, monkeypatch):
    names = shipped_recipes()
    assert {"lenet5", "lenet300_100", "squeezenet1_0_table1"} <= set(names)
    # Read from the installed package, not the repository: the same recipes as the files.
    assert names == sorted(p.stem for p in RECIPES.glob("*.yaml"))
    monkeypatch.chdir(tmp_path)  # no recipes/ folder here
    for name in names:
        by_name = load_recipe(name).to_dict()
        assert (
            by_name
            == shipped_recipe(name).to_dict()
            == load_recipe(RECIPES / f"{name}.yaml").to_dict()
        )
    with pytest.raises(NetshrinkError, match="no shipped recipe 'lenet6'.*lenet5"):
        shipped_recipe("lenet6")
    with pytest.raises(NetshrinkError, match="recipe lenet6 does not exist .shipped recipes: "):
        load_recipe("lenet6")
    (tmp_path / "lenet5").write_text("stages: [{prune: {sparsity: {'*': 2.0}}}]")
    with pytest.raises(NetshrinkError, match="^lenet5: "):  # a file of that name comes first
        load_recipe("lenet5")


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_parse_and_fit_their_model(path):
    recipe = load_recipe(path)
    assert isinstance(recipe.stages[-1], EncodeStage)
    model = create(path.stem.removesuffix("_table1").removesuffix("_table1_8bit"))
    check_recipe(model, recipe)
    # The resolved recipe parses back to the same thing.
    assert parse_recipe(yaml.safe_load(recipe.to_yaml())).to_dict() == recipe.to_dict()


def test_recipe_maps_onto_the_api_configs():
    recipe = parse_recipe(
        {
            "stages": [
                {"prune": {"sparsity": {"fc*": 0.9}, "rounds": 2, "retrain": {"epochs": 3}}},
                {"quantize": {"fc_bits": 4, "finetune": {"epochs": 1, "lr": 1e-4}}},
            ]
        }
    )
    prune, quantize, encode = recipe.stages
    assert isinstance(prune, PruneStage) and prune.config.sparsity == {"fc*": 0.9}
    assert prune.rounds == 2 and prune.retrain.epochs == 3
    assert isinstance(quantize, QuantizeStage) and quantize.config.fc_bits == 4
    assert quantize.finetune.lr == 1e-4
    assert encode.config.fc_index_bits == 5  # the default encode stage


@pytest.mark.parametrize(
    ("stages", "needle"),
    [
        ([{"prune": {"sparsity": {"fc1": 1.0}}}], "fc1"),
        ([{"prune": {"sparsity": {"fc1": -0.1}}}], "fc1"),
        ([{"prune": {"sparsity": {"fc1": 0.5}, "retrain": {"epochz": 1}}}], "epochz"),
        ([{"prune": {"spars": {"fc1": 0.5}}}], "spars"),
        ([{"quantize": {"fc_bits": 17}}], "fc_bits"),
        ([{"quantize": {"bits": {"fc1": 0}}}], "fc1"),
        ([{"quantize": {"conv_bits": "8"}}], "conv_bits"),
        ([{"encode": {"conv_index_bits": 0}}], "conv_index_bits"),
        ([{"encode": {}}, {"prune": {}}], "last"),
        ([{"quantize": {}}, {"prune": {}}], "before quantize"),
        ([{"distill": {}}], "distill"),
        ([], "non-empty"),
        (
            [{"prune": {"sparsity": {"fc1": 0.5}, "final_retrain": {"epochs": 2}}}],
            "final_retrain needs retrain",
        ),
        (
            [
                {
                    "prune": {
                        "sparsity": {"fc1": 0.5},
                        "retrain": {"epochs": 1},
                        "final_retrain": {"epoch": 2},
                    }
                }
            ],
            "final_retrain",
        ),
        (
            [{"prune": {"sparsity": {"fc1": 0.5}, "retrain": {"epochs": 1}, "final_retrain": [2]}}],
            "final_retrain",
        ),
    ],
)
def test_bad_recipes_get_one_line_errors_naming_the_key(stages, needle):
    with pytest.raises(NetshrinkError, match=needle) as info:
        parse_recipe({"stages": stages})
    assert "\n" not in str(info.value)


def test_the_last_round_retrains_with_final_retrain(monkeypatch):
    """Rounds 1..n-1 retrain with ``retrain``, round n with ``final_retrain``; it round-trips."""
    from netshrink.data import load_dataset
    from netshrink.runs import compress as compress_module

    recipe = parse_recipe(
        {
            "stages": [
                {
                    "prune": {
                        "sparsity": {"fc*": 0.5},
                        "rounds": 3,
                        "retrain": {"epochs": 1, "lr": 1e-3},
                        "final_retrain": {"epochs": 2, "lr": 5e-4, "augment": True},
                    }
                },
            ]
        }
    )
    assert parse_recipe(yaml.safe_load(recipe.to_yaml())).to_dict() == recipe.to_dict()
    seen = []
    real_train = compress_module.train

    def spy(model, data, config, **kwargs):
        seen.append((config.epochs, config.lr, config.augment))
        return real_train(model, data, config, **kwargs)

    monkeypatch.setattr(compress_module, "train", spy)
    data = load_dataset("digits", input_size=(1, 28, 28), seed=0, limit=120)
    model = create("lenet300_100", num_classes=10, in_chans=1)
    compress(model, recipe, data, progress=False)
    assert seen == [(1, 1e-3, False), (1, 1e-3, False), (2, 5e-4, True)]


def test_a_pattern_matching_no_layer_is_named_before_any_work():
    recipe = parse_recipe({"stages": [{"prune": {"sparsity": {"conv9": 0.5}}}]})
    with pytest.raises(NetshrinkError, match="'conv9'"):
        check_recipe(create("lenet5", num_classes=10, in_chans=1), recipe)


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [prune: {sparsity: {fc1: 0.5}")
    with pytest.raises(NetshrinkError, match="not valid YAML"):
        load_recipe(bad)
    with pytest.raises(NetshrinkError, match="does not exist"):
        load_recipe(tmp_path / "none.yaml")


def test_compress_without_data_is_post_training_compression(tmp_path):
    recipe = parse_recipe(
        {
            "stages": [
                {"prune": {"sparsity": {"*": 0.8}, "retrain": {"epochs": 50}}},
                {"quantize": {"fc_bits": 4}},
            ]
        }
    )
    model = create("lenet300_100", num_classes=10)
    path = tmp_path / "m.nsz"
    result = compress(model, recipe, None, path=path, model_name="lenet300_100",
                      model_args={"num_classes": 10}, progress=False)  # fmt: skip
    assert result.baseline == {} and result.metrics == {}
    assert result.stages[0]["density"] == pytest.approx({"fc1": 0.2, "fc2": 0.2, "fc3": 0.2})
    assert result.report.file_bytes == path.stat().st_size
    restored = unpack(path)
    assert all(restored.get_submodule(n).weight.count_nonzero() > 0 for n in ("fc1", "fc2"))


def test_float16_encoding_gives_the_model_exactly_what_the_file_holds(tmp_path):
    import torch

    recipe = parse_recipe(
        {"stages": [{"prune": {"sparsity": {"*": 0.5}}}, {"encode": {"float16": True}}]}
    )
    torch.manual_seed(0)
    model = create("lenet5", num_classes=10, in_chans=1)
    result = compress(model, recipe, None, path=tmp_path / "m.nsz", model_name="lenet5",
                      model_args={"num_classes": 10, "in_chans": 1}, progress=False)  # fmt: skip
    restored = unpack(tmp_path / "m.nsz")
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(restored(x), result.model(x))
    bias = result.model.fc1.bias
    assert torch.equal(bias, bias.half().float())
