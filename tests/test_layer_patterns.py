import pytest
from torch import nn

from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers, match_patterns
from netshrink.models import create


def test_compressible_layers_finds_conv_and_linear_by_name():
    model = create("lenet5", num_classes=10, in_chans=1)
    assert list(compressible_layers(model)) == ["conv1", "conv2", "fc1", "fc2"]
    bare = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    assert list(compressible_layers(bare)) == ["0", "3"]


def test_first_matching_pattern_wins_and_unmatched_layers_are_left_out():
    names = ["conv1", "conv2", "fc1", "fc2"]
    got = match_patterns(names, {"conv1": 0.0, "conv*": 0.5, "fc1": 0.9})
    assert got == {"conv1": 0.0, "conv2": 0.5, "fc1": 0.9}


def test_pattern_matching_nothing_is_an_error_naming_it():
    with pytest.raises(NetshrinkError, match="'fc9'"):
        match_patterns(["conv1", "fc1"], {"fc9": 0.5}, what="sparsity")
