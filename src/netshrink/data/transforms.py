"""Pure tensor maths on uint8 image batches: resizing, channel conversion, statistics,
augmentation. Nothing here knows about files or specs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from netshrink.errors import NetshrinkError

__all__ = [
    "LUMA_WEIGHTS",
    "to_input_size",
    "cover_size",
    "fit_to_input_size",
    "channel_histograms",
    "mean_std_from_histograms",
    "channel_mean_std",
    "random_shifts",
    "translate",
    "random_translate",
]

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


def cover_size(height: int, width: int, out_h: int, out_w: int) -> tuple[int, int]:
    """The size an (H, W) image is scaled to, aspect kept, so that it just covers (H', W').

    The shorter side (relative to the target's) lands on the target; each side is at
    least the target's, so a centre crop of (H', W') always fits.
    """
    scale = max(out_h / height, out_w / width)
    return max(out_h, round(height * scale)), max(out_w, round(width * scale))


def fit_to_input_size(image: torch.Tensor, input_size: tuple[int, int, int]) -> torch.Tensor:
    """One uint8 (C, H, W) image to ``input_size`` = (C', H', W'): resize the shorter side,
    aspect kept (:func:`cover_size`), then centre crop; channels as :func:`to_input_size`.

    An image already (H', W') is only channel-converted, bit for bit as
    :func:`to_input_size` converts it, so both paths agree where no resize is needed.
    """
    out_chans, out_h, out_w = input_size
    resized_h, resized_w = cover_size(image.shape[1], image.shape[2], out_h, out_w)
    resized = to_input_size(image[None], (out_chans, resized_h, resized_w))[0]
    top, left = (resized_h - out_h) // 2, (resized_w - out_w) // 2
    return resized[:, top : top + out_h, left : left + out_w]


def channel_histograms(images: torch.Tensor) -> torch.Tensor:
    """int64 (C, 256): how many pixels of each channel of uint8 (N, C, H, W) have each level.

    Histograms of several batches add up, so statistics can be gathered batch by batch.
    """
    return torch.stack(
        [torch.bincount(images[:, c].reshape(-1), minlength=256) for c in range(images.shape[1])]
    )


def mean_std_from_histograms(
    counts: torch.Tensor,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std, in [0, 1] units, of (C, 256) level counts.

    Exact in float64; a constant channel gets std 1 so normalising never divides by zero.
    """
    if counts.sum() == 0:
        raise NetshrinkError("cannot compute normalisation statistics of an empty split")
    levels = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel_counts in counts.double():
        total = channel_counts.sum()
        mean = (channel_counts * levels).sum() / total
        var = (channel_counts * (levels - mean) ** 2).sum() / total
        means.append(float(mean))
        stds.append(float(var.sqrt()) if var > 1e-12 else 1.0)
    return tuple(means), tuple(stds)


def channel_mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 (N, C, H, W) images, in [0, 1] units.

    Exact (float64) from a 256-bin histogram per channel, so memory stays O(256) even
    for 50,000 CIFAR images. A constant channel gets std 1 so normalising never divides
    by zero.
    """
    if images.shape[0] == 0:
        raise NetshrinkError("cannot compute normalisation statistics of an empty split")
    return mean_std_from_histograms(channel_histograms(images))


def random_shifts(
    count: int, max_shift: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random crop offsets (top, left), each int64 in [0, 2 * max_shift]."""
    top = torch.randint(0, 2 * max_shift + 1, (count,), generator=generator)
    left = torch.randint(0, 2 * max_shift + 1, (count,), generator=generator)
    return top, left


def translate(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, max_shift: int
) -> torch.Tensor:
    """Pad (B, C, H, W) by ``max_shift`` zeros and crop each image at its (top, left).

    Vectorised as one gather; pixels shifted in from outside are 0 (black, the MNIST
    background).
    """
    b, c, h, w = images.shape
    s = max_shift
    padded = F.pad(images, (s, s, s, s))  # (B, C, H + 2s, W + 2s)
    rows = (top[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
    cols = (left[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b)[:, None, None, None]
    chans = torch.arange(c)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_translate(
    images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image of (B, C, H, W) by its own random (dy, dx) in [-max_shift, max_shift]:
    :func:`random_shifts` then :func:`translate`."""
    top, left = random_shifts(images.shape[0], max_shift, generator)
    return translate(images, top, left, max_shift)
