"""The peers (PyTorch's own pruning and int8, fp16, zstd) against NumPy references."""

import numpy as np
import pytest
import torch
from torch import nn

from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers
from netshrink.models import create
from netshrink.peers import (
    fp16_storage,
    int8_dynamic,
    int8_static,
    saved_size,
    torch_prune,
    zstd_checkpoint,
)


@pytest.fixture(scope="module")
def lenet5():
    torch.manual_seed(0)
    return create("lenet5").eval()


def _inputs(n=16, seed=1):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _weights(model):
    return {n: m.weight.detach().numpy().copy() for n, m in compressible_layers(model).items()}


def test_torch_prune_keeps_the_globally_largest_weights(lenet5):
    before = _weights(lenet5)
    peer = torch_prune(lenet5, 0.8)
    after = _weights(peer.model)
    flat = np.concatenate([np.abs(w).ravel() for w in before.values()])
    k = int(round(0.8 * flat.size))  # the k smallest magnitudes go, across all layers
    threshold = np.sort(flat)[k - 1]
    for name, w in before.items():
        expected = np.where(np.abs(w) > threshold, w, 0.0)
        np.testing.assert_array_equal(after[name], expected, err_msg=name)
    assert sum(int((w == 0).sum()) for w in after.values()) == k
    # The reparametrisation is gone and the original is untouched.
    assert not any(n.endswith("_orig") for n, _ in peer.model.named_parameters())
    assert np.count_nonzero(_weights(lenet5)["fc1"]) == before["fc1"].size


def test_torch_prune_file_stays_dense(lenet5):
    peer = torch_prune(lenet5, 0.9)
    assert peer.size_bytes == saved_size(lenet5)
    assert "dense" in peer.notes


def test_torch_prune_retrains_with_the_masks_held(lenet5):
    seen = {}

    def retrain(model):
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(3):
            opt.zero_grad()
            model(_inputs()).square().mean().backward()
            opt.step()
        seen["trained"] = True

    peer = torch_prune(lenet5, 0.7, retrain)
    after = _weights(peer.model)
    zeros = sum(int((w == 0).sum()) for w in after.values())
    total = sum(w.size for w in after.values())
    assert seen == {"trained": True}
    assert zeros == int(round(0.7 * total))  # training moved no pruned weight off zero
    assert "retrained" in peer.notes


@pytest.mark.parametrize("sparsity", [-0.1, 1.0])
def test_torch_prune_refuses_a_bad_sparsity(lenet5, sparsity):
    with pytest.raises(NetshrinkError, match="sparsity"):
        torch_prune(lenet5, sparsity)


def test_int8_static_is_close_and_a_quarter_of_the_size(lenet5):
    x = _inputs(64)
    peer = int8_static(lenet5, [x[:32], x[32:]])
    ref = lenet5(x).detach().numpy().astype(np.float64)
    out = peer.model(x).detach().numpy().astype(np.float64)
    # int8 error: a few quantization steps of the output range, not more.
    assert np.abs(out - ref).max() < 0.05 * (ref.max() - ref.min())
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.9
    assert peer.size_bytes < 0.3 * saved_size(lenet5)
    assert "64 training images" in peer.notes


def test_int8_static_on_a_network_with_batchnorm():
    torch.manual_seed(0)
    model = create("mobilenet_v1", num_classes=10, in_chans=1, small_input=True).eval()
    x = torch.randn(8, 1, 28, 28)
    peer = int8_static(model, [x])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in peer.model.modules())  # folded
    assert peer.model(x).shape == (8, 10)


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            return self.fc(x)
        return -self.fc(x)


def test_int8_static_untraceable_is_one_line():
    with pytest.raises(NetshrinkError, match="torch.fx cannot trace Untraceable") as err:
        int8_static(Untraceable(), [torch.randn(2, 4)])
    assert "\n" not in str(err.value)


def test_int8_static_needs_calibration(lenet5):
    with pytest.raises(NetshrinkError, match="calibration"):
        int8_static(lenet5, [])


def test_int8_dynamic_quantizes_linear_only(lenet5):
    peer = int8_dynamic(lenet5)
    x = _inputs()
    ref = lenet5(x).detach().numpy()
    assert np.abs(peer.model(x).detach().numpy() - ref).max() < 0.05 * np.ptp(ref)
    assert isinstance(peer.model.conv1, nn.Conv2d)  # convolutions stay float
    assert peer.size_bytes < saved_size(lenet5) / 2  # LeNet-5's weights are mostly fc
    conv_only = nn.Sequential(nn.Conv2d(1, 2, 3))
    with pytest.raises(NetshrinkError, match="no Linear layer"):
        int8_dynamic(conv_only)


def test_fp16_rounds_every_weight_like_numpy(lenet5):
    peer = fp16_storage(lenet5)
    for name, w in _weights(lenet5).items():
        expected = w.astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(_weights(peer.model)[name], expected, err_msg=name)
    assert peer.model.conv1.weight.dtype == torch.float32
    assert abs(peer.size_bytes - saved_size(lenet5) / 2) < 0.02 * saved_size(lenet5)


def test_zstd_is_lossless_and_smaller(lenet5):
    peer = zstd_checkpoint(lenet5, level=3)
    x = _inputs()
    torch.testing.assert_close(peer.model(x), lenet5(x), rtol=0, atol=0)
    assert peer.size_bytes < saved_size(lenet5)


def test_torch_prune_names_a_layer_global_l1_empties():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    with torch.no_grad():
        model[2].weight.mul_(1e-3)  # the smallest weights all sit in the last layer
    peer = torch_prune(model, 0.9)
    assert int(peer.model[2].weight.count_nonzero()) == 0
    assert "Global L1 left no weight in 2." in peer.notes
