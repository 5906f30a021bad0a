"""Pure tensor maths on uint8 image batches: resizing, channel conversion, statistics,
augmentation. Nothing here knows about files or specs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from netshrink.errors import NetshrinkError

__all__ = ["LUMA_WEIGHTS", "to_input_size", "channel_mean_std", "random_translate"]

# ITU-R BT.601 luma, the weights PIL's convert("L") uses.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def to_input_size(
    images: torch.Tensor, input_size: tuple[int, int, int], *, chunk_size: int = 1024
) -> torch.Tensor:
    """Resize and convert uint8 (N, C, H, W) images to ``input_size`` = (C', H', W').

    Resizing is bilinear with antialiasing (matches PIL's BILINEAR within one grey level),
    then rounded back to uint8. Channels: 3 -> 1 by BT.601 luma, 1 -> 3 by repeating.
    Works in chunks so a float copy of the whole set never exists.
    """
    n, in_chans, in_h, in_w = images.shape
    out_chans, out_h, out_w = input_size
    if in_chans not in (1, 3) or out_chans not in (1, 3):
        raise NetshrinkError(
            f"cannot convert {in_chans}-channel images to {out_chans} channels (supported: 1 and 3)"
        )
    if (in_chans, in_h, in_w) == tuple(input_size):
        return images
    to_gray = in_chans == 3 and out_chans == 1
    resize = (in_h, in_w) != (out_h, out_w)
    converted = images
    if to_gray or resize:
        # Gray first (fewer planes to resize); a 1 -> 3 repeat waits until after resizing.
        work_chans = 1 if to_gray else in_chans
        converted = torch.empty((n, work_chans, out_h, out_w), dtype=torch.uint8)
        for start in range(0, n, chunk_size):
            x = images[start : start + chunk_size].float()
            if to_gray:
                weights = torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
                x = (x * weights).sum(dim=1, keepdim=True)
            if resize:
                x = F.interpolate(
                    x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=True
                )
            converted[start : start + chunk_size] = x.round_().clamp_(0, 255).to(torch.uint8)
    if converted.shape[1] != out_chans:
        converted = converted.repeat(1, out_chans, 1, 1)
    return converted


def channel_mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 (N, C, H, W) images, in [0, 1] units.

    Exact (float64) from a 256-bin histogram per channel, so memory stays O(256) even
    for 50,000 CIFAR images. A constant channel gets std 1 so normalising never divides
    by zero.
    """
    if images.shape[0] == 0:
        raise NetshrinkError("cannot compute normalisation statistics of an empty split")
    levels = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        total = counts.sum()
        mean = (counts * levels).sum() / total
        var = (counts * (levels - mean) ** 2).sum() / total
        means.append(float(mean))
        stds.append(float(var.sqrt()) if var > 1e-12 else 1.0)
    return tuple(means), tuple(stds)


def random_translate(
    images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image of (B, C, H, W) by its own random (dy, dx) in [-max_shift, max_shift].

    Pad with zeros and crop at a random offset, vectorised as one gather; pixels shifted in
    from outside are 0 (black, the MNIST background).
    """
    b, c, h, w = images.shape
    s = max_shift
    padded = F.pad(images, (s, s, s, s))  # (B, C, H + 2s, W + 2s)
    top = torch.randint(0, 2 * s + 1, (b,), generator=generator)
    left = torch.randint(0, 2 * s + 1, (b,), generator=generator)
    rows = (top[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
    cols = (left[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b)[:, None, None, None]
    chans = torch.arange(c)[None, :, None, None]
    return padded[batch, chans, rows, cols]
