"""share_weights_ and friends: surgery, Han et al.'s centroid gradient, round trips."""

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from netshrink.data import load_dataset
from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.quantize import (
    WeightSharingConfig,
    decode,
    finetune_shared,
    is_shared,
    load_shared_,
    share_weights_,
    shared_layers,
    unshare_weights_,
)
from netshrink.train import TrainConfig, recalibrate_batchnorm

SMALL = WeightSharingConfig(conv_bits=3, fc_bits=2)


def tiny_net(seed: int = 0) -> nn.Sequential:
    """Conv + BatchNorm + two Linear layers for 1x8x8 inputs (the 8x8 digits)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(1, 6, 3),  # (B, 6, 6, 6)
            bn=nn.BatchNorm2d(6),
            relu=nn.ReLU(),
            pool=nn.MaxPool2d(2),  # (B, 6, 3, 3)
            flat=nn.Flatten(),
            fc1=nn.Linear(54, 24),
            relu2=nn.ReLU(),
            fc2=nn.Linear(24, 10),
        )
    )


def prune_by_hand(module: nn.Module, density: float, seed: int = 0) -> torch.Tensor:
    """What netshrink.prune leaves behind: zeroed weights and a ``weight_mask`` buffer."""
    generator = torch.Generator().manual_seed(seed)
    keep = torch.rand(module.weight.shape, generator=generator) < density
    module.register_buffer("weight_mask", keep, persistent=False)
    with torch.no_grad():
        module.weight.masked_fill_(~keep, 0)
    return keep


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0, limit=200)  # native 1x8x8


def inputs(seed: int = 1) -> torch.Tensor:
    return torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_layers_compute_with_their_nearest_centroid():
    model = tiny_net()
    keep = prune_by_hand(model.fc1, 0.5)
    original = {n: m.weight.detach().double().numpy() for n, m in model.named_modules()
                if isinstance(m, nn.Conv2d | nn.Linear)}  # fmt: skip
    layers = share_weights_(model, SMALL)
    assert list(layers) == ["conv", "fc1", "fc2"]
    assert "weight_mask" not in model.fc1._buffers  # the codes carry the mask
    for name, layer in layers.items():
        module = model.get_submodule(name)
        assert is_shared(module) and "weight" not in module._parameters
        assert module.codebook.dtype == torch.float32 and module.codebook.requires_grad
        assert module.codes.dtype == torch.int16 and module.codes.shape == module.weight.shape
        np.testing.assert_array_equal(module.codes.numpy(), layer.codes)
        np.testing.assert_array_equal(module.codebook.detach().numpy(), layer.codebook)
        # The materialized weight is each original weight's nearest centroid; zeros stay 0.
        w = original[name]
        centroids = layer.codebook.astype(np.float64)
        nearest = centroids[np.abs(w[..., None] - centroids).argmin(-1)]
        expected = np.where(w == 0, 0.0, nearest).astype(np.float32)
        np.testing.assert_array_equal(module.weight.detach().numpy(), expected)
    assert layers["conv"].codebook.size == 2**3 - 1 and layers["fc1"].codebook.size == 3
    assert (model.fc1.codes[~keep] == 0).all() and (model.fc1.codes[keep] > 0).all()


def test_default_bits_are_8_for_conv_and_5_for_fc():
    model = create("lenet5", num_classes=10, in_chans=1)
    layers = share_weights_(model, WeightSharingConfig())
    assert {n: l.bits for n, l in layers.items()} == {"conv1": 8, "conv2": 8, "fc1": 5, "fc2": 5}
    assert {n: l.codebook.size for n, l in layers.items()} == {
        "conv1": 255, "conv2": 255, "fc1": 31, "fc2": 31,
    }  # fmt: skip


def test_bits_patterns_and_exclude():
    model = tiny_net()
    config = WeightSharingConfig(bits={"fc2": 1, "fc*": 4}, conv_bits=2, exclude=["conv"])
    layers = share_weights_(model, config)
    assert {n: l.bits for n, l in layers.items()} == {"fc1": 4, "fc2": 1}
    assert not is_shared(model.conv) and isinstance(model.conv.weight, nn.Parameter)
    assert model.fc2.codebook.shape == (1,)
    with pytest.raises(NetshrinkError, match="already weight-shared"):
        share_weights_(model, WeightSharingConfig(exclude=["conv"]))


def test_few_distinct_weights_shrink_the_codebook_and_are_exact():
    model = tiny_net()
    with torch.no_grad():
        model.fc2.weight.copy_(torch.tensor([0.0, 0.5, -0.25])[torch.arange(240) % 3].view(10, 24))
    x = inputs()
    model.eval()
    before = model(x)
    layers = share_weights_(model, WeightSharingConfig(bits={"fc2": 8}, exclude=["conv", "fc1"]))
    np.testing.assert_array_equal(layers["fc2"].codebook, [-0.25, 0.5])
    assert layers["fc2"].bits == 8
    assert torch.equal(model(x), before)


def test_centroid_gradient_is_the_sum_of_member_gradients():
    model = tiny_net()
    prune_by_hand(model.fc1, 0.6)
    twin = copy.deepcopy(model).double()  # plain float64 reference, same structure
    share_weights_(model, SMALL)
    layers = shared_layers(model)
    with torch.no_grad():
        for name, layer in layers.items():
            twin.get_submodule(name).weight.copy_(
                torch.from_numpy(decode(layer.codebook, layer.codes).astype(np.float64))
            )
    x, y = inputs(), torch.arange(5)
    nn.functional.cross_entropy(model(x), y).backward()
    nn.functional.cross_entropy(twin(x.double()), y).backward()
    for name, layer in layers.items():
        weight_grad = twin.get_submodule(name).weight.grad.numpy().ravel()
        codes = layer.codes.ravel().astype(np.int64)
        expected = np.bincount(codes, weights=weight_grad, minlength=layer.codebook.size + 1)[1:]
        got = model.get_submodule(name).codebook.grad.double().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
        assert np.abs(expected).max() > 0
    # Biases and BatchNorm stay float parameters with their usual gradients.
    np.testing.assert_allclose(model.fc2.bias.grad.numpy(), twin.fc2.bias.grad.numpy(), 1e-4)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_moves_centroids_only_and_keeps_zeros(optimizer):
    model = tiny_net()
    keep = prune_by_hand(model.fc1, 0.5)
    share_weights_(model, SMALL)
    codes = {n: m.codes.clone() for n, m in model.named_modules() if is_shared(m)}
    codebooks = {n: m.codebook.detach().clone() for n, m in model.named_modules() if is_shared(m)}
    params = list(model.parameters())
    assert any(p is model.fc1.codebook for p in params)
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)
    else:
        opt = torch.optim.Adam(params, lr=0.01, weight_decay=1e-3)
    for step in range(4):
        x, y = inputs(step), torch.arange(5) % 10
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model(inputs())  # materialize the final weights
    for name, before in codes.items():
        module = model.get_submodule(name)
        assert torch.equal(module.codes, before)  # assignments are fixed
        assert not torch.equal(module.codebook.detach(), codebooks[name])
        expected = torch.cat([torch.zeros(1), module.codebook.detach()])[before.long()]
        assert torch.equal(module.weight, expected)
    assert (model.fc1.weight[~keep] == 0).all()
    assert torch.equal(
        torch.signbit(model.fc1.weight[~keep]), torch.zeros((~keep).sum(), dtype=bool)
    )


def test_unshare_gives_identical_outputs_and_float_weights():
    model = tiny_net()
    prune_by_hand(model.conv, 0.7)
    share_weights_(model, SMALL)
    model.eval()
    x = inputs()
    shared_out = model(x)
    materialized = model.conv.weight.clone()
    unshare_weights_(model)
    assert not any(is_shared(m) for m in model.modules())
    assert isinstance(model.conv.weight, nn.Parameter) and model.conv.weight.requires_grad
    assert torch.equal(model.conv.weight, materialized)
    assert list(model.state_dict())[:2] == ["conv.weight", "conv.bias"]
    assert not model.conv._forward_pre_hooks and not model.conv._forward_hooks
    assert not model.conv._load_state_dict_pre_hooks
    assert not model.conv._load_state_dict_post_hooks
    model.load_state_dict(model.state_dict())  # a plain float model again
    assert torch.equal(model(x), shared_out)


def test_state_dict_round_trip_into_a_fresh_shared_model():
    source = tiny_net(seed=0)
    with torch.no_grad():  # only two distinct nonzero values: K = 2, not the fresh model's 3
        source.fc2.weight.copy_(torch.tensor([0.0, 0.5, -0.25])[torch.arange(240) % 3].view(10, 24))
    share_weights_(source, SMALL)
    source.fc1.codebook.data += 0.01  # as if fine-tuned
    source.eval()
    state = source.state_dict()
    assert {k for k in state if k.startswith("fc1.")} == {"fc1.codebook", "fc1.bias", "fc1.codes"}
    fresh = tiny_net(seed=1)
    share_weights_(fresh, SMALL)
    assert fresh.fc2.codebook.shape == (3,)
    fresh.load_state_dict(state)
    fresh.eval()
    assert fresh.fc2.codebook.shape == (2,)
    # Loading refreshes the materialized weight at once, before any forward.
    assert torch.equal(fresh.fc1.weight, decode_model(source, "fc1"))
    x = inputs()
    assert torch.equal(fresh(x), source(x))
    assert np.isnan(shared_layers(fresh)["fc1"].inertia)
    for name, layer in shared_layers(source).items():
        np.testing.assert_array_equal(shared_layers(fresh)[name].codes, layer.codes)
        np.testing.assert_array_equal(shared_layers(fresh)[name].codebook, layer.codebook)


def test_deepcopy_after_a_training_forward_gives_an_independent_copy():
    model = tiny_net()
    share_weights_(model, SMALL)
    x = inputs()
    model(x).sum()  # the forward leaves a graph behind
    clone = copy.deepcopy(model)
    with torch.no_grad():
        clone.fc1.codebook.add_(1.0)
    model.eval()
    clone.eval()
    out = model(x)
    assert not torch.equal(clone(x), out)  # the clone's hook reads the clone's codebook
    assert torch.equal(model.fc1.weight, decode_model(model, "fc1"))
    assert torch.equal(clone.fc1.weight, decode_model(clone, "fc1"))


def decode_model(model, name):
    layer = shared_layers(model)[name]
    return torch.from_numpy(decode(layer.codebook, layer.codes))


def test_inference_and_batchnorm_recalibration(digits):
    model = tiny_net()
    share_weights_(model, SMALL)
    model.eval()
    x, _ = next(iter(digits.test.batches(4)))
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (4, 10) and not model.fc1.weight.requires_grad
    assert recalibrate_batchnorm(model, digits.train)
    assert model.bn.num_batches_tracked > 0


def test_finetune_shared_trains_centroids_and_keeps_codes(digits):
    model = tiny_net()
    keep = prune_by_hand(model.fc1, 0.5)
    conv_keep = prune_by_hand(model.conv, 0.5)  # pruned but left float
    share_weights_(model, WeightSharingConfig(conv_bits=3, fc_bits=2, exclude=["conv"]))
    codes = model.fc1.codes.clone()
    codebook = model.fc1.codebook.detach().clone()
    config = TrainConfig(epochs=1, batch_size=32, lr=1e-2, weight_decay=1e-3, seed=0)
    result = finetune_shared(model, digits, config, progress=False)
    assert "test_top1" in result.metrics
    assert torch.equal(model.fc1.codes, codes)
    assert not torch.equal(model.fc1.codebook.detach(), codebook)
    assert (model.fc1.weight[~keep] == 0).all()
    assert (model.conv.weight[~conv_keep] == 0).all()
    with pytest.raises(NetshrinkError, match="no weight-shared layer"):
        finetune_shared(tiny_net(), digits, config, progress=False)


def test_load_shared_rebuilds_a_shared_model():
    source = tiny_net(seed=0)
    prune_by_hand(source.fc1, 0.5)
    share_weights_(source, SMALL)
    source.eval()
    target = tiny_net(seed=0)  # same BatchNorm and biases, float weights
    target.eval()
    load_shared_(target, shared_layers(source))
    assert all(is_shared(target.get_submodule(n)) for n in ("conv", "fc1", "fc2"))
    x = inputs()
    assert torch.equal(target(x), source(x))
    load_shared_(target, {"fc2": shared_layers(source)["fc2"]})  # replaces a shared layer
    assert torch.equal(target(x), source(x))
    with pytest.raises(NetshrinkError, match="shape"):
        load_shared_(target, {"fc2": shared_layers(source)["fc1"]})
    with pytest.raises(NetshrinkError, match="no Conv2d/Linear layer 'fc9'"):
        load_shared_(target, {"fc9": shared_layers(source)["fc1"]})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bits": {"fc*": 0}}, r"bits\['fc\*'\] must be an integer in 1..16, got 0"),
        ({"bits": {"conv": 17}}, r"bits\['conv'\] .* got 17"),
        ({"bits": {"conv": 4.0}}, r"bits\['conv'\] .* got 4.0"),
        ({"conv_bits": True}, "conv_bits .* got True"),
        ({"fc_bits": 0}, "fc_bits .* got 0"),
        ({"init": "kmeans++"}, "init must be one of linear, density, random"),
        ({"max_iter": 0}, "max_iter"),
        ({"exclude": "conv"}, "exclude"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(NetshrinkError, match=message):
        WeightSharingConfig(**kwargs)


@pytest.mark.parametrize("config", [{"bits": {"fc9": 4}}, {"exclude": ["conv9"]}])
def test_pattern_matching_no_layer_is_an_error(config):
    model = tiny_net()
    with pytest.raises(NetshrinkError, match="9"):
        share_weights_(model, WeightSharingConfig(**config))
    assert not any(is_shared(m) for m in model.modules())  # nothing changed
