"""What each rank of the spawned tests runs (importable: torch.multiprocessing pickles it)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch


def digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def compress_rank(rank: int, world: int, port: int, out: str) -> None:
    """A prune stage with retraining, then k-means weight sharing: every rank's masks,
    weights and codebooks, as digests, in ``out/rank{rank}.json``."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    from netshrink import distributed
    from netshrink.data import load_dataset
    from netshrink.models import create
    from netshrink.prune import masks
    from netshrink.quantize import WeightSharingConfig, finetune_shared, share_weights_
    from netshrink.runs.compress import compress
    from netshrink.runs.load import resolve_model
    from netshrink.runs.recipe import parse_recipe
    from netshrink.train import TrainConfig

    distributed.init_from_env()
    try:
        args, size = resolve_model("lenet300_100", (1, 8, 8), {})
        data = load_dataset("digits", input_size=size, seed=0, limit=600)
        torch.manual_seed(0)
        model = create("lenet300_100", num_classes=10, **args)
        recipe = parse_recipe({"stages": [{"prune": {
            "sparsity": {"fc1": 0.9, "fc2": 0.8, "fc3": 0.5},
            "rounds": 2, "retrain": {"epochs": 1, "batch_size": 32}}}]})  # fmt: skip
        compress(model, recipe, data, progress=False)
        record = {"masks": digest(masks(model)), "weights": digest(model.state_dict())}
        share_weights_(model, WeightSharingConfig(fc_bits=4))
        record["shared"] = digest(model.state_dict())
        finetune_shared(model, data, TrainConfig(epochs=1, batch_size=32), progress=False)
        record["finetuned"] = digest(model.state_dict())  # int16 codes, trained codebooks
        Path(out, f"rank{rank}.json").write_text(json.dumps(record))
    finally:
        distributed.shutdown()
