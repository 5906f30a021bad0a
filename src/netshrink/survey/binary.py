"""Survey rows of Binary-Weight-Networks and XNOR-Net (Rastegari et al., ECCV 2016).

Two networks, LeNet-5 and the small VGG-style ``vgg_small``, each in XNOR-Net's block
order (BatchNorm → activation → conv → pool), are trained in float: that is the baseline
row. BWN and XNOR rows binarize a copy of it (first and last layers real, as in the paper),
fine-tune it for the survey's epochs, and store it in an ``.nsz`` file at 1 bit per binary
weight. Each binary row is the model read back from its file, run by the packed engine
(:func:`netshrink.engine.to_packed`): XNOR layers on the bit-packed popcount
kernels, everything else in float. BWN layers keep real-valued inputs, so the engine runs
them in float: BWN buys size, not speed.

Outputs under ``<out>/binary/``: ``KEY.nsz`` and ``KEY.json`` (metrics before and after
fine-tuning, the resolved binarization, the per-layer engine).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

from netshrink.atomic import atomic_write_bytes, atomic_write_text, ensure_dir
from netshrink.binarize import BinarizeConfig, binarize_
from netshrink.engine import to_packed
from netshrink.nsz import unpack
from netshrink.runs.binarize import finetune_binary
from netshrink.survey.context import SurveyContext
from netshrink.survey.registry import Measured, SurveyEntry, register_entry
from netshrink.train import evaluate

__all__ = ["NETWORKS"]

# survey key of the float network -> (label, registry name, arguments)
NETWORKS = {
    "lenet5": ("LeNet-5", "lenet5", {"order": "xnor"}),
    "vgg_small": ("Small VGG", "vgg_small", {"order": "xnor"}),
}
MODES = {"bwn": "BWN", "xnor": "XNOR-Net"}


def _out(ctx: SurveyContext) -> Path:
    return ensure_dir(ctx.out / "binary")


def _float_key(net: str) -> str:
    return f"{net}_xnor_order"


def _float(ctx: SurveyContext, net: str):
    _, model_name, args = NETWORKS[net]
    return ctx.train(_float_key(net), model_name, args)


def _run_float(net: str):
    def run(ctx: SurveyContext) -> Measured:
        model, input_size, metrics = _float(ctx, net)
        notes = (
            "Float network in XNOR-Net's block order (BatchNorm → Hardtanh → conv → pool): "
            "the baseline its BWN and XNOR rows are binarized from."
        )
        return Measured(model, input_size, metrics, notes=notes)

    return run


def _run_binary(net: str, mode: str):
    def run(ctx: SurveyContext) -> Measured:
        _, model_name, _ = NETWORKS[net]
        source, input_size, _ = _float(ctx, net)
        data = ctx.dataset(model_name, ctx.model_args(_float_key(net)))
        model = copy.deepcopy(source)
        resolved = binarize_(model, BinarizeConfig(mode=mode))
        train_config = ctx.train_config()
        binary = finetune_binary(
            model,
            resolved,
            data,
            train_config,
            model_name=model_name,
            model_args=ctx.model_args(_float_key(net)),
            input_size=input_size,
            metadata={"data": ctx.config.data, "seed": ctx.config.seed},
            describe=False,  # recorded in KEY.json beside the file
            progress=ctx.progress,
            desc=f"{net} {mode}",
        )
        key = f"{net}_{mode}"
        path = _out(ctx) / f"{key}.nsz"
        atomic_write_bytes(path, binary.nsz)
        stored = unpack(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the fallbacks are in the notes
            packed, engine = to_packed(stored)
        metrics = {f"test_{k}": v for k, v in evaluate(packed, data.test).items()}
        record = {
            "binarize": resolved.to_dict(),
            "train": train_config.to_dict(),
            "test_top1_binarized_before_finetuning": binary.binarized["top1"],
            "test_top1_after_finetuning": binary.training.metrics["test_top1"],
            "test_top1_from_file_packed_engine": metrics["test_top1"],
            "file_bytes": path.stat().st_size,
            "engine": {n.layer: n.engine for n in engine},
        }
        atomic_write_text(_out(ctx) / f"{key}.json", json.dumps(record, indent=2))
        print(
            f"  {key}: {path.stat().st_size:,} bytes, test top-1 {metrics['test_top1']:.4f} "
            f"(packed engine, from the file)",
            flush=True,
        )
        on_packed = [n.layer for n in engine if n.engine == "packed"]
        layers = ", ".join(resolved.layers)
        if on_packed:
            speed = f"{', '.join(on_packed)} on the packed popcount kernels, the rest in float"
        else:
            speed = "binary layers keep real inputs, so they run in float: no speed-up"
        notes = (
            f"{MODES[mode]} ({layers} binary, 1 bit per weight; first and last layer real), "
            f"fine-tuned {train_config.epochs} epochs from the float network; the model read "
            f"back from its .nsz; {speed}. MACs count binary ones like float ones."
        )
        return Measured(packed, input_size, metrics, path.stat().st_size, notes, stored, onnx=False)

    return run


for _net, (_label, _, _) in NETWORKS.items():
    register_entry(
        SurveyEntry(
            key=_float_key(_net),
            method=f"{_label}, XNOR block order (float)",
            approach="weights",
            targets_speed=False,
            baseline=_float_key(_net),
            run=_run_float(_net),
            multi_seed=_net == "lenet5",  # Small VGG's three rows cost 80 s per seed
        )
    )
    for _mode, _name in MODES.items():
        register_entry(
            SurveyEntry(
                key=f"{_net}_{_mode}",
                method=f"{_label} {_name}",
                approach="weights",
                targets_speed=_mode == "xnor",
                baseline=_float_key(_net),
                run=_run_binary(_net, _mode),
                multi_seed=_net == "lenet5",
            )
        )
