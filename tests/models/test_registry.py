"""Every registered model: declared counts vs measured, and a small training step."""

from __future__ import annotations

import pytest
import torch

from netshrink.errors import NetshrinkError
from netshrink.models import create, get_spec, list_models
from tests.models.conftest import meta_counts, meta_model

IMAGENET_FAMILIES = {"alexnet", "vgg", "squeezenet", "mobilenet", "shufflenet"}
EXPECTED_MODELS = {
    "lenet300_100",
    "lenet5",
    "mlp2x1200",
    "mlp2x800",
    "mlp2x30",
    "alexnet",
    "alexnet_caffe",
    "vgg16",
    "squeezenet1_0",
    "squeezenet1_1",
    "mobilenet_v1",
    "shufflenet_v1",
}
# Too small without small_input: the stem and pools take 28x28 below a window's size.
COLLAPSING_AT_28 = ["alexnet", "alexnet_caffe", "vgg16", "squeezenet1_0"]


def test_expected_models_registered() -> None:
    assert EXPECTED_MODELS <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_interface(name: str) -> None:
    spec = get_spec(name)
    defaults = spec.defaults
    assert "num_classes" in defaults and "in_chans" in defaults
    assert spec.supports_small_input == (spec.family in IMAGENET_FAMILIES)
    assert defaults["in_chans"] == spec.input_size[0]
    assert set(spec.published) == {"params", "macs"}


@pytest.mark.parametrize("name", list_models())
def test_declared_counts_match_measured(name: str) -> None:
    spec = get_spec(name)
    measured = meta_counts(name, spec.input_size)
    assert {"params": measured.params, "macs": measured.macs} == spec.published
    out = meta_model(name)(torch.zeros(2, *spec.input_size, device="meta"))
    assert out.shape == (2, spec.defaults["num_classes"])


@pytest.mark.parametrize("name", list_models())
def test_trains_on_mnist_shape(name: str) -> None:
    kwargs = {"num_classes": 10, "in_chans": 1}
    if get_spec(name).supports_small_input:
        kwargs["small_input"] = True
    torch.manual_seed(0)
    model = create(name, **kwargs).train()
    x, y = torch.randn(2, 1, 28, 28), torch.tensor([3, 7])
    logits = model(x)
    assert logits.shape == (2, 10)
    torch.nn.functional.cross_entropy(logits, y).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", COLLAPSING_AT_28)
def test_collapse_raises_clear_error(name: str) -> None:
    model = meta_model(name, num_classes=10, in_chans=1)
    with pytest.raises(ValueError, match=f"input 28x28 is too small for {name}.*small_input=True"):
        model(torch.zeros(1, 1, 28, 28, device="meta"))


def test_unknown_argument_is_a_user_error() -> None:
    with pytest.raises(NetshrinkError, match="width_mult"):
        create("squeezenet1_0", width_mult=0.5)
