"""The onnxruntime peer engine: the exported network against PyTorch's outputs."""

from __future__ import annotations

import pytest
import torch

from netshrink.engine import get_engine, to_onnxruntime
from netshrink.models import create
from tests.engine.test_fused import _with_statistics
from tests.engine.test_sparse import _args


@pytest.mark.parametrize("name", ["lenet5", "shufflenet_v1", "mobilenet_v1"])
def test_onnxruntime_matches_pytorch_and_reuses_its_session(name):
    torch.manual_seed(0)
    model = _with_statistics(create(name, **_args(name)))
    engine, notes = to_onnxruntime(model)
    assert notes and all(n.engine == "onnxruntime" for n in notes)
    for batch in (1, 4):
        x = torch.randn(batch, 1, 28, 28)
        with torch.no_grad():
            want = model(x)
        got = engine(x)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * max(want.abs().max(), 1))
    assert len(engine._sessions) == 1  # a new batch size runs on the same session
    assert get_engine("ort") is get_engine("onnxruntime")
