"""Every method on networks netshrink did not write: hand-written odd modules
(tests.external.nets) and EfficientNet-B0 from the efficientnet-pytorch package."""

import warnings

import pytest
import torch
from torch import nn

import netshrink as ns
from netshrink.binarize import BinarizeConfig, binarize_
from netshrink.engine import load_auto, load_sparse, prepare
from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers, foreign_forward, tied_layers
from netshrink.models import create, trust_external
from netshrink.nsz import pack, unpack
from netshrink.prune import PruneConfig, prune_
from netshrink.quantize import WeightSharingConfig, share_weights_
from tests.external.nets import odd_net

EFFICIENTNET = "efficientnet_pytorch:EfficientNet.from_name"
FVCORE_MAC_OPS = ("conv", "linear", "addmm", "matmul", "bmm", "einsum")


def efficientnet():
    pytest.importorskip("efficientnet_pytorch")
    trust_external(EFFICIENTNET)
    return create(
        EFFICIENTNET, model_name="efficientnet-b0", in_channels=1, num_classes=10, image_size=28
    )


BUILDERS = {"odd_net": odd_net, "efficientnet_b0": efficientnet}


def compressed(build, tmp_path, seed=0):
    """``build()`` pruned to 60% and weight-shared, its outputs on a probe, and its .nsz."""
    torch.manual_seed(seed)
    model = build().eval()
    prune_(model, PruneConfig(sparsity={"*": 0.6}))
    share_weights_(model, WeightSharingConfig(conv_bits=6, fc_bits=5))
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        want = model(x)
    path = tmp_path / "model.nsz"
    pack(model, path, input_size=(1, 28, 28))
    return model, x, want, path


@pytest.mark.parametrize("name", BUILDERS)
def test_macs_and_params_match_fvcore(name):
    fvcore_nn = pytest.importorskip("fvcore.nn")
    model = BUILDERS[name]().eval()
    p = ns.profile(model, (1, 28, 28))
    analysis = fvcore_nn.FlopCountAnalysis(model, torch.randn(1, 1, 28, 28))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    assert p.macs == sum(by_op.get(op, 0) for op in FVCORE_MAC_OPS)
    assert p.params == sum(t.numel() for t in model.parameters())  # a tied tensor once


@pytest.mark.parametrize("name", BUILDERS)
def test_prune_quantize_pack_unpack_restores_the_model_exactly(name, tmp_path):
    model, x, want, path = compressed(BUILDERS[name], tmp_path)
    torch.manual_seed(1)  # a skeleton with other weights: every value comes from the file
    restored = unpack(path, model=BUILDERS[name]()).eval()
    with torch.no_grad():
        assert torch.equal(restored(x), want)
    assert restored.state_dict().keys() == BUILDERS[name]().state_dict().keys()


def test_tied_weights_stay_tied_and_float():
    model = odd_net()
    assert tied_layers(model) == {"fc1": "fc2.weight", "fc2": "fc1.weight"}
    assert "fc1" not in compressible_layers(model) and "head" in compressible_layers(model)
    prune_(model, PruneConfig(sparsity={"*": 0.9}))
    assert model.fc1.weight is model.fc2.weight
    assert (model.fc1.weight != 0).all()  # left dense: pruning one copy would untie them
    with pytest.raises(NetshrinkError, match="matches no Conv2d/Linear"):
        prune_(model, PruneConfig(sparsity={"fc1": 0.5}))


def test_a_module_registered_twice_is_one_layer_not_tied():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), conv)
    assert tied_layers(model) == {} and list(compressible_layers(model)) == ["0"]


@pytest.mark.parametrize("name", BUILDERS)
def test_engines_run_external_networks_and_leave_what_they_cannot_run_float(name, tmp_path):
    model, x, want, path = compressed(BUILDERS[name], tmp_path)
    dense = unpack(path, model=BUILDERS[name]()).eval()
    runs = {
        "sparse": load_sparse(path, model=BUILDERS[name](), warn=False),
        "auto": load_auto(path, model=BUILDERS[name](), warn=False),
        "fused": prepare(dense, "fused", warn=False),
    }
    for engine, (net, notes) in runs.items():
        with torch.no_grad():
            torch.testing.assert_close(net(x), want, rtol=1e-4, atol=1e-5, msg=engine)
        reasons = " ".join(n.reason for n in notes if n.engine == "float")
        if name == "efficientnet_b0" and engine != "fused":
            assert "Conv2dStaticSamePadding has a forward of its own" in reasons
        if name == "odd_net" and engine != "fused":
            assert "padding_mode='reflect'" in reasons


def test_foreign_forward_names_subclasses_with_their_own_forward():
    class Padded(nn.Conv2d):
        def forward(self, x):
            return super().forward(nn.functional.pad(x, (1, 1, 1, 1)))

    class Plain(nn.Conv2d):
        pass

    assert foreign_forward(Padded(1, 1, 3)) == "Padded"
    assert foreign_forward(Plain(1, 1, 3)) == "" and foreign_forward(nn.Linear(2, 2)) == ""


