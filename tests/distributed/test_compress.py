"""Under two processes, pruning masks and k-means codebooks are the same on every rank."""

from __future__ import annotations

import json

import torch.multiprocessing as mp

from tests.distributed.helpers import closed_port
from tests.distributed.workers import compress_rank


def test_masks_and_codebooks_are_identical_across_ranks(tmp_path, monkeypatch):
    monkeypatch.setenv("NETSHRINK_DIST_TIMEOUT", "30")
    mp.spawn(compress_rank, args=(2, closed_port(), str(tmp_path)), nprocs=2, join=True)
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert records[0] == records[1]
