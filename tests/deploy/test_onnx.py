"""ONNX export: onnxruntime against PyTorch, BatchNorm folding, codebook layers, refusals."""

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import netshrink as ns
from netshrink.deploy import export_onnx, prepare_export
from netshrink.deploy.onnx import session_module
from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers
from netshrink.nsz import pack
from netshrink.prune import PruneConfig, prune_
from netshrink.quantize import WeightSharingConfig, share_weights_
from tests.cli.helpers import one_line_error, run


def settled(model, shape):
    """``model`` with BatchNorm statistics that are not the identity, in eval mode."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, *shape))
    return model.eval()


def compressed_lenet5():
    model = settled(ns.create("lenet5"), (1, 28, 28))
    prune_(model, PruneConfig(sparsity={"*": 0.7}))
    share_weights_(model, WeightSharingConfig(conv_bits=8, fc_bits=5))
    return model


def ort_outputs(path, x):
    return session_module(path.read_bytes())(x)


def test_dense_and_codebook_exports_agree_with_pytorch(tmp_path):
    model = compressed_lenet5()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        want = model(x)
    dense = export_onnx(model, (1, 28, 28), tmp_path / "dense.onnx")
    shared = export_onnx(model, (1, 28, 28), tmp_path / "shared.onnx", codebook=True)
    for report in (dense, shared):
        path = tmp_path / report.path.rpartition("/")[2]
        assert report.file_bytes == path.stat().st_size
        torch.testing.assert_close(ort_outputs(path, x), want, rtol=1e-3, atol=1e-4)
        assert report.max_abs_diff <= 1e-4 and report.samples == 8
    assert shared.codebook_layers == ["conv1", "conv2", "fc1", "fc2"]
    assert shared.file_bytes < dense.file_bytes / 3  # uint8 indices instead of fp32
    graph = onnx.load(tmp_path / "shared.onnx").graph
    assert sum(n.op_type == "Gather" for n in graph.node) == 4
    uint8 = [i for i in graph.initializer if i.data_type == onnx.TensorProto.UINT8]
    weights = sum(m.weight.numel() for m in compressible_layers(model).values())
    assert sum(int(np.prod(i.dims)) for i in uint8) == weights  # one byte per weight


def test_batch_norm_is_folded_and_the_folded_net_matches(tmp_path):
    model = settled(ns.create("mobilenet_v1", num_classes=10, in_chans=1, small_input=True,
                              width_mult=0.25), (1, 28, 28))  # fmt: skip
    bns = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    report = export_onnx(model, (1, 28, 28), tmp_path / "m.onnx")
    assert sorted(report.folded) == sorted(bns) and report.kept_batch_norms == []
    ops = {n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node}
    assert "BatchNormalization" not in ops
    shared = export_onnx(model, (1, 28, 28), tmp_path / "c.onnx", codebook=True)
    assert sorted(shared.folded) == sorted(bns)  # folded as a per-channel scale on the Gather


class Shortcut(nn.Module):
    """A conv whose output feeds a BatchNorm and a shortcut: not foldable."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        y = self.conv(x)
        return self.fc(torch.flatten(self.bn(y) + y, 1))


class Untraceable(Shortcut):
    def forward(self, x):
        if x.sum() > 1e9:  # control flow on a value: fx cannot trace it
            return x
        return self.fc(torch.flatten(self.bn(self.conv(x)), 1))


def test_batch_norms_that_cannot_be_folded_are_kept_and_said(tmp_path):
    report = export_onnx(settled(Shortcut(), (1, 8, 8)), (1, 8, 8), tmp_path / "s.onnx")
    assert report.kept_batch_norms == ["bn"] and "1 BatchNorm(s) kept" in report.notes[0]
    report = export_onnx(settled(Untraceable(), (1, 8, 8)), (1, 8, 8), tmp_path / "u.onnx")
    assert report.folded == [] and "does not trace" in report.notes[0]


class Noisy(nn.Module):
    def forward(self, x):
        return x.flatten(1) + torch.rand_like(x.flatten(1))  # differs on every run


