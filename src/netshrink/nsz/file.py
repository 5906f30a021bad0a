"""``pack`` a model into an ``.nsz`` file and parse it back (docs/format.md).

What is stored per tensor of the model's ``state_dict``:

- a weight-shared layer (:func:`netshrink.quantize.share_weights_`) as ``shared``: its
  codebook and symbols, sparse with a relative index or dense, Huffman-coded where smaller;
- a binary layer (:func:`netshrink.binarize.binarize_`) as ``binary``: one sign bit per
  weight and one scale per output filter; the header's ``binarize`` records the layers;
- a pruned float weight (zeros present) as ``sparse`` when that is smaller than ``raw``;
- everything else (biases, BatchNorm parameters and statistics) as ``raw`` fp32 (fp16 when
  asked; integer buffers as int64).

Unpacking decodes into a plain float model whose weights are exactly the shared model's
materialized weights, so its outputs equal the quantized model's outputs bit for bit.
Binary layers are binarized again and take the weights ``±α``; they recompute
``α = mean|±α|``, which may differ from the stored ``α`` by a rounding error, so their
outputs equal the packed model's to float32 precision rather than bit for bit.
Reading never executes code: the header is JSON and the sections are typed arrays.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from netshrink.atomic import atomic_write_bytes
from netshrink.binarize import BinarizeConfig, binary_layers, is_binary
from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers, is_conv, match_patterns
from netshrink.nsz.codec import (
    ENCODING_VERSIONS,
    EncodedTensor,
    StoredNonzeros,
    decode_nonzeros,
    decode_tensor,
    encode_binary,
    encode_raw,
    encode_shared,
    encode_sparse,
    section_tags,
    validate_entry,
)
from netshrink.nsz.container import NszFormatError, read_container, shown, write_container
from netshrink.quantize import shared_layers

__all__ = ["EncodingConfig", "NszFile", "binarize_header", "pack", "parse_nsz", "read_nsz"]

FORMAT_NAME = "netshrink-nsz"
BINARIZE_VERSION = 2  # the format version that introduced the header's "binarize"
BINARIZE_KEYS = ("mode", "layers", "input_scale", "clip")  # of each "binarize" object
MAX_NAME = 1024  # characters of a tensor name (a state_dict key), so every message is short
MAX_INPUT_VALUES = 1 << 24  # C * H * W of the header's input_size (the engines time on it)


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
        if not isinstance(self.index_bits, dict):
            kind = type(self.index_bits).__name__
            raise NetshrinkError(f"encode: index_bits must be a mapping of patterns, got {kind}")
        for pattern in self.index_bits:
            if not isinstance(pattern, str) or not pattern:
                raise NetshrinkError(
                    f"encode: index_bits pattern must be a string, got {pattern!r}"
                )
        checks = {"conv_index_bits": self.conv_index_bits, "fc_index_bits": self.fc_index_bits}
        checks.update({f"index_bits[{k!r}]": v for k, v in self.index_bits.items()})
        for key, value in checks.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 16:
                raise NetshrinkError(f"encode: {key} must be an integer in 1..16, got {value!r}")
        for key in ("huffman", "float16"):
            if not isinstance(getattr(self, key), bool):
                raise NetshrinkError(
                    f"encode: {key} must be true or false, got {getattr(self, key)!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "index_bits": dict(self.index_bits),
            "conv_index_bits": self.conv_index_bits,
            "fc_index_bits": self.fc_index_bits,
            "huffman": self.huffman,
            "float16": self.float16,
        }


def encode_model(model: nn.Module, config: EncodingConfig) -> list[EncodedTensor]:
    """Encode every tensor of ``model.state_dict()`` (shared layers as one ``.weight``,
    binary layers' weights as signs and scales)."""
    layers = compressible_layers(model)
    names = list(layers)
    index_bits = match_patterns(names, config.index_bits, what="index_bits")
    for name, layer in layers.items():
        index_bits.setdefault(
            name, config.conv_index_bits if is_conv(layer) else config.fc_index_bits
        )
    shared = shared_layers(model)
    binary = binary_layers(model)
    both = sorted(set(shared) & set(binary))
    if both:
        raise NetshrinkError(f"encode: layer {both[0]!r} is both binary and weight-shared")
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
        if leaf == "weight" and prefix in binary:
            signs = binary[prefix]
            encoded.append(encode_binary(key, signs.negative, signs.scales))
            continue
        values = tensor.detach().cpu().numpy()
        if leaf == "weight" and prefix in layers and not np.all(values):
            encoded.append(encode_sparse(key, values, index_bits[prefix], coding))
        else:
            encoded.append(encode_raw(key, values, storage))
    return encoded


def binarize_header(model: nn.Module) -> dict[str, Any] | list[dict[str, Any]] | None:
    """The header's ``binarize``: the resolved :class:`BinarizeConfig` of the binary layers.

    One object ``{"mode", "layers", "input_scale", "clip"}`` when every binary layer was
    binarized alike; a list of such objects (disjoint layers, in model order) when modes,
    input scales or clips differ; ``None`` when the model has no binary layer.
    """
    groups: dict[tuple[str, bool, float], list[str]] = {}
    for name, module in model.named_modules():
        if is_binary(module):
            key = (module.mode, bool(module.input_scale), float(module.clip))
            groups.setdefault(key, []).append(name)
    found = [
        {"mode": mode, "layers": names, "input_scale": input_scale, "clip": clip}
        for (mode, input_scale, clip), names in groups.items()
    ]
    if not found:
        return None
    return found[0] if len(found) == 1 else found


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
    model alone; without them, unpacking needs a skeleton model of the same structure
    (``input_size`` is then recorded alone, for the engines and ``netshrink eval``).
    ``metadata`` is any JSON-serialisable dict (recipe, metrics...) kept in the header.
    """
    config = config or EncodingConfig()
    try:
        encoded = encode_model(model, config)
    except ValueError as exc:  # e.g. NaN binary scales after a diverged training run
        raise NetshrinkError(f"cannot write .nsz: {exc}") from None
    binarize = binarize_header(model)
    header: dict[str, Any] = {
        "format": FORMAT_NAME,
        "model": None
        if model_name is None and input_size is None
        else {
            "name": model_name,  # None: the reader brings the skeleton
            "args": dict(model_args or {}),
            "input_size": list(input_size) if input_size else None,
        },
        "encoding": config.to_dict(),
        "tensors": [item.entry for item in encoded],
        "metadata": metadata or {},
    }
    try:  # what a reader refuses is never written
        _check_model(header["model"])
    except NszFormatError as exc:
        raise NetshrinkError(f"cannot write .nsz: {exc}") from None
    if binarize is not None:  # absent otherwise: such a file stays version 1
        header["binarize"] = binarize
    sections = [section for item in encoded for section in item.sections]
    try:
        data = write_container(header, sections, 1 if binarize is None else BINARIZE_VERSION)
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
    binarize: list[BinarizeConfig] = field(default_factory=list)  # the header's, validated

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

    def nonzeros(self, index: int) -> StoredNonzeros | None:
        """Tensor ``index``'s stored nonzeros (``shared``/``sparse``), not made dense."""
        return decode_nonzeros(self.entries[index], self.payloads[index])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            entry["name"]: torch.from_numpy(self.tensor(i)) for i, entry in enumerate(self.entries)
        }


