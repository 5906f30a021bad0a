"""``ImageSplit.batches(shard=(rank, world))`` against the unsharded batches it slices."""

from __future__ import annotations

import pytest
import torch

from netshrink.data import ImageSplit
from netshrink.errors import NetshrinkError


def _split(n: int = 23) -> ImageSplit:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 6, 6), dtype=torch.uint8, generator=g)
    return ImageSplit(images, torch.arange(n) % 3, (0.5,), (0.25,))


@pytest.mark.parametrize("world", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("augment", [False, True])
def test_the_shards_of_each_batch_are_the_batch(world, augment):
    split, batch = _split(), 7

    def batches(shard):
        g = torch.Generator().manual_seed(3)
        return list(split.batches(batch, shuffle=True, generator=g, augment=augment,
                                  with_index=True, shard=shard))  # fmt: skip

    whole = batches(None)
    shards = [batches((rank, world)) for rank in range(world)]
    assert all(len(s) == len(whole) for s in shards)  # every rank steps as often
    for step, (x, y, index) in enumerate(whole):
        parts = [s[step] for s in shards]
        sizes = [len(p[1]) for p in parts]
        assert max(sizes) - min(sizes) <= 1  # contiguous, near-equal slices
        assert torch.equal(torch.cat([p[0] for p in parts]), x)
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
        assert torch.equal(torch.cat([p[2] for p in parts]), index)


def test_a_bad_shard_is_one_line():
    with pytest.raises(NetshrinkError, match="rank, world"):
        next(_split().batches(4, shard=(2, 2)))