def test_binarize_leaves_layers_with_their_own_forward_real_valued():
    class Padded(nn.Conv2d):
        def forward(self, x):
            return super().forward(nn.functional.pad(x, (1, 1, 1, 1)))

    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), Padded(4, 4, 3), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.LazyLinear(3)
    )
    model(torch.zeros(1, 1, 12, 12))
    with pytest.warns(UserWarning, match=r"1 layer\(s\) with a forward of their own.*1 \(Padded\)"):
        config = binarize_(model, BinarizeConfig(mode="xnor"))
    assert config.layers == ["2"] and type(model[1]) is Padded
    with pytest.raises(NetshrinkError, match="'0' \\(Padded\\) has a forward of its own"):
        binarize_(nn.Sequential(Padded(1, 1, 3)), BinarizeConfig(mode="bwn", layers=["0"]))


def test_efficientnet_cannot_be_binarized_and_says_why():
    with pytest.raises(NetshrinkError, match=r"all 80 chosen .*\(Conv2dStaticSamePadding\)"):
        binarize_(efficientnet(), BinarizeConfig(mode="xnor"))


def test_odd_net_binarizes_and_trains_a_step():
    model = odd_net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped silently or otherwise
        config = binarize_(model, BinarizeConfig(mode="xnor"))
    assert config.layers == ["grouped", "block.0.0.body.0.0"]
    loss = model(torch.randn(4, 1, 28, 28)).logsumexp(1).mean()
    loss.backward()
    assert model.grouped.weight.grad is not None


@pytest.fixture(scope="module")
def digits28():
    return ns.load_dataset("digits", input_size=(1, 28, 28), seed=0, limit=400)


def test_sensitivity_agp_dsd_and_distill_run_on_an_external_network(digits28):
    from netshrink.distill import DistillConfig, distill
    from netshrink.prune import DSDConfig, GradualPruner, dsd_train, sensitivity_scan
    from netshrink.prune.magnitude import layer_density

    quick = ns.TrainConfig(epochs=1, batch_size=64, lr=0.01)
    torch.manual_seed(0)
    model = odd_net()
    scan = sensitivity_scan(
        model, lambda m: ns.evaluate(m, digits28.val)["top1"], sparsities=[0.0, 0.5]
    )
    assert set(scan.accuracy) == {"stem", "grouped", "block.0.0.body.0.0", "head"}  # no tied
    pruner = GradualPruner(model, PruneConfig(sparsity={"*": 0.5}), 0, 4, 2)
    ns.train(model, digits28, quick, after_step=pruner, progress=False)
    density = layer_density(model)
    assert all(abs(d - 0.5) < 0.01 for d in density.values()) and "fc1" not in density
    dsd = dsd_train(
        odd_net(), digits28, DSDConfig(dense_epochs=1, sparse_epochs=1, redense_epochs=1),
        quick, progress=False,
    )  # fmt: skip
    sparse = {k: v for k, v in dsd.sparse_density.items() if v < 1.0}
    assert sparse and all(abs(v - 0.7) < 0.02 for v in sparse.values())
    student = odd_net(width=4)
    result = distill(student, [model.eval()], digits28, quick, DistillConfig(), progress=False)
    assert 0.0 <= result.metrics["test_top1"] <= 1.0 and model.fc1.weight is model.fc2.weight


def test_layers_the_methods_do_not_know_are_left_alone_not_crashed_on(tmp_path):
    from tests.external.nets import UnknownLayers

    fvcore_nn = pytest.importorskip("fvcore.nn")
    torch.manual_seed(0)
    model = UnknownLayers().eval()
    x = torch.randn(3, 1, 8, 8)
    p = ns.profile(model, (1, 8, 8))
    analysis = fvcore_nn.FlopCountAnalysis(model, x[:1])
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    assert p.macs == by_op["conv"] + by_op["linear"]  # ConvTranspose2d and Conv1d counted
    assert list(compressible_layers(model)) == ["c1", "fc"]
    prune_(model, PruneConfig(sparsity={"*": 0.5}))
    share_weights_(model, WeightSharingConfig(conv_bits=4, fc_bits=4))
    with torch.no_grad():
        want = model(x)
    pack(model, tmp_path / "u.nsz", input_size=(1, 8, 8))
    restored = unpack(tmp_path / "u.nsz", model=UnknownLayers()).eval()
    with torch.no_grad():
        assert torch.equal(restored(x), want)
        net, notes = load_auto(tmp_path / "u.nsz", model=UnknownLayers(), warn=False)
        torch.testing.assert_close(net(x), want, rtol=1e-4, atol=1e-5)
    report = ns.export_onnx(restored, (1, 8, 8), None)
    assert report.max_abs_diff <= 1e-4
    config = binarize_(UnknownLayers(), BinarizeConfig(mode="xnor", keep_first_last=False))
    assert config.layers == ["c1", "fc"]