class Unsupported(nn.Module):
    def forward(self, x):
        return torch.linalg.svd(x.flatten(2))[1]


def test_refusals_write_nothing(tmp_path):
    out = tmp_path / "m.onnx"
    with pytest.raises(NetshrinkError, match="differ from PyTorch's"):
        export_onnx(Noisy(), (1, 4, 4), out)
    assert not out.exists()
    with pytest.raises(NetshrinkError, match="ONNX export failed"):
        export_onnx(Unsupported(), (1, 4, 4), out)
    assert not out.exists()
    out.write_bytes(b"keep me")
    with pytest.raises(NetshrinkError, match="exists; pass --force"):
        export_onnx(ns.create("lenet5").eval(), (1, 28, 28), out)
    assert out.read_bytes() == b"keep me"
    export_onnx(ns.create("lenet5").eval(), (1, 28, 28), out, overwrite=True)
    assert out.read_bytes() != b"keep me"
    with pytest.raises(NetshrinkError, match="input size must be"):
        export_onnx(ns.create("lenet5").eval(), (28, 28), None)


def test_prepare_export_leaves_the_original_untouched():
    model = settled(ns.create("mobilenet_v1", num_classes=10, in_chans=1, small_input=True,
                              width_mult=0.25), (1, 28, 28))  # fmt: skip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net, folded, *_ = prepare_export(model, codebook=True)
    assert folded and net is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_cli_exports_an_nsz_checks_it_and_refuses_to_overwrite(capsys, tmp_path):
    nsz = tmp_path / "l5.nsz"
    pack(compressed_lenet5(), nsz, model_name="lenet5", input_size=(1, 28, 28))
    out = tmp_path / "l5.onnx"
    argv = ("export", nsz, "--format", "onnx", "--out", out, "--repeats", "3")
    code, text, err = run(capsys, *argv, "--codebook", "--json")
    assert code == 0, err
    result = json.loads(text)
    assert result["file_bytes"] == out.stat().st_size and len(result["codebook_layers"]) == 4
    assert result["onnxruntime_ms"] > 0 and result["pytorch_ms"] > 0
    code, _, err = run(capsys, *argv)
    one_line_error(code, err, "exists; pass --force")
    code, text, err = run(capsys, *argv, "--force")
    assert code == 0 and "onnxruntime agrees with PyTorch on 8 inputs" in text, err
    assert out.stat().st_size > 3 * result["file_bytes"]  # dense this time
    code, _, err = run(capsys, "export", tmp_path / "none.nsz", "--format", "onnx", "--out",
                       tmp_path / "n.onnx")  # fmt: skip
    assert code == 2 and not (tmp_path / "n.onnx").exists()


class SamePadConv(nn.Conv2d):
    """A convolution that pads itself first (as efficientnet-pytorch's do)."""

    def forward(self, x):
        return nn.functional.conv2d(
            nn.functional.pad(x, (1, 2, 1, 2)), self.weight, self.bias, self.stride
        )


def test_a_layer_with_its_own_forward_keeps_it_and_gathers_its_weight(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        SamePadConv(1, 16, 4), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 8 * 8, 10)
    ).eval()
    share_weights_(model, WeightSharingConfig(conv_bits=4, fc_bits=4))
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        want = model(x)
    dense = export_onnx(model, (1, 8, 8), tmp_path / "dense.onnx")
    shared = export_onnx(model, (1, 8, 8), tmp_path / "shared.onnx", codebook=True)
    assert sorted(shared.codebook_layers) == ["0", "3"]
    torch.testing.assert_close(ort_outputs(tmp_path / "shared.onnx", x), want, rtol=1e-3,
                               atol=1e-4)  # fmt: skip
    # Both weights as uint8 codes: the dense fp32 originals are not in the file.
    graph = onnx.load(tmp_path / "shared.onnx").graph
    floats = sum(
        int(np.prod(i.dims)) for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT
    )
    assert floats < 100  # biases and the two 16-entry codebooks
    assert shared.file_bytes < dense.file_bytes / 3
    assert isinstance(model[0], SamePadConv) and not hasattr(model[0], "parametrizations")
