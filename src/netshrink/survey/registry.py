"""Survey entries: each method registers the rows it contributes.

An entry trains or compresses what it needs through the :class:`SurveyContext` and
returns :class:`Measured` models; the runner profiles them, measures latency side by side
and computes ratios against the entry's baseline. Later methods add rows by registering
entries in their own module; the runner never changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from netshrink.survey.context import SurveyContext

__all__ = ["Figure", "Measured", "SurveyEntry", "list_entries", "register_entry"]


@dataclass
class Measured:
    """What an entry hands back for one row."""

    model: nn.Module
    input_size: tuple[int, int, int]
    metrics: dict[str, float]  # at least test_top1 (fraction)
    size_bytes: int | None = None  # None: fp32 bytes of the parameters
    notes: str = ""
    # What params and MACs are counted on when ``model`` hides its layers (the packed
    # engine's modules are not Conv2d/Linear): the same network in float simulation.
    profile_model: nn.Module | None = None
    # Whether the survey's onnxruntime column exports ``profile_model or model`` (False where
    # that float network is not what the row runs: binary layers, int8 modules).
    onnx: bool = True


@dataclass(frozen=True)
class Figure:
    """A PNG an entry contributes to the report (``ctx.add_figure``), shown after the plots."""

    key: str  # file name stem: figures/<key>.png
    title: str
    png: bytes
    caption: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.key):
            raise ValueError(f"figure key must be a plain file name stem, got {self.key!r}")

    @property
    def path(self) -> str:
        """Where the report writes it, relative to the survey's output folder."""
        return f"figures/{self.key}.png"

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "title": self.title, "caption": self.caption, "file": self.path}


@dataclass(frozen=True)
class SurveyEntry:
    key: str  # stable identifier, used for caching and --only
    method: str  # row label
    approach: str  # "architecture" or "weights"
    targets_speed: bool
    baseline: str  # key of the row this one is compared against (itself for a baseline)
    run: Callable[[SurveyContext], Measured]
    quick: bool = True  # included in --quick runs
    # Trained again with each further seed of ``--seeds`` (its accuracy: mean ± sd over the
    # seeds); False: one seed. Every entry a multi-seed entry builds on must be one too.
    multi_seed: bool = False
    # Training runs of this entry that the further seeds' entries use as they are (keys of
    # ctx.train): the distillation teacher, so each seed's students learn from seed 0's.
    shared_runs: tuple[str, ...] = ()


_ENTRIES: dict[str, SurveyEntry] = {}


def register_entry(entry: SurveyEntry) -> SurveyEntry:
    if entry.key in _ENTRIES:
        raise ValueError(f"survey entry {entry.key!r} registered twice")
    if entry.approach not in ("architecture", "weights"):
        raise ValueError(f"approach must be 'architecture' or 'weights', got {entry.approach!r}")
    _ENTRIES[entry.key] = entry
    return entry


def list_entries() -> list[SurveyEntry]:
    """Entries in registration order (baselines first by convention)."""
    return list(_ENTRIES.values())
