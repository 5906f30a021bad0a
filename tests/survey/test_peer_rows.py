"""The peers' rows (PyTorch's pruning and int8, fp16, zstd) and the onnxruntime column."""

import io
import re

import pytest
import torch
import zstandard

from netshrink.layer_patterns import compressible_layers
from netshrink.nsz import unpack
from netshrink.survey.peers import PEER_ROWS, peer_summary
from netshrink.survey.report import runtime_summary
from netshrink.survey.survey import SurveyRow

PEERS = (
    "lenet5_torch_prune",
    "lenet5_int8_static",
    "lenet5_int8_dynamic",
    "lenet5_fp16",
    "lenet5_zstd",
    "squeezenet1_0_int8_static",
)


@pytest.fixture(scope="module")
def rows(quick_survey):
    return {r["key"]: r for r in quick_survey.results["rows"]}


def test_every_peer_row_is_beside_its_deep_compression_row(rows):
    for key in PEERS:
        row = rows[key]
        assert row["baseline"] == rows[PEER_ROWS[key]]["baseline"], key
        assert row["approach"] == "weights" and row["notes"], key
        assert 0 < row["top1"] <= 1, key


def test_peer_sizes_against_the_fp32_state_dict(rows):
    fp32 = rows["lenet5"]["size_bytes"]  # the baseline's fp32 parameter bytes
    # torch.save adds a little framing: the dense pruned state dict is the fp32 size.
    assert rows["lenet5_torch_prune"]["size_bytes"] == pytest.approx(fp32, rel=0.01)
    assert rows["lenet5_fp16"]["size_bytes"] == pytest.approx(fp32 / 2, rel=0.02)
    assert rows["lenet5_int8_static"]["size_bytes"] == pytest.approx(fp32 / 4, rel=0.05)
    assert rows["lenet5_zstd"]["size_bytes"] < fp32
    # Deep Compression's file is smaller than every peer's (39x in the paper).
    dc = rows["lenet5_dc"]["size_bytes"]
    assert all(rows[k]["size_bytes"] > dc for k in PEERS if k.startswith("lenet5")), dc


def test_lossless_peers_keep_the_baselines_accuracy(rows):
    assert rows["lenet5_zstd"]["top1"] == rows["lenet5"]["top1"]
    assert abs(rows["lenet5_fp16"]["top1"] - rows["lenet5"]["top1"]) <= 1 / 240  # one image


def test_torch_prune_has_the_sparsity_of_deep_compression(quick_survey, rows):
    dc = unpack(quick_survey.out / "deep_compression" / "lenet5_dc.nsz")
    layers = compressible_layers(dc).values()
    sparsity = sum(int((m.weight == 0).sum()) for m in layers) / sum(
        m.weight.numel() for m in layers
    )
    match = re.search(r"at ([\d.]+)% sparsity", rows["lenet5_torch_prune"]["notes"])
    assert match and float(match.group(1)) == pytest.approx(100 * sparsity, abs=0.05)
    assert "retrained" in rows["lenet5_torch_prune"]["notes"]


def test_zstd_row_is_the_checkpoint_through_zstd(rows):
    # Independent: zstd of a torch.save'd fp32 state dict is smaller than it, never larger.
    raw = io.BytesIO()
    torch.save({"w": torch.randn(1000)}, raw)
    assert len(zstandard.ZstdCompressor(level=19).compress(raw.getvalue())) < len(raw.getvalue())
    assert "zstd level 19" in rows["lenet5_zstd"]["notes"]


def test_onnxruntime_column(rows, quick_survey):
    batch_sizes = [str(b) for b in quick_survey.results["config"]["batch_sizes"]]
    for key in ("lenet5", "lenet5_dc", "lenet5_fp16", "mobilenet_v1_1.0", "squeezenet1_0_dc"):
        assert sorted(rows[key]["onnx_latency_ms"]) == sorted(batch_sizes), key
        assert all(v > 0 for v in rows[key]["onnx_latency_ms"].values()), key
    for key in ("lenet5_int8_static", "lenet5_xnor"):
        if key in rows:
            assert rows[key]["onnx_latency_ms"] == {}, key
            assert rows[key]["onnx_note"].startswith("not exported"), key
    assert "ORT ms b1" in quick_survey.html and 'id="runtimes"' in quick_survey.html


def test_the_report_says_where_netshrink_wins_and_loses(quick_survey):
    html = quick_survey.html
    assert 'id="peers"' in html
    assert html.count("LeNet-5 Deep Compression (P+Q+H) against") == 5
    assert "netshrink wins on" in html or "netshrink loses on" in html


def _row(key, method, size, top1, lat, onnx=None):
    return SurveyRow(key, method, "weights", True, "base", 1, 1, size, 1.0, top1,
                     {1: lat}, 1.0, 1.0, onnx_latency_ms=onnx or {})  # fmt: skip


def test_peer_summary_counts_wins_and_losses():
    dc = _row("lenet5_dc", "DC", 100, 0.90, 1.0)
    rows = [
        dc,
        _row("lenet5_int8_static", "int8", 400, 0.92, 0.5),  # DC smaller, less accurate, slower
        _row("lenet5_fp16", "fp16", 50, 0.80, 2.0),  # DC larger, more accurate, faster
    ]
    int8, fp16 = peer_summary(rows)
    assert "4.0x smaller" in int8 and "2.0 points less accurate" in int8
    assert "2.00x slower" in int8 and "wins on size, loses on accuracy and speed" in int8
    assert "2.0x larger" in fp16 and "10.0 points more accurate" in fp16
    assert "2.00x faster" in fp16 and "wins on accuracy and speed, loses on size" in fp16


def test_runtime_summary_medians():
    rows = [_row(f"r{i}", "m", 1, 0.5, lat, {1: 1.0}) for i, lat in enumerate((0.5, 2.0, 3.0))]
    (line,) = runtime_summary(rows)
    assert "faster than the row's own runtime on 2 of 3" in line and "2.00x" in line


def test_peer_summary_compares_the_first_seeds_networks():
    # The DC row's mean (0.94) is below the peer, but both start from seed 0's network,
    # on which DC scores 0.98: a mean of other seeds' networks is not compared with it.
    dc = _row("lenet5_dc", "DC", 100, 0.94, 1.0)
    dc.top1_seeds = [0.98, 0.92, 0.92]
    (line,) = peer_summary([dc, _row("lenet5_fp16", "fp16", 200, 0.97, 1.0)])
    assert "1.0 points more accurate" in line
