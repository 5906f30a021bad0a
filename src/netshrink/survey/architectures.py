"""Survey rows for compact architectures against their baselines (trained on the data).

All rows train with the same recipe (Adam, cosine schedule, the survey's epochs) except
SqueezeNet: it has no BatchNorm, and at Adam's 1e-3 its final ReLU dies within the first
hundred steps (test accuracy stays at chance; at 3e-4 some classes still die), so its
rows use 2e-4. The bypass rows (Table 3) and their vanilla baseline use the LSUV-scaled
init (``init="lsuv"``): under Kaiming init the shortcuts compound activations and complex
bypass does not train (see ``netshrink.models.squeezenet``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netshrink.survey.context import SurveyContext
from netshrink.survey.registry import Measured, SurveyEntry, register_entry
from netshrink.sweep.results import SweepRow, size_accuracy_plot

SQUEEZENET_TRAIN = {"lr": 2e-4}


@dataclass(frozen=True)
class ArchitectureRow:
    key: str
    label: str
    model: str  # registry name
    args: dict[str, Any] = field(default_factory=dict)
    targets_speed: bool = True
    baseline: str = "alexnet"
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides


ARCHITECTURES = [
    ArchitectureRow("alexnet", "AlexNet (baseline)", "alexnet", targets_speed=False),
    ArchitectureRow(
        "lenet5", "LeNet-5 (baseline)", "lenet5", targets_speed=False, baseline="lenet5"
    ),
    ArchitectureRow(
        "squeezenet1_0",
        "SqueezeNet 1.0",
        "squeezenet1_0",
        targets_speed=False,
        train=SQUEEZENET_TRAIN,
    ),
    ArchitectureRow("squeezenet1_1", "SqueezeNet 1.1", "squeezenet1_1", train=SQUEEZENET_TRAIN),
    ArchitectureRow(
        "squeezenet1_0_lsuv",
        "SqueezeNet 1.0, LSUV init",
        "squeezenet1_0",
        {"init": "lsuv"},
        targets_speed=False,
        baseline="squeezenet1_0",
        train=SQUEEZENET_TRAIN,
    ),
    ArchitectureRow(
        "squeezenet1_0_bypass",
        "SqueezeNet 1.0 + simple bypass, LSUV",
        "squeezenet1_0",
        {"bypass": "simple", "init": "lsuv"},
        targets_speed=False,
        baseline="squeezenet1_0_lsuv",  # Table 3 compares the bypasses with vanilla SqueezeNet
        train=SQUEEZENET_TRAIN,
    ),
    ArchitectureRow(
        "squeezenet1_0_bypass_complex",
        "SqueezeNet 1.0 + complex bypass, LSUV",
        "squeezenet1_0",
        {"bypass": "complex", "init": "lsuv"},
        targets_speed=False,
        baseline="squeezenet1_0_lsuv",
        train=SQUEEZENET_TRAIN,
    ),
    ArchitectureRow("mobilenet_v1_1.0", "MobileNet v1 1.0", "mobilenet_v1", {"width_mult": 1.0}),
    ArchitectureRow("mobilenet_v1_0.5", "MobileNet v1 0.5", "mobilenet_v1", {"width_mult": 0.5}),
    ArchitectureRow("shufflenet_v1_g3", "ShuffleNet v1 1x g=3", "shufflenet_v1", {"groups": 3}),
    ArchitectureRow("shufflenet_v1_g8", "ShuffleNet v1 1x g=8", "shufflenet_v1", {"groups": 8}),
    ArchitectureRow(
        "shufflenet_v1_g3_noshuffle",
        "ShuffleNet v1 1x g=3, no shuffle",
        "shufflenet_v1",
        {"groups": 3, "shuffle": False},
    ),
]


# SqueezeNet §6 (Table 3): the last of these rows adds a figure of all three.
BYPASS_ROWS = ("squeezenet1_0_lsuv", "squeezenet1_0_bypass", "squeezenet1_0_bypass_complex")


def _bypass_figure(ctx: SurveyContext) -> None:
    rows = []
    for key in BYPASS_ROWS:
        row = next(r for r in ARCHITECTURES if r.key == key)
        model, _, metrics = ctx.train(row.key, row.model, row.args, **row.train)
        params = sum(p.numel() for p in model.parameters())
        label = f"bypass={row.args.get('bypass', 'none')}"
        rows.append(SweepRow.single(label, "point", dict(row.args), metrics, params))
    ctx.add_figure(
        "squeezenet_bypass",
        "SqueezeNet 1.0 bypass connections: size against accuracy",
        size_accuracy_plot(
            rows, "SqueezeNet 1.0, LSUV init: none / simple / complex bypass (one seed)"
        ),
        caption=(
            "Iandola et al. 2016 §6, Table 3, all three with the LSUV-scaled init. Simple "
            "bypass adds no parameters; complex adds 1x1 convolutions on the other shortcuts. "
            "`netshrink sweep squeezenet --param bypass=none,simple,complex --param init=lsuv "
            "--seeds 3` gives mean ± std."
        ),
    )


# Rows trained again with each further --seeds seed: those whose training fits the demo's
# time budget (the others cost minutes per seed; `netshrink sweep` runs them over seeds).
MULTI_SEED = ("lenet5",)


def _trainer(row: ArchitectureRow):
    def run(ctx: SurveyContext) -> Measured:
        model, input_size, metrics = ctx.train(row.key, row.model, row.args, **row.train)
        if row.key == BYPASS_ROWS[-1] and ctx.primary:
            _bypass_figure(ctx)
        return Measured(model, input_size, metrics)

    return run


for _row in ARCHITECTURES:
    register_entry(
        SurveyEntry(
            key=_row.key,
            method=_row.label,
            approach="architecture",
            targets_speed=_row.targets_speed,
            baseline=_row.baseline,
            run=_trainer(_row),
            multi_seed=_row.key in MULTI_SEED,
        )
    )
