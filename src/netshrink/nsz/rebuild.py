"""Rebuild the model an ``.nsz`` file holds: its architecture, binary layers and weights.

:func:`skeleton` builds the registered architecture the header names, weightless, with the
file's binary layers; :func:`load_into` decodes the tensors into it (or into the caller's
own skeleton); :func:`unpack` does both from a path.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Collection

import torch
from torch import nn

from netshrink.binarize import rebinarize_
from netshrink.errors import NetshrinkError
from netshrink.nsz.codec import entry_shape
from netshrink.nsz.container import NszFormatError
from netshrink.nsz.file import NszFile, read_nsz

__all__ = ["MAX_MODEL_ELEMENTS", "load_into", "skeleton", "unpack"]

MAX_MODEL_ELEMENTS = 1 << 30  # a declared architecture larger than this is refused


def skeleton(nsz: NszFile) -> nn.Module:
    """The registered architecture ``nsz`` names, on the meta device, binarized as stored."""
    from netshrink.models import create  # models are only needed to rebuild by name

    if nsz.model_name is None:
        raise NetshrinkError(
            "the file names no registered architecture; pass the model skeleton "
            "(unpack(path, model=...))"
        )
    with torch.device("meta"), warnings.catch_warnings():  # allocate nothing until checked
        warnings.simplefilter("ignore")  # e.g. "zero-element tensors" for num_classes=0
        try:
            model = create(nsz.model_name, **nsz.model_args)
        except NetshrinkError as exc:
            raise NszFormatError(f"cannot rebuild the architecture: {exc}") from None
        except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
            raise NszFormatError(f"cannot rebuild {nsz.model_name!r}: {exc}") from None
    total = sum(t.numel() for t in model.state_dict().values())
    if total > MAX_MODEL_ELEMENTS:
        raise NszFormatError(
            f"the declared architecture has {total} values; limit {MAX_MODEL_ELEMENTS}"
        )
    return rebinarize_(model, nsz.binarize)


def load_into(nsz: NszFile, model: nn.Module, *, taken: Collection[str] = frozenset()) -> nn.Module:
    """Decode ``nsz`` into ``model`` (a skeleton of the same structure) and return it.

    A file with binary layers binarizes the same layers of ``model`` (in place) before
    loading the weights into them. ``taken`` names tensors the caller has already built
    into ``model`` its own way (an engine's layers): they are neither expected nor decoded.
    """
    expected = model.state_dict()
    entries = [entry for entry in nsz.entries if entry["name"] not in taken]
    names = [entry["name"] for entry in entries]
    missing = [k for k in expected if k not in set(names)]
    extra = [k for k in names if k not in expected]
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise NetshrinkError(f"the file's tensors do not fit the model: {detail}")
    for entry in entries:
        want = tuple(expected[entry["name"]].shape)
        if entry_shape(entry) != want:
            raise NetshrinkError(
                f"tensor {entry['name']!r} has shape {tuple(entry['shape'])} in the file, "
                f"{want} in the model"
            )
    state = {}
    for i, entry in enumerate(nsz.entries):
        if entry["name"] in taken:
            continue
        values = torch.from_numpy(nsz.tensor(i))
        state[entry["name"]] = values.to(expected[entry["name"]].dtype)
    rebinarize_(model, nsz.binarize)  # after decoding: a damaged file leaves the model untouched
    # A skeleton on the meta device takes the decoded tensors as they are (no copy).
    model.load_state_dict(state, assign=any(t.is_meta for t in expected.values()))
    return model.eval()


def unpack(path: str | os.PathLike[str], model: nn.Module | None = None) -> nn.Module:
    """Rebuild the model stored in an ``.nsz`` file, in eval mode.

    Without ``model`` the architecture is rebuilt from the registry name in the header;
    with ``model`` (a skeleton of the user's own architecture) its weights are replaced.
    """
    nsz = read_nsz(path)
    try:
        return load_into(nsz, model if model is not None else skeleton(nsz))
    except NszFormatError as exc:
        raise NszFormatError(f"{path}: {exc}") from None
