"""Survey rows for compact architectures against their baselines (trained on the data)."""

from __future__ import annotations

from typing import Any

from netshrink.survey.context import SurveyContext
from netshrink.survey.registry import Measured, SurveyEntry, register_entry

# (key, label, registry name, model args, targets speed, baseline key)
ARCHITECTURES: list[tuple[str, str, str, dict[str, Any], bool, str]] = [
    ("alexnet", "AlexNet (baseline)", "alexnet", {}, False, "alexnet"),
    ("lenet5", "LeNet-5 (baseline)", "lenet5", {}, False, "lenet5"),
    ("squeezenet1_0", "SqueezeNet 1.0", "squeezenet1_0", {}, False, "alexnet"),
    ("squeezenet1_1", "SqueezeNet 1.1", "squeezenet1_1", {}, True, "alexnet"),
    (
        "squeezenet1_0_bypass",
        "SqueezeNet 1.0 + simple bypass",
        "squeezenet1_0",
        {"bypass": "simple"},
        False,
        "alexnet",
    ),
    ("mobilenet_v1_1.0", "MobileNet v1 1.0", "mobilenet_v1", {"width_mult": 1.0}, True, "alexnet"),
    ("mobilenet_v1_0.5", "MobileNet v1 0.5", "mobilenet_v1", {"width_mult": 0.5}, True, "alexnet"),
    ("shufflenet_v1_g3", "ShuffleNet v1 1x g=3", "shufflenet_v1", {"groups": 3}, True, "alexnet"),
    ("shufflenet_v1_g8", "ShuffleNet v1 1x g=8", "shufflenet_v1", {"groups": 8}, True, "alexnet"),
    (
        "shufflenet_v1_g3_noshuffle",
        "ShuffleNet v1 1x g=3, no shuffle",
        "shufflenet_v1",
        {"groups": 3, "shuffle": False},
        True,
        "alexnet",
    ),
]


def _trainer(key: str, model_name: str, args: dict[str, Any]):
    def run(ctx: SurveyContext) -> Measured:
        model, input_size, metrics = ctx.train(key, model_name, args)
        return Measured(model, input_size, metrics)

    return run


for _key, _label, _name, _args, _speed, _baseline in ARCHITECTURES:
    register_entry(
        SurveyEntry(
            key=_key,
            method=_label,
            approach="architecture",
            targets_speed=_speed,
            baseline=_baseline,
            run=_trainer(_key, _name, _args),
        )
    )
