"""Profiler counts against hand-computed numbers, fvcore and the papers; format round trips.

No timing assertions here: latency tests only check the structure of the statistics.
"""

import json
import warnings

import pytest
import torch
from torch import nn

from netshrink import models
from netshrink.profile import (
    LatencyStats,
    LayerProfile,
    ModelProfile,
    count_macs,
    count_params,
    measure_latency,
    profile,
    render_comparison,
    render_table,
    speedup,
    to_markdown,
)


def small_net() -> nn.Module:
    """conv -> BN -> ReLU -> grouped conv -> depthwise conv -> pool -> linear, on 3x8x8."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8x8x8
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=False),  # 16x4x4
        nn.Conv2d(16, 16, 3, padding=1, groups=16),  # depthwise, 16x4x4
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(16, 10),
    )


# By hand: MACs = C_out*H_out*W_out*(C_in/groups)*kH*kW; params = weights + biases (+ γ/β).
HAND = {
    # name: (output shape, params, MACs)
    "0": ((8, 8, 8), 8 * 3 * 3 * 3 + 8, 8 * 8 * 8 * 3 * 3 * 3),
    "1": ((8, 8, 8), 2 * 8, 0),
    "2": ((8, 8, 8), 0, 0),
    "3": ((16, 4, 4), 16 * 2 * 3 * 3, 16 * 4 * 4 * 2 * 3 * 3),
    "4": ((16, 4, 4), 16 * 3 * 3 + 16, 16 * 4 * 4 * 1 * 3 * 3),
    "5": ((16, 1, 1), 0, 0),
    "8": ((10,), 16 * 10 + 10, 16 * 10),
}


def test_small_net_rows_match_hand_counts() -> None:
    p = profile(small_net(), (3, 8, 8))
    got = {layer.name: (layer.output_shape, layer.params, layer.macs) for layer in p.layers}
    assert got == HAND  # Flatten and Dropout are plumbing: no rows
    assert p.macs == 13824 + 4608 + 2304 + 160
    assert p.params == 224 + 16 + 288 + 160 + 170
    assert p.weight_bytes == 4 * p.params
    for layer in p.layers:
        assert layer.weight_bytes == 4 * layer.params
        assert layer.activation_bytes == 4 * torch.Size(layer.output_shape).numel()


def test_convenience_counts() -> None:
    assert count_macs(small_net(), (3, 8, 8)) == 13824 + 4608 + 2304 + 160
    # BN running mean/var/num_batches_tracked are buffers, not parameters.
    assert count_params(nn.BatchNorm2d(8)) == 16
    assert count_params(nn.Linear(300, 100)) == 300 * 100 + 100


def test_linear_on_tokens_and_conv_transpose() -> None:
    # Linear over a (tokens, features) input: one in*out per token.
    assert count_macs(nn.Linear(6, 4), (5, 6)) == 5 * 6 * 4
    # Transposed conv: each input element meets a kernel window per output channel of its group.
    deconv = nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2)
    assert count_macs(deconv, (4, 5, 5)) == 4 * 5 * 5 * (6 // 2) * 3 * 3


class Shared(nn.Module):
    """One Linear applied twice: MACs count both calls, its parameters count once."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.head = nn.Linear(8, 2)
        self.head.weight = nn.Parameter(self.fc.weight[:2].detach().clone())
        self.tied = nn.Linear(8, 2, bias=False)
        self.tied.weight = self.head.weight  # a parameter shared by two modules

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(self.fc(x.flatten(1)))
        return self.head(x) + self.tied(x)


def test_shared_module_and_parameter() -> None:
    model = Shared()
    p = profile(model, (2, 2, 2))
    assert p.params == 8 * 8 + 8 + 2 * 8 + 2  # the tied weight once
    assert p.params == sum(layer.params for layer in p.layers)
    assert p.macs == 2 * 8 * 8 + 2 * 8 * 2


def test_model_is_left_unchanged() -> None:
    model = small_net().train()
    model[1].eval()  # a frozen BN inside a training model must stay as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_state = torch.get_rng_state()
    profile(model, (3, 8, 8))
    assert model.training and not model[1].training and model[0].training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats not updated
    assert torch.equal(rng_state, torch.get_rng_state())


def test_json_round_trip_and_renderers() -> None:
    p = profile(small_net(), (3, 8, 8), name="small", latency=True, threads=1, repeats=3, warmup=1)
    data = json.loads(json.dumps(p.to_dict()))
    for key in ("model", "input", "params", "macs", "weight_bytes", "layers", "latency"):
        assert key in data
    assert data["input"] == [3, 8, 8]
    assert set(data["layers"][0]) >= {"name", "type", "output_shape", "params", "macs"}
    assert ModelProfile.from_dict(data) == p

    table = render_table(p)
    for layer in p.layers:
        assert layer.name in table
    assert "total" in table and "13,824" in table

    markdown = to_markdown(p).splitlines()
    assert markdown[0].startswith("| layer | type |")
    assert set(markdown[1]) <= set("|-:")
    comparison = to_markdown([p, p]).splitlines()
    assert comparison[0].startswith("| model |") and len(comparison) == 4
    assert render_comparison([p]).count("small") == 1


