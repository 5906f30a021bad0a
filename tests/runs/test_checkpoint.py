"""Checkpoints: round trips, bad files, no unpickling of arbitrary objects."""

import pytest
import torch

from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

TINY = dict(epochs=2, batch_size=32, lr=1e-3, seed=3)


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    model = create("lenet5")
    ckpt = Checkpoint(
        "lenet5", {"num_classes": 10}, (1, 28, 28), model.state_dict(), "digits", {"test_top1": 0.5}
    )
    save_checkpoint(tmp_path / "m.pt", ckpt)
    back = load_checkpoint(tmp_path / "m.pt")
    assert back.model_name == "lenet5" and back.input_size == (1, 28, 28)
    rebuilt = back.build()
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(rebuilt(x), model.eval()(x))

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(NetshrinkError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(NetshrinkError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")

    # A checkpoint whose weights belong to another architecture.
    wrong = Checkpoint("lenet300_100", {}, (1, 28, 28), model.state_dict())
    save_checkpoint(tmp_path / "wrong.pt", wrong)
    with pytest.raises(NetshrinkError, match="do not fit model 'lenet300_100'"):
        load_checkpoint(tmp_path / "wrong.pt").build()


def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"format": "netshrink-checkpoint", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(NetshrinkError, match="pickles Python objects"):
        load_checkpoint(tmp_path / "evil.pt")
