"""BWN and XNOR rows of the survey: 1-bit files, read back, run by the packed engine."""

import json

import pytest
import torch

from netshrink.binarize import is_binary
from netshrink.data import load_dataset
from netshrink.engine.packed import to_packed
from netshrink.nsz import compression_report, read_nsz, unpack
from netshrink.train import evaluate

BINARY = ("lenet5_bwn", "lenet5_xnor", "vgg_small_bwn", "vgg_small_xnor")


@pytest.fixture(scope="module")
def rows(quick_survey):
    return {r["key"]: r for r in quick_survey.results["rows"]}


@pytest.mark.parametrize("key", BINARY)
def test_binary_rows_are_their_files_on_the_packed_engine(quick_survey, rows, key):
    folder = quick_survey.out / "binary"
    path = folder / f"{key}.nsz"
    row, base = rows[key], rows[rows[key]["baseline"]]
    assert row["baseline"].endswith("_xnor_order") and base["size_bytes"] == 4 * base["params"]
    assert row["size_bytes"] == path.stat().st_size
    assert row["compression_ratio"] == pytest.approx(base["size_bytes"] / row["size_bytes"])
    # Binary layers are 1 bit per weight plus a float32 scale per filter (and framing).
    report = compression_report(read_nsz(path))
    binary_rows = [r for r in report.layers if r.encoding == "binary"]
    assert len(binary_rows) >= 2
    for layer in binary_rows:
        assert 1.0 < layer.bits_per_weight < 1.1
    record = json.loads((folder / f"{key}.json").read_text())
    mode = key.rsplit("_", 1)[1]
    assert record["binarize"]["mode"] == mode
    engines = set(record["engine"].values())
    assert engines == ({"packed"} if mode == "xnor" else {"float"})
    assert row["targets_speed"] == (mode == "xnor")

    # The row's accuracy is the file's model on the packed engine, recomputed here.
    model = unpack(path)
    assert [n for n, m in model.named_modules() if is_binary(m)] == record["binarize"]["layers"]
    packed, _ = to_packed(model, warn=False)
    config = quick_survey.results["config"]
    data = load_dataset(config["data"], input_size=(1, 28, 28), seed=config["seed"],
                        limit=config["image_limit"])  # fmt: skip
    assert evaluate(packed, data.test)["top1"] == pytest.approx(row["top1"])
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():  # fused stages: K summed in another order, signs and dots exact
        torch.testing.assert_close(packed(x), model(x), rtol=1e-5, atol=1e-5)
        assert torch.equal(to_packed(model, warn=False, fuse=False)[0](x), model(x))
