"""``pack`` a model into an ``.nsz`` file and ``unpack`` it back (docs/format.md).

What is stored per tensor of the model's ``state_dict``:

- a weight-shared layer (:func:`netshrink.quantize.share_weights_`) as ``shared``: its
  codebook and symbols, sparse with a relative index or dense, Huffman-coded where smaller;
- a pruned float weight (zeros present) as ``sparse`` when that is smaller than ``raw``;
- everything else (biases, BatchNorm parameters and statistics) as ``raw`` fp32 (fp16 when
  asked; integer buffers as int64).

Unpacking decodes into a plain float model whose weights are exactly the shared model's
materialized weights, so its outputs equal the quantized model's outputs bit for bit.
Reading never executes code: the header is JSON and the sections are typed arrays.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from netshrink._atomic import atomic_write_bytes
from netshrink.errors import NetshrinkError
from netshrink.layers import compressible_layers, is_conv, match_patterns
from netshrink.nsz.codec import (
    EncodedTensor,
    decode_tensor,
    encode_raw,
    encode_shared,
    encode_sparse,
    entry_shape,
    section_tags,
    validate_entry,
)
from netshrink.nsz.container import NszFormatError, read_container, write_container
from netshrink.quantize import shared_layers

__all__ = ["EncodingConfig", "NszFile", "pack", "read_nsz", "unpack"]

FORMAT_NAME = "netshrink-nsz"
MAX_MODEL_ELEMENTS = 1 << 30  # a declared architecture larger than this is refused


@dataclass
class EncodingConfig:
    """How :func:`pack` encodes layers (Deep Compression §2 and §4).

    ``index_bits`` maps layer-name patterns to relative-index bits (first match wins);
    unmatched conv layers use ``conv_index_bits`` and fully connected ones
    ``fc_index_bits`` (the paper: 8 and 5). ``huffman`` codes each stream with canonical
    Huffman where that is smaller; ``float16`` stores the tensors kept raw as fp16.
    """

    index_bits: dict[str, int] = field(default_factory=dict)
    conv_index_bits: int = 8
    fc_index_bits: int = 5
    huffman: bool = True
    float16: bool = False

    def __post_init__(self) -> None:
        checks = {"conv_index_bits": self.conv_index_bits, "fc_index_bits": self.fc_index_bits}
        checks.update({f"index_bits[{k!r}]": v for k, v in self.index_bits.items()})
        for key, value in checks.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 16:
                raise NetshrinkError(f"encode: {key} must be an integer in 1..16, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "index_bits": dict(self.index_bits),
            "conv_index_bits": self.conv_index_bits,
            "fc_index_bits": self.fc_index_bits,
            "huffman": self.huffman,
            "float16": self.float16,
        }


def encode_model(model: nn.Module, config: EncodingConfig) -> list[EncodedTensor]:
    """Encode every tensor of ``model.state_dict()`` (shared layers as one ``.weight``)."""
    layers = compressible_layers(model)
    names = list(layers)
    index_bits = match_patterns(names, config.index_bits, what="index_bits")
    for name, layer in layers.items():
        index_bits.setdefault(
            name, config.conv_index_bits if is_conv(layer) else config.fc_index_bits
        )
    shared = shared_layers(model)
    coding = "auto" if config.huffman else "fixed"
    storage = "float16" if config.float16 else "float32"
    state = model.state_dict()
    encoded: list[EncodedTensor] = []
    for key, tensor in state.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix in shared and leaf in ("codebook", "codes"):
            if leaf == "codebook":
                layer = shared[prefix]
                encoded.append(
                    encode_shared(
                        f"{prefix}.weight",
                        layer.codes,
                        layer.codebook,
                        layer.bits,
                        index_bits[prefix],
                        coding,
                    )
                )
            continue
        values = tensor.detach().cpu().numpy()
        if leaf == "weight" and prefix in layers and not np.all(values):
            encoded.append(encode_sparse(key, values, index_bits[prefix], coding))
        else:
            encoded.append(encode_raw(key, values, storage))
    return encoded


def pack(
    model: nn.Module,
    path: str | os.PathLike[str] | None,
    config: EncodingConfig | None = None,
    *,
    model_name: str | None = None,
    model_args: dict[str, Any] | None = None,
    input_size: tuple[int, int, int] | None = None,
    metadata: dict[str, Any] | None = None,
) -> bytes:
    """Write ``model`` as an ``.nsz`` file at ``path`` (atomically) and return its bytes.

    ``model_name``/``model_args`` (a registered architecture) let :func:`unpack` rebuild the
    model alone; without them, unpacking needs a skeleton model of the same structure.
    ``metadata`` is any JSON-serialisable dict (recipe, metrics...) kept in the header.
    """
    config = config or EncodingConfig()
    encoded = encode_model(model, config)
    header: dict[str, Any] = {
        "format": FORMAT_NAME,
        "model": None
        if model_name is None
        else {
            "name": model_name,
            "args": dict(model_args or {}),
            "input_size": list(input_size) if input_size else None,
        },
        "encoding": config.to_dict(),
        "tensors": [item.entry for item in encoded],
        "metadata": metadata or {},
    }
    sections = [section for item in encoded for section in item.sections]
    try:
        data = write_container(header, sections)
    except (TypeError, ValueError) as exc:
        raise NetshrinkError(f"cannot write .nsz: {exc}") from None
    if path is not None:
        atomic_write_bytes(path, data)
    return data


@dataclass
class NszFile:
    """A parsed ``.nsz``: header fields and each tensor's entry and section payloads.

    Parsing validates structure, checksums and declared sizes; tensors are decoded lazily
    by :meth:`tensor` / :meth:`state_dict`.
    """

    version: int
    header: dict[str, Any]
    entries: list[dict[str, Any]]
    payloads: list[list[memoryview]]
    file_bytes: int

    @property
    def model_name(self) -> str | None:
        model = self.header.get("model")
        return model.get("name") if isinstance(model, dict) else None

    @property
    def model_args(self) -> dict[str, Any]:
        model = self.header.get("model")
        return dict(model.get("args") or {}) if isinstance(model, dict) else {}

    @property
    def input_size(self) -> tuple[int, ...] | None:
        model = self.header.get("model")
        size = model.get("input_size") if isinstance(model, dict) else None
        return tuple(size) if size else None

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.header.get("metadata") or {})

    def tensor(self, index: int) -> np.ndarray:
        return decode_tensor(self.entries[index], self.payloads[index])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            entry["name"]: torch.from_numpy(self.tensor(i)) for i, entry in enumerate(self.entries)
        }


def parse_nsz(data: bytes) -> NszFile:
    """Parse ``.nsz`` bytes (see :func:`read_nsz`)."""
    version, header, sections = read_container(data)
    if header.get("format") != FORMAT_NAME:
        raise NszFormatError(f"header format is {header.get('format')!r}, not {FORMAT_NAME!r}")
    model = header.get("model")
    if model is not None and not (
        isinstance(model, dict)
        and isinstance(model.get("name"), str)
        and isinstance(model.get("args", {}), dict)
        and (model.get("input_size") is None or isinstance(model.get("input_size"), list))
    ):
        raise NszFormatError("header 'model' must name an architecture and its arguments")
    entries = header.get("tensors")
    if not isinstance(entries, list):
        raise NszFormatError("header has no 'tensors' list")
    payloads: list[list[memoryview]] = []
    seen: set[str] = set()
    cursor = 0
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise NszFormatError("a tensor entry has no name")
        if entry["name"] in seen:
            raise NszFormatError(f"tensor {entry['name']!r} appears twice")
        seen.add(entry["name"])
        validate_entry(entry)
        tags = section_tags(entry)
        owned = sections[cursor : cursor + len(tags)]
        if tuple(tag for tag, _ in owned) != tags:
            raise NszFormatError(
                f"tensor {entry['name']!r} expects sections {[t.decode() for t in tags]}, "
                f"found {[t.decode() for t, _ in owned]}"
            )
        payloads.append([payload for _, payload in owned])
        cursor += len(tags)
    if cursor != len(sections):
        raise NszFormatError(f"{len(sections) - cursor} data sections belong to no tensor")
    return NszFile(version, header, entries, payloads, len(data))


def read_nsz(path: str | os.PathLike[str]) -> NszFile:
    """Read and validate an ``.nsz`` file; errors are one line naming the file and the fault."""
    path = Path(path)
    if not path.is_file():
        raise NetshrinkError(f"{path} does not exist")
    try:
        data = path.read_bytes()
        return parse_nsz(data)
    except NszFormatError as exc:
        raise NszFormatError(f"{path}: {exc}") from None
    except OSError as exc:
        raise NetshrinkError(f"cannot read {path}: {exc.strerror}") from None


def _skeleton(nsz: NszFile) -> nn.Module:
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
    return model


def load_into(nsz: NszFile, model: nn.Module) -> nn.Module:
    """Decode ``nsz`` into ``model`` (a skeleton of the same structure) and return it."""
    expected = model.state_dict()
    names = [entry["name"] for entry in nsz.entries]
    missing = [k for k in expected if k not in set(names)]
    extra = [k for k in names if k not in expected]
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise NetshrinkError(f"the file's tensors do not fit the model: {detail}")
    for entry in nsz.entries:
        want = tuple(expected[entry["name"]].shape)
        if entry_shape(entry) != want:
            raise NetshrinkError(
                f"tensor {entry['name']!r} has shape {tuple(entry['shape'])} in the file, "
                f"{want} in the model"
            )
    state = {}
    for i, entry in enumerate(nsz.entries):
        values = torch.from_numpy(nsz.tensor(i))
        state[entry["name"]] = values.to(expected[entry["name"]].dtype)
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
        return load_into(nsz, model if model is not None else _skeleton(nsz))
    except NszFormatError as exc:
        raise NszFormatError(f"{path}: {exc}") from None