def test_speedup_from_profiles() -> None:
    def made_up(macs: int, median_ms: float) -> ModelProfile:
        stats = LatencyStats(median_ms, median_ms, median_ms, 1, 1, 1)
        row = LayerProfile("fc", "Linear", (1,), 0, macs, 0, 4)
        return ModelProfile("m", (1, 1, 1), [row], 0, macs, 0, 4, {1: stats})

    result = speedup(made_up(400, 10.0), made_up(100, 4.0))
    assert result == {"theoretical": 4.0, "measured": 2.5}
    assert speedup(made_up(400, 10.0), made_up(100, 4.0), batch_size=8)["measured"] is None


def test_measure_latency_structure_and_threads_restored() -> None:
    threads = torch.get_num_threads()
    stats = measure_latency(small_net(), (3, 8, 8), batch_size=2, threads=1, repeats=7, warmup=2)
    assert torch.get_num_threads() == threads
    assert stats.repeats == 7 and stats.batch_size == 2 and stats.threads == 1
    assert 0 < stats.p10_ms <= stats.median_ms <= stats.p90_ms


def test_stall_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with pytest.warns(UserWarning, match="OMP_WAIT_POLICY"):
        measure_latency(small_net(), (3, 8, 8), threads=2, repeats=1, warmup=0)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        measure_latency(small_net(), (3, 8, 8), threads=2, repeats=1, warmup=0)
        measure_latency(small_net(), (3, 8, 8), threads=1, repeats=1, warmup=0)


def test_per_layer_latency_and_batch_sizes() -> None:
    p = profile(
        small_net(),
        (3, 8, 8),
        latency=True,
        batch_sizes=(1, 2),
        threads=1,
        repeats=3,
        warmup=1,
        per_layer_latency=True,
    )
    assert sorted(p.latency) == [1, 2]
    assert all(layer.latency_ms is not None and layer.latency_ms >= 0 for layer in p.layers)
    assert "ms" in render_table(p).splitlines()[0]


# --- Registered models: against fvcore (independent tracer) and the papers ---------------

# fvcore's operator names for multiply-accumulate work; it also counts batch_norm,
# adaptive_avg_pool2d, upsample..., which papers.md's convention does not.
FVCORE_MAC_OPS = ("conv", "linear", "addmm", "matmul", "bmm", "einsum")

VARIANTS = [(name, {}) for name in models.list_models()] + [
    ("mobilenet_v1", {"width_mult": 0.5}),
    ("shufflenet_v1", {"groups": 8, "scale": 0.5}),
]


def _variant_id(name: str, kwargs: dict) -> str:
    return name + "".join(f",{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize(
    ("name", "kwargs"), [pytest.param(n, kw, id=_variant_id(n, kw)) for n, kw in VARIANTS]
)
def test_macs_match_fvcore(name: str, kwargs: dict) -> None:
    fvcore_nn = pytest.importorskip("fvcore.nn")
    spec = models.get_spec(name)
    if not set(kwargs) <= set(spec.defaults):
        pytest.skip(f"{name} takes no {sorted(kwargs)}")
    model = models.create(name, **kwargs).eval()
    p = profile(model, spec.input_size)
    x = torch.randn(1, *spec.input_size)
    analysis = fvcore_nn.FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    assert p.macs == sum(by_op.get(op, 0) for op in FVCORE_MAC_OPS)
    assert p.params == sum(t.numel() for t in model.parameters())
    assert p.params == sum(layer.params for layer in p.layers)


@pytest.mark.parametrize(
    ("name", "params", "macs"),
    [("lenet300_100", 266_610, 266_200), ("lenet5", 431_080, 2_293_000)],
)
def test_lenet_totals_match_papers(name: str, params: int, macs: int) -> None:
    p = profile(models.create(name), (1, 28, 28))
    assert (p.params, p.macs) == (params, macs)


def test_measure_side_by_side_groups_models_by_input_size() -> None:
    from netshrink.profile import measure_side_by_side

    small = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    wide = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten())
    stats = measure_side_by_side(
        {"a": (small, (1, 8, 8)), "b": (wide, (3, 16, 16)), "c": (small, (1, 8, 8))},
        batch_size=2,
        threads=1,
        repeats=3,
        warmup=1,
    )
    assert set(stats) == {"a", "b", "c"}
    for s in stats.values():
        assert s.repeats == 3 and s.batch_size == 2 and s.threads == 1
        assert 0 < s.p10_ms <= s.median_ms <= s.p90_ms