def parse_nsz(data: bytes) -> NszFile:
    """Parse ``.nsz`` bytes (see :func:`read_nsz`)."""
    version, header, sections = read_container(data)
    if header.get("format") != FORMAT_NAME:
        raise NszFormatError(f"header format is {shown(header.get('format'))}, not {FORMAT_NAME!r}")
    _check_model(header.get("model"))
    if not isinstance(header.get("metadata", {}), dict | None):
        raise NszFormatError("header 'metadata' must be an object")
    entries = header.get("tensors")
    if not isinstance(entries, list):
        raise NszFormatError("header has no 'tensors' list")
    payloads: list[list[memoryview]] = []
    seen: set[str] = set()
    cursor = 0
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise NszFormatError("a tensor entry has no name")
        if not 0 < len(entry["name"]) <= MAX_NAME:
            raise NszFormatError(
                f"a tensor name of {len(entry['name'])} characters (1..{MAX_NAME})"
            )
        if entry["name"] in seen:
            raise NszFormatError(f"tensor {entry['name']!r} appears twice")
        seen.add(entry["name"])
        validate_entry(entry)
        if ENCODING_VERSIONS[entry["encoding"]] > version:
            raise NszFormatError(
                f"tensor {entry['name']!r}: encoding {entry['encoding']!r} needs format version "
                f"{ENCODING_VERSIONS[entry['encoding']]}; the file is version {version}"
            )
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
    binarize = _parse_binarize(header.get("binarize"), version, entries)
    return NszFile(version, header, entries, payloads, len(data), binarize)


