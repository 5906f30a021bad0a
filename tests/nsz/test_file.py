import json

import numpy as np
import pytest
import torch
from torch import nn

from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.nsz import (
    EncodingConfig,
    NszFormatError,
    compression_report,
    pack,
    parse_nsz,
    read_nsz,
    render_report,
    unpack,
)
from netshrink.prune import PruneConfig, prune_
from netshrink.quantize import WeightSharingConfig, share_weights_, shared_layers

LENET5_ARGS = {"num_classes": 10, "in_chans": 1}


def compressed_lenet5(bits=None) -> nn.Module:
    torch.manual_seed(0)
    model = create("lenet5", **LENET5_ARGS)
    prune_(model, PruneConfig(sparsity={"conv1": 0.34, "conv2": 0.88, "fc1": 0.92, "fc2": 0.81}))
    share_weights_(model, WeightSharingConfig(**(bits or {})))
    return model.eval()


class UserNet(nn.Module):
    """A user's own architecture: conv + BatchNorm + linear, not in the registry."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


def test_unpacked_model_outputs_equal_the_quantized_models_exactly(tmp_path):
    model = compressed_lenet5()
    x = torch.randn(8, 1, 28, 28)
    path = tmp_path / "lenet5.nsz"
    data = pack(model, path, model_name="lenet5", model_args=LENET5_ARGS, input_size=(1, 28, 28))
    assert path.read_bytes() == data
    restored = unpack(path)
    assert torch.equal(restored(x), model(x))
    # Every weight decodes to exactly its centroid (float32 equality, not closeness).
    for name, layer in shared_layers(model).items():
        table = np.concatenate([[0], layer.codebook]).astype(np.float32)
        expect = table[layer.codes.astype(np.int64)]
        got = restored.get_submodule(name).weight.detach().numpy()
        assert np.array_equal(got, expect)


@pytest.mark.parametrize("huffman", [True, False])
@pytest.mark.parametrize("float16", [False, True])
def test_user_architecture_round_trips_with_a_skeleton(tmp_path, huffman, float16):
    torch.manual_seed(1)
    model = UserNet()
    model.bn.running_mean.uniform_(-1, 1)
    prune_(model, PruneConfig(sparsity={"conv": 0.5}))  # head: pruned but not shared
    prune_(model, PruneConfig(sparsity={"head": 0.7}))
    share_weights_(model, WeightSharingConfig(exclude=["head"], conv_bits=4))
    model.eval()
    path = tmp_path / "user.nsz"
    pack(model, path, EncodingConfig(huffman=huffman, float16=float16))
    with pytest.raises(NetshrinkError, match="names no registered architecture"):
        unpack(path)
    restored = unpack(path, model=UserNet())
    x = torch.randn(4, 3, 4, 4)
    if float16:  # raw tensors lose precision, the shared and sparse weights do not
        assert torch.allclose(restored(x), model(x), atol=1e-2)
        assert torch.equal(restored.head.weight, model.head.weight)
    else:
        assert torch.equal(restored(x), model(x))
        assert torch.equal(restored.bn.running_mean, model.bn.running_mean)
    entries = {e["name"]: e for e in read_nsz(path).entries}
    assert entries["conv.weight"]["encoding"] == "shared"
    assert entries["head.weight"]["encoding"] == "sparse"
    assert entries["bn.num_batches_tracked"]["storage"] == "int64"


def test_a_skeleton_of_another_shape_is_refused(tmp_path):
    path = tmp_path / "m.nsz"
    pack(compressed_lenet5(), path)
    with pytest.raises(NetshrinkError, match="do not fit|shape"):
        unpack(path, model=create("lenet300_100", num_classes=10))
    with pytest.raises(NetshrinkError, match="shape"):
        unpack(path, model=create("lenet5", num_classes=7, in_chans=1))


def test_report_counts_match_the_model_and_the_file():
    model = compressed_lenet5()
    data = pack(model, None, model_name="lenet5", model_args=LENET5_ARGS)
    report = compression_report(parse_nsz(data))
    assert report.file_bytes == len(data)
    dense = sum(4 * t.numel() for t in create("lenet5", **LENET5_ARGS).state_dict().values())
    assert report.dense_bytes == dense
    rows = {r.name: r for r in report.layers}
    assert list(rows) == ["conv1", "conv2", "fc1", "fc2"]
    for name, layer in shared_layers(model).items():
        assert rows[name].density == pytest.approx(np.count_nonzero(layer.codes) / layer.codes.size)
        assert rows[name].weight_bits == layer.bits
    # Bytes of the rows plus other tensors and header add up to the file.
    assert sum(r.bytes for r in report.layers) + report.other_bytes + report.header_bytes == len(
        data
    )
    summary = report.to_dict()
    assert summary["ratio"] == pytest.approx(summary["dense_bytes"] / summary["file_bytes"])
    json.dumps(summary)
    assert "fc1" in render_report(report)


def test_dense_layout_is_chosen_for_an_unpruned_shared_layer():
    torch.manual_seed(0)
    model = create("lenet5", **LENET5_ARGS)
    share_weights_(model, WeightSharingConfig(conv_bits=4, fc_bits=4))
    entries = {e["name"]: e for e in parse_nsz(pack(model, None)).entries}
    assert entries["fc1.weight"]["layout"] == "dense"


def test_huffman_brings_streams_close_to_their_entropy():
    model = compressed_lenet5()
    nsz = parse_nsz(pack(model, None))
    from netshrink.nsz.streams import decode_stream, stream_info
    from netshrink.primitives.huffman import entropy_bits

    for entry, payloads in zip(nsz.entries, nsz.payloads, strict=True):
        if entry["encoding"] != "shared":
            continue
        for payload in payloads[1:]:
            info = stream_info(payload)
            if info.coding != "huffman":
                continue
            bound = entropy_bits(np.bincount(decode_stream(payload)))
            assert bound <= info.n_bits <= bound + info.count  # Huffman's guarantee


def test_newer_version_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "m.nsz"
    data = bytearray(pack(compressed_lenet5(), path))
    data[8] = 9
    path.write_bytes(bytes(data))
    with pytest.raises(NszFormatError, match="version 9 is newer"):
        read_nsz(path)
    path.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(NszFormatError, match="magic"):
        read_nsz(path)
    with pytest.raises(NetshrinkError, match="does not exist"):
        read_nsz(tmp_path / "missing.nsz")


def test_pack_writes_atomically(tmp_path, monkeypatch):
    path = tmp_path / "m.nsz"
    path.write_bytes(b"old")
    import netshrink.atomic as atomic

    def interrupted_rename(*args, **kwargs):  # the file is fully written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupted_rename)
    with pytest.raises(KeyboardInterrupt):
        pack(compressed_lenet5(), path)
    assert path.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [path]
