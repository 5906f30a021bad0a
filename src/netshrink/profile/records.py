"""The profile as plain data: per-layer rows, latency statistics, the model summary.

Rendering lives in ``render.py``; these classes only hold numbers and convert to JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LayerProfile", "LatencyStats", "ModelProfile"]


@dataclass
class LayerProfile:
    """One profiled module (a leaf that computes or holds parameters).

    ``output_shape`` excludes the batch dimension; ``macs``, ``activation_bytes`` are for one
    sample, summed over every call of the module in one forward pass. ``weight_bytes`` is the
    fp32 size of the parameters counted in this row (a shared parameter is counted in the
    first row that uses it). ``latency_ms`` is the median per-forward time of the layer when
    per-layer latency was requested (it includes hook overhead).
    """

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    weight_bytes: int
    activation_bytes: int
    latency_ms: float | None = None


@dataclass
class LatencyStats:
    """Wall-clock time of one forward pass of a batch, over ``repeats`` timed runs."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    batch_size: int
    threads: int


@dataclass
class ModelProfile:
    """Counts of a whole model at one input size, plus latency per batch size if measured.

    ``activation_bytes`` is the sum of the rows' output sizes for one sample (the traffic the
    layers write), not the peak memory of a forward pass.
    """

    model: str
    input: tuple[int, int, int]
    layers: list[LayerProfile]
    params: int
    macs: int
    weight_bytes: int
    activation_bytes: int
    latency: dict[int, LatencyStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; tuples become lists and latency keys become strings."""
        return {
            "model": self.model,
            "input": list(self.input),
            "params": self.params,
            "macs": self.macs,
            "weight_bytes": self.weight_bytes,
            "activation_bytes": self.activation_bytes,
            "layers": [
                {**asdict(layer), "output_shape": list(layer.output_shape)} for layer in self.layers
            ],
            # JSON object keys are strings; write them so explicitly rather than rely on
            # json.dumps converting them silently.
            "latency": {str(b): asdict(s) for b, s in sorted(self.latency.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelProfile:
        """Inverse of :meth:`to_dict` (also accepts its JSON round trip)."""
        c, h, w = data["input"]
        return cls(
            model=data["model"],
            input=(int(c), int(h), int(w)),
            layers=[
                LayerProfile(**{**row, "output_shape": tuple(row["output_shape"])})
                for row in data["layers"]
            ],
            params=data["params"],
            macs=data["macs"],
            weight_bytes=data["weight_bytes"],
            activation_bytes=data["activation_bytes"],
            latency={int(b): LatencyStats(**s) for b, s in data.get("latency", {}).items()},
        )