def _check_model(model: Any) -> None:
    """The header's ``model``: null, or a name (null or a string), its arguments (an object)
    and the input size (null or ``[C, H, W]``, positive, at most ``MAX_INPUT_VALUES``)."""
    if model is None:
        return
    if not (
        isinstance(model, dict)
        and isinstance(model.get("name"), str | None)
        and isinstance(model.get("args", {}), dict)
    ):
        raise NszFormatError("header 'model' must name an architecture and its arguments")
    size = model.get("input_size")
    if size is not None and not (
        isinstance(size, list)
        and len(size) == 3
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size)
        and math.prod(size) <= MAX_INPUT_VALUES
    ):
        raise NszFormatError(
            f"header 'model' input_size must be [C, H, W], positive, at most "
            f"{MAX_INPUT_VALUES} values; got {shown(size)}"
        )


def _parse_binarize(
    value: Any, version: int, entries: list[dict[str, Any]]
) -> list[BinarizeConfig]:
    """The header's ``binarize`` as configs, checked against the ``binary`` tensors: a layer
    is listed exactly when its weight is stored binary (anything else is a wrong model)."""
    configs: list[BinarizeConfig] = []
    if value is not None:
        if version < BINARIZE_VERSION:
            raise NszFormatError(
                f"header key 'binarize' needs format version {BINARIZE_VERSION}; "
                f"the file is version {version}"
            )
        groups = [value] if isinstance(value, dict) else value
        if not isinstance(groups, list) or not groups:
            raise NszFormatError("header 'binarize' must be an object or a non-empty list")
        configs = [_binarize_group(group) for group in groups]
    listed = [name for config in configs for name in config.layers]
    if len(set(listed)) != len(listed):
        raise NszFormatError("header 'binarize' lists a layer twice")
    binary = []
    for entry in entries:
        if entry["encoding"] == "binary":
            name = entry["name"].removesuffix(".weight")
            if name == entry["name"] or name not in listed:
                raise NszFormatError(
                    f"tensor {entry['name']!r} is binary but header 'binarize' does not list "
                    f"its layer {shown(name)}"
                )
            binary.append(name)
    for name in listed:
        if name not in binary:
            raise NszFormatError(
                f"header 'binarize' lists layer {shown(name)}, whose weight is not stored binary"
            )
    return configs


def _binarize_group(group: Any) -> BinarizeConfig:
    if not isinstance(group, dict) or sorted(group) != sorted(BINARIZE_KEYS):
        raise NszFormatError(
            f"header 'binarize' entries must have exactly the keys {', '.join(BINARIZE_KEYS)}"
        )
    layers = group["layers"]
    if not (isinstance(layers, list) and layers and all(isinstance(n, str) for n in layers)):
        raise NszFormatError("header 'binarize' layers must be a non-empty list of names")
    mode, clip = group["mode"], group["clip"]  # typed first: the config's messages repr them
    if not (isinstance(mode, str) and isinstance(clip, int | float) and not isinstance(clip, bool)):
        raise NszFormatError(
            f"header 'binarize' mode {shown(mode)} or clip {shown(clip)}: not a string, a number"
        )
    try:
        return BinarizeConfig.from_dict({**group, "keep_first_last": False})
    except NetshrinkError as exc:
        raise NszFormatError(f"header 'binarize': {str(exc).removeprefix('binarize: ')}") from None


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
