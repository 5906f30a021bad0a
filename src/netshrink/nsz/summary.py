"""Per-layer compression table of an ``.nsz`` file, like Deep Compression's Tables 2-5.

Computed from the header and the streams' own headers, without decoding any data. "P+Q" is
pruning plus quantization with fixed-width symbols and indices; "P+Q+H" is what the file
actually holds after Huffman coding. Bit widths are per stored entry (fillers included);
``bits_per_weight`` is the layer's stored bits (section framing included) over its weights,
so ``32 / bits_per_weight`` is its compression against fp32: about 1 bit and 30x for a
``binary`` layer (one sign bit per weight plus a float32 scale per filter).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from netshrink.nsz.codec import RAW_DTYPES, entry_shape
from netshrink.nsz.file import NszFile
from netshrink.nsz.streams import stream_info

__all__ = ["CompressionReport", "LayerRow", "compression_report", "render_report"]

SECTION_OVERHEAD = 16  # tag, length and checksum of each section


@dataclass
class LayerRow:
    name: str
    encoding: str  # shared-sparse, shared-dense, sparse, binary, raw
    weights: int
    density: float  # nonzero fraction
    entries: int  # stored entries, fillers included (0 for raw)
    weight_bits: float  # per stored entry, P+Q (fixed width)
    weight_bits_huffman: float  # per stored entry, as stored
    index_bits: float
    index_bits_huffman: float
    codebook: int  # codebook size (shared) else 0
    dense_bytes: int  # fp32
    bytes_pq: int
    bytes: int  # as stored, section framing included
    bits_per_weight: float  # 8 * bytes / weights: as stored, section framing included

    @property
    def ratio_pq(self) -> float:
        return self.dense_bytes / max(self.bytes_pq, 1)

    @property
    def ratio(self) -> float:
        return self.dense_bytes / max(self.bytes, 1)


@dataclass
class CompressionReport:
    layers: list[LayerRow]
    other_dense_bytes: int  # tensors that are not layer weights (biases, BatchNorm, ...)
    other_bytes: int
    header_bytes: int  # preamble, header section and END
    file_bytes: int
    model: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def dense_bytes(self) -> int:
        return sum(r.dense_bytes for r in self.layers) + self.other_dense_bytes

    @property
    def bytes_pq(self) -> int:
        return sum(r.bytes_pq for r in self.layers) + self.other_bytes + self.header_bytes

    @property
    def ratio(self) -> float:
        return self.dense_bytes / max(self.file_bytes, 1)

    @property
    def ratio_pq(self) -> float:
        return self.dense_bytes / max(self.bytes_pq, 1)

    def to_dict(self) -> dict[str, Any]:
        rows = [{**asdict(r), "ratio_pq": r.ratio_pq, "ratio": r.ratio} for r in self.layers]
        weights = sum(r.weights for r in self.layers)
        nonzeros = sum(r.density * r.weights for r in self.layers)
        return {
            "model": self.model,
            "file_bytes": self.file_bytes,
            "dense_bytes": self.dense_bytes,
            "ratio": self.ratio,
            "bytes_pq": self.bytes_pq,
            "ratio_pq": self.ratio_pq,
            "weights": weights,
            "density": nonzeros / max(weights, 1),
            "bits_per_weight": 8 * sum(r.bytes for r in self.layers) / max(weights, 1),
            "other_dense_bytes": self.other_dense_bytes,
            "other_bytes": self.other_bytes,
            "header_bytes": self.header_bytes,
            "layers": rows,
            "metadata": self.metadata,
        }


def _row(entry: dict[str, Any], payloads: list) -> LayerRow:
    numel = math.prod(entry_shape(entry))
    stored = sum(len(p) + SECTION_OVERHEAD for p in payloads)
    encoding = entry["encoding"]
    nonzeros = int(entry.get("nonzeros", numel))
    row = dict(
        name=entry["name"].removesuffix(".weight"),
        weights=numel,
        density=nonzeros / max(numel, 1),
        dense_bytes=4 * numel,
        bytes=stored,
        bits_per_weight=8 * stored / max(numel, 1),
        codebook=0,
    )
    if encoding == "raw":
        bits = 8 * np.dtype(RAW_DTYPES[entry["storage"]]).itemsize
        return LayerRow(
            **row, encoding="raw", entries=0, weight_bits=bits, weight_bits_huffman=bits,
            index_bits=0, index_bits_huffman=0, bytes_pq=stored,
        )  # fmt: skip
    if encoding == "sparse":
        gaps = stream_info(payloads[0])
        n = max(gaps.count, 1)
        bytes_pq = (gaps.count * (32 + entry["index_bits"]) + 7) // 8
        return LayerRow(
            **row, encoding="sparse", entries=gaps.count, weight_bits=32, weight_bits_huffman=32,
            index_bits=entry["index_bits"], index_bits_huffman=gaps.n_bits / n,
            bytes_pq=bytes_pq + 2 * SECTION_OVERHEAD,
        )  # fmt: skip
    if encoding == "binary":  # every weight one sign bit, plus the scales
        return LayerRow(
            **{**row, "density": 1.0}, encoding="binary", entries=numel, weight_bits=1,
            weight_bits_huffman=1, index_bits=0, index_bits_huffman=0, bytes_pq=stored,
        )  # fmt: skip
    symbols = stream_info(payloads[-1])
    n = max(symbols.count, 1)
    bits = entry["bits"]
    codebook_bytes = 4 * entry["codebook_size"]
    if entry["layout"] == "sparse":
        gaps = stream_info(payloads[1])
        index_bits, index_huffman = entry["index_bits"], gaps.n_bits / n
    else:
        index_bits = index_huffman = 0
    bytes_pq = (symbols.count * (bits + index_bits) + 7) // 8 + codebook_bytes
    return LayerRow(
        **{**row, "codebook": entry["codebook_size"]},
        encoding=f"shared-{entry['layout']}", entries=symbols.count, weight_bits=bits,
        weight_bits_huffman=symbols.n_bits / n, index_bits=index_bits,
        index_bits_huffman=index_huffman,
        bytes_pq=bytes_pq + SECTION_OVERHEAD * len(payloads),
    )  # fmt: skip


def compression_report(nsz: NszFile) -> CompressionReport:
    """The per-layer table of a parsed file: one row per weight of two or more dimensions."""
    layers: list[LayerRow] = []
    other_dense = other = 0
    for entry, payloads in zip(nsz.entries, nsz.payloads, strict=True):
        shape = entry_shape(entry)
        if entry["name"].endswith(".weight") and len(shape) >= 2:
            layers.append(_row(entry, payloads))
        else:
            numel = math.prod(shape)
            itemsize = 8 if entry.get("storage") == "int64" else 4
            other_dense += itemsize * numel
            other += sum(len(p) + SECTION_OVERHEAD for p in payloads)
    data_bytes = sum(r.bytes for r in layers) + other
    return CompressionReport(
        layers=layers,
        other_dense_bytes=other_dense,
        other_bytes=other,
        header_bytes=nsz.file_bytes - data_bytes,
        file_bytes=nsz.file_bytes,
        model=nsz.model_name,
        metadata=nsz.metadata,
    )


def _size(n: float) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def render_report(report: CompressionReport) -> str:
    """A terminal table: one row per layer, then other tensors, header and the totals."""
    head = (
        "layer", "weights", "density", "encoding", "w bits", "w bits H", "idx bits",
        "idx bits H", "bytes", "bits/w", "ratio P+Q", "ratio P+Q+H",
    )  # fmt: skip
    rows = [head]
    for r in report.layers:
        rows.append((
            r.name, f"{r.weights:,}", f"{100 * r.density:.1f}%", r.encoding,
            f"{r.weight_bits:g}", f"{r.weight_bits_huffman:.2f}",
            f"{r.index_bits:g}" if r.index_bits else "-",
            f"{r.index_bits_huffman:.2f}" if r.index_bits else "-",
            _size(r.bytes), f"{r.bits_per_weight:.2f}", f"{r.ratio_pq:.1f}x", f"{r.ratio:.1f}x",
        ))  # fmt: skip
    total = report.to_dict()
    blank = ("",) * 7
    rows.append(("other tensors", *blank, _size(report.other_bytes), "", "", ""))
    rows.append(("header", *blank, _size(report.header_bytes), "", "", ""))
    rows.append((
        "total", f"{total['weights']:,}", f"{100 * total['density']:.1f}%", "", "", "", "", "",
        _size(report.file_bytes), f"{total['bits_per_weight']:.2f}",
        f"{report.ratio_pq:.1f}x", f"{report.ratio:.1f}x",
    ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for j, row in enumerate(rows):
        cells = [
            c.ljust(w) if i < 1 or i == 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if j == 0 or j == len(rows) - 4:
            lines.append("-" * len(lines[0]))
    summary = (
        f"file {_size(report.file_bytes)} ({report.file_bytes:,} bytes); dense fp32 "
        f"{_size(report.dense_bytes)}; compression {report.ratio:.1f}x "
        f"(P+Q alone {report.ratio_pq:.1f}x)"
    )
    return "\n".join([*lines, summary])
