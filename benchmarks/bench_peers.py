"""netshrink's Deep Compression file against int8, torch.nn.utils.prune, fp16 and zstd.

    cd benchmarks && ../.venv/bin/python bench_peers.py [--quick] [--epochs 4] [--limit N]
        [--retrain-epochs N] [--threads 1] [--repeats 30] [--batches 1 64] [--json PATH]

For LeNet-5, SqueezeNet 1.0 and MobileNet v1 (both 28 px, ``small_input``) on the embedded
mnist5k data (seed 0, fixed split), one float network is trained with the survey's
settings (``SurveyContext.train_config`` and the survey's per-model overrides: Adam 1e-3,
SqueezeNet 2e-4, cosine schedule) for ``--epochs`` (default 4, a full survey run's; about
7 minutes in all on 2 idle cores, ``--quick`` under one), then on that same network:

- Deep Compression: ``recipes/lenet5.yaml``, ``recipes/squeezenet1_0_table1.yaml`` and, for
  MobileNet v1, :data:`MOBILENET_RECIPE` (pointwise convolutions and fc pruned, first conv
  and depthwise convolutions dense, 8-bit conv / 5-bit fc sharing, Huffman). Retraining
  epochs scale as the survey scales them (``epochs * train_epochs // FULL_EPOCHS``, at most
  ``train_epochs``) unless ``--retrain-epochs`` sets them. Its size is the ``.nsz`` file's;
  its accuracy and latency are those of :func:`netshrink.engine.load_auto` on that file.
- The peers of :mod:`netshrink.peers`: ``int8_static`` (FX, calibrated on training images,
  the current ``torch.backends.quantized.engine``), ``int8_dynamic`` (networks with
  ``Linear`` layers), ``torch_prune`` at the DC file's overall sparsity of its Conv2d/Linear
  weights, retrained with its masks for as many epochs as the DC prune stages retrain,
  ``fp16_storage`` and ``zstd_checkpoint``. Their size is the file each tool writes.

All contenders and the float network are timed interleaved (one run of each per round,
the order reversed every other round, each timed run after an untimed one) after warm-up,
at batch 1 and 64 on test images, with torch's threads fixed; medians are reported.
Ratios are contender / DC: size > 1 and latency > 1 mean the DC file is smaller / faster.
Run it on an otherwise idle machine (the 1-minute load average is printed): with
``OMP_WAIT_POLICY=ACTIVE`` a second busy process on the 2 cores slows training many times.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")  # before torch: no idle-thread stalls

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass, field, replace  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from bench_binary import describe_target, time_interleaved  # noqa: E402
from torch import nn  # noqa: E402

import netshrink as ns  # noqa: E402
from netshrink.atomic import atomic_write_text  # noqa: E402
from netshrink.data import Dataset, load_dataset, native_input_size  # noqa: E402
from netshrink.engine import load_auto  # noqa: E402
from netshrink.errors import NetshrinkError  # noqa: E402
from netshrink.peers import (  # noqa: E402
    PeerModel,
    calibration_batches,
    fp16_storage,
    int8_dynamic,
    int8_static,
    saved_size,
    torch_prune,
    weight_sparsity,
    zstd_checkpoint,
)
from netshrink.runs.compress import compress  # noqa: E402
from netshrink.runs.load import resolve_model  # noqa: E402
from netshrink.runs.recipe import (  # noqa: E402
    PruneStage,
    QuantizeStage,
    Recipe,
    load_recipe,
    parse_recipe,
)
from netshrink.survey.architectures import ARCHITECTURES  # noqa: E402
from netshrink.survey.context import FULL_EPOCHS, SurveyConfig, SurveyContext  # noqa: E402
from netshrink.train import TrainConfig, evaluate, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = "mnist5k"
SEED = 0

# Deep Compression of MobileNet v1 on 28 px MNIST, built here (no recipe ships for it). The
# 1x1 pointwise convolutions hold 98% of the Conv2d/Linear weights; the first conv and the
# depthwise 3x3 filters (9 weights each, 1.4% in all) are small and the most sensitive.
MOBILENET_RECIPE = {
    "name": "mobilenet_v1-deep-compression-bench",
    "description": "Pointwise convs and fc pruned 75%, first and depthwise convs dense; "
    "8-bit conv / 5-bit fc weight sharing; 4-bit conv / 5-bit fc relative indices; Huffman; "
    "raw tensors (BatchNorm, biases) in fp16.",
    "stages": [
        {
            "prune": {
                "sparsity": {"blocks.*.pointwise": 0.75, "fc": 0.75},
                "retrain": {"epochs": 2, "lr": 0.0005},
            }
        },
        {"quantize": {"conv_bits": 8, "fc_bits": 5, "finetune": {"epochs": 1, "lr": 0.0001}}},
        {"encode": {"conv_index_bits": 4, "fc_index_bits": 5, "huffman": True, "float16": True}},
    ],
}

# label -> (survey architecture row, its Deep Compression recipe)
NETWORKS: dict[str, tuple[str, Any]] = {
    "lenet5": ("lenet5", ROOT / "recipes" / "lenet5.yaml"),
    "squeezenet1_0 (28 px)": ("squeezenet1_0", ROOT / "recipes" / "squeezenet1_0_table1.yaml"),
    "mobilenet_v1 (28 px)": ("mobilenet_v1_1.0", MOBILENET_RECIPE),
}


@dataclass
class Contender:
    key: str  # "float", "dc", or one of netshrink.peers.PEERS
    method: str
    size_bytes: int
    top1: float  # test top-1, fraction
    latency_ms: dict[int, float] = field(default_factory=dict)  # batch -> median ms
    notes: str = ""


@dataclass
class NetworkResult:
    label: str
    model_name: str
    model_args: dict[str, Any]
    train: dict[str, Any]
    recipe: dict[str, Any]
    test_images: int
    dc_sparsity: float  # zeros / weights over every Conv2d/Linear weight of the DC model
    prune_retrain_epochs: int  # what the DC prune stages retrain, and torch_prune with it
    contenders: list[Contender] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # peer -> why
    seconds: float = 0.0

    def row(self, key: str) -> Contender:
        return next(c for c in self.contenders if c.key == key)


# Setup ------------------------------------------------------------------------------------


def scaled_recipe(
    recipe: Recipe, train_config: TrainConfig, train_epochs: int, override: int | None
) -> Recipe:
    """The recipe's retraining at this run's scale, as the survey scales it:
    ``epochs * train_epochs // FULL_EPOCHS`` capped at ``train_epochs`` (``override``: that
    many epochs instead), with the run's batch size and seed; none below one epoch."""

    def scaled(config: TrainConfig | None) -> TrainConfig | None:
        if config is None:
            return None
        if override is not None:
            epochs = override
        else:
            epochs = min(config.epochs * train_epochs // FULL_EPOCHS, train_epochs)
        if epochs < 1:
            return None
        return replace(
            config, epochs=epochs, batch_size=train_config.batch_size, seed=train_config.seed
        )

    stages = []
    for stage in recipe.stages:
        if isinstance(stage, PruneStage):
            retrain = scaled(stage.retrain)
            final = scaled(stage.final_retrain) if retrain is not None else None
            stage = replace(stage, retrain=retrain, final_retrain=final)
        elif isinstance(stage, QuantizeStage):
            stage = replace(stage, finetune=scaled(stage.finetune))
        stages.append(stage)
    return Recipe(stages, recipe.name, recipe.description)


def prune_epochs(recipe: Recipe) -> tuple[int, TrainConfig | None]:
    """Epochs the prune stages retrain in all (every round's), and the first one's config."""
    stages = [s for s in recipe.stages if isinstance(s, PruneStage) and s.retrain is not None]
    total = sum(s.retraining(r).epochs for s in stages for r in range(1, s.rounds + 1))
    return total, (stages[0].retrain if stages else None)


def epochs(n: int) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


# One network ------------------------------------------------------------------------------


@dataclass
class FloatNetwork:
    """The trained float network of one architecture row, with its data and training."""

    key: str  # the survey's architecture row
    model_name: str
    model_args: dict[str, Any]
    input_size: tuple[int, int, int]
    data: Dataset
    train_config: TrainConfig
    model: nn.Module  # eval mode; never modified
    seconds: float


def train_float(key: str, survey: SurveyContext, limit: int | None) -> FloatNetwork:
    """Train the survey's architecture row ``key`` on mnist5k as the survey trains it."""
    row = next(r for r in ARCHITECTURES if r.key == key)
    model_args, input_size = resolve_model(row.model, native_input_size(DATA), row.args)
    data = load_dataset(DATA, input_size=input_size, seed=SEED, limit=limit)
    model_args.setdefault("num_classes", data.num_classes)
    config = survey.train_config(**row.train)
    torch.manual_seed(config.seed)  # initial weights depend only on the seed
    model = ns.create(row.model, **model_args)
    trained = train(model, data, config, progress=False, desc=key)
    return FloatNetwork(key, row.model, model_args, input_size, data, config, model.eval(),
                        trained.seconds)  # fmt: skip


def load_dc_recipe(
    source: Any, net: FloatNetwork, survey: SurveyContext, retrain: int | None
) -> Recipe:
    """A recipe file, or a recipe given as plain data, at this run's retraining scale."""
    recipe = parse_recipe(source) if isinstance(source, dict) else load_recipe(source)
    return scaled_recipe(recipe, net.train_config, survey.config.train_epochs, retrain)


def build_peers(
    net: FloatNetwork, sparsity: float, recipe: Recipe, args: argparse.Namespace
) -> tuple[dict[str, PeerModel], dict[str, str]]:
    """The peers of :mod:`netshrink.peers` on ``net``, and why any could not be built."""
    retrain_epochs, retrain_config = prune_epochs(recipe)
    peers: dict[str, PeerModel] = {}
    skipped: dict[str, str] = {}

    def add(key: str, build) -> None:
        try:
            peers[key] = build()
        except NetshrinkError as exc:
            skipped[key] = str(exc)
            print(f"  {key}: skipped ({exc})", flush=True)

    def retrain(pruned: nn.Module) -> None:
        config = replace(retrain_config, epochs=retrain_epochs)
        torch.set_num_threads(args.train_threads)
        train(pruned, net.data, config, progress=False, desc="torch_prune")
        torch.set_num_threads(args.threads)

    add("int8_static", lambda: int8_static(net.model, calibration_batches(net.data.train)))
    add("int8_dynamic", lambda: int8_dynamic(net.model))
    started = time.perf_counter()
    add("torch_prune",
        lambda: torch_prune(net.model, sparsity, retrain if retrain_epochs else None))  # fmt: skip
    if "torch_prune" in peers:
        peers["torch_prune"].notes += (
            f" Same sparsity as the DC file and as many retraining epochs ({retrain_epochs}) "
            "as its prune stages (one cosine schedule over them; DC's centroid fine-tuning "
            "has no counterpart)."
        )
        print(f"  torch_prune in {time.perf_counter() - started:.0f} s", flush=True)
    add("fp16", lambda: fp16_storage(net.model))
    add("zstd", lambda: zstd_checkpoint(net.model))
    return peers, skipped


def time_batches(
    nets: list[nn.Module], data: Dataset, args: argparse.Namespace
) -> list[dict[int, float]]:
    """Median ms of each network at each batch size, timed interleaved on test images."""
    latency: list[dict[int, float]] = [{} for _ in nets]
    for batch in args.batches:
        x = next(iter(data.test.batches(batch)))[0]  # (B, C, H, W)
        repeats = args.repeats if batch == 1 else max(5, args.repeats // 5)
        with torch.inference_mode():
            ms = time_interleaved([partial(net, x) for net in nets], repeats, args.warmup)
        for row, median in zip(latency, ms, strict=True):
            row[batch] = median
    return latency


def run_network(
    label: str, args: argparse.Namespace, survey: SurveyContext, tmp: Path
) -> NetworkResult:
    start = time.perf_counter()
    key, recipe_source = NETWORKS[label]
    torch.set_num_threads(args.train_threads)  # training and compressing: every core
    net = train_float(key, survey, args.limit)
    config = net.train_config
    print(
        f"\n{label}: {net.model_name} {net.model_args}, {len(net.data.train):,} train / "
        f"{len(net.data.test):,} test images; float trained {config.epochs} epochs (lr "
        f"{config.lr:g}, batch {config.batch_size}) in {net.seconds:.0f} s",
        flush=True,
    )

    recipe = load_dc_recipe(recipe_source, net, survey, args.retrain_epochs)
    path = tmp / f"{key}.nsz"
    started = time.perf_counter()
    result = compress(
        copy.deepcopy(net.model), recipe, net.data, path=path, model_name=net.model_name,
        model_args=net.model_args, input_size=net.input_size, progress=False,
    )  # fmt: skip
    sparsity = weight_sparsity(result.model)
    retrain_epochs, _ = prune_epochs(recipe)
    finetune = sum(
        s.finetune.epochs for s in recipe.stages if isinstance(s, QuantizeStage) and s.finetune
    )
    print(f"  deep compression ({recipe.name}) in {time.perf_counter() - started:.0f} s: "
          f"{path.stat().st_size:,} bytes, {100 * sparsity:.1f}% of Conv2d/Linear weights "
          f"zero", flush=True)  # fmt: skip

    # From here on the timing threads: load_auto times its layers at load with them.
    torch.set_num_threads(args.threads)
    engine_model, layers = load_auto(path, warn=False)
    sparse = sum(n.engine == "sparse" for n in layers)
    dc_notes = (
        f"{recipe.name}: prune retraining {epochs(retrain_epochs)}, centroid fine-tuning "
        f"{epochs(finetune)}; runs on the auto engine from the .nsz ({sparse} of "
        f"{len(layers)} layers on the sparse kernels, the rest fused)."
    )
    peers, skipped = build_peers(net, sparsity, recipe, args)

    networks = {
        "float": ("float32 (torch.save)", net.model, saved_size(net.model),
                  "The trained fp32 network; its torch.save state dict."),
        "dc": ("netshrink Deep Compression", engine_model, path.stat().st_size, dc_notes),
    }  # fmt: skip
    for peer_key, peer in peers.items():
        networks[peer_key] = (peer.method, peer.model, peer.size_bytes, peer.notes)
    latency = time_batches([entry[1] for entry in networks.values()], net.data, args)
    contenders = [
        Contender(k, method, size, evaluate(model, net.data.test)["top1"], ms, notes)
        for (k, (method, model, size, notes)), ms in zip(networks.items(), latency, strict=True)
    ]
    train_record = {**asdict(config), "seconds": net.seconds}
    return NetworkResult(
        label, net.model_name, net.model_args, train_record, recipe.to_dict(),
        len(net.data.test), sparsity, retrain_epochs, contenders, skipped,
        time.perf_counter() - start,
    )  # fmt: skip


# Rendering --------------------------------------------------------------------------------


def render_table(result: NetworkResult, batches: list[int]) -> str:
    dc, base = result.row("dc"), result.row("float")
    extra = [b for b in batches if b != 1]
    header = (
        f"{'contender':<28} {'file bytes':>11} {'x DC':>7} {'top-1 %':>8} {'vs DC pp':>8} "
        f"{'b1 ms':>8} {'x DC':>6} {'x float':>7}"
        + "".join(f" {f'b{b} ms':>8} {'x DC':>6}" for b in extra)
    )
    lines = [header, "-" * len(header)]
    for c in result.contenders:
        b1 = c.latency_ms[1]
        line = (
            f"{c.method:<28} {c.size_bytes:>11,} {c.size_bytes / dc.size_bytes:>6.1f}x "
            f"{100 * c.top1:>8.2f} {100 * (c.top1 - dc.top1):>+8.2f} {b1:>8.3f} "
            f"{b1 / dc.latency_ms[1]:>5.2f}x {b1 / base.latency_ms[1]:>6.2f}x"
        )
        for b in extra:
            line += f" {c.latency_ms[b]:>8.3f} {c.latency_ms[b] / dc.latency_ms[b]:>5.2f}x"
        lines.append(line)
    for key, why in result.skipped.items():
        lines.append(f"{key}: skipped: {why}")
    lines.append("notes:")
    lines.extend(f"  {c.method}: {c.notes}" for c in result.contenders)
    return "\n".join(lines)


def summarize(results: list[NetworkResult]) -> str:
    """Where the DC file wins and loses, stated from the measured numbers."""
    sentences = []
    smallest = accurate = fastest = 0
    for r in results:
        dc, base = r.row("dc"), r.row("float")
        peers = [c for c in r.contenders if c.key not in ("dc", "float")]
        others = [c for c in r.contenders if c.key != "dc"]
        next_smallest = min(peers, key=lambda c: c.size_bytes)
        size_ratio = next_smallest.size_bytes / dc.size_bytes
        smallest += size_ratio > 1
        size = (
            f"its {dc.size_bytes:,}-byte file is {base.size_bytes / dc.size_bytes:.1f}x smaller "
            f"than fp32 and {size_ratio:.1f}x smaller than the smallest peer file "
            f"({next_smallest.method})"
            if size_ratio > 1
            else f"its {dc.size_bytes:,}-byte file is {1 / size_ratio:.1f}x larger than "
            f"{next_smallest.method}'s"
        )
        best = max(peers, key=lambda c: c.top1)
        lost = 100 * (best.top1 - dc.top1)
        accurate += lost <= 0
        accuracy = f"top-1 {100 * (dc.top1 - base.top1):+.2f} pp against float, " + (
            f"{lost:.2f} pp below the most accurate peer ({best.method})"
            if lost > 0
            else f"at or above every peer (best: {best.method}, {-lost:.2f} pp below DC)"
        )
        ratios = {c.method: c.latency_ms[1] / dc.latency_ms[1] for c in others}
        faster_than = [m for m, x in ratios.items() if x > 1]
        slower_than = {m: x for m, x in ratios.items() if x <= 1}
        fastest += not slower_than
        speed = (
            f"at batch 1 it is {base.latency_ms[1] / dc.latency_ms[1]:.2f}x float's speed, "
            f"faster than {len(faster_than)} of {len(others)} contenders"
        )
        if slower_than:
            speed += " and slower than " + ", ".join(
                f"{m} (at {x:.2f}x DC's time)" for m, x in slower_than.items()
            )
        sentences.append(f"{r.label}: {size}; {accuracy}; {speed}.")
    n = len(results)
    sentences.append(
        f"Across the {n} networks the DC file is the smallest in {smallest}/{n}, at least as "
        f"accurate as every peer in {accurate}/{n} and the fastest at batch 1 in {fastest}/{n} "
        f"(one test image is {100 / min(r.test_images for r in results):.2f} pp)."
    )
    return " ".join(sentences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke run: 1 epoch, 1,200 images, 5 rounds, b1")
    add("--epochs", type=int, default=None, help="float training epochs (4; --quick 1)")
    add("--limit", type=int, default=None, help="mnist5k images used (all 5,000; --quick 1,200)")
    add(
        "--retrain-epochs",
        type=int,
        default=None,
        help="epochs of every DC retraining stage (default: scaled as the survey scales them)",
    )
    add("--threads", type=int, default=1, help="torch threads when timing")
    add(
        "--train-threads",
        type=int,
        default=os.cpu_count() or 1,
        help="torch threads when training (default: every core)",
    )
    add("--repeats", type=int, default=30, help="timed rounds at batch 1")
    add("--warmup", type=int, default=3, help="untimed rounds")
    add(
        "--batches",
        type=int,
        nargs="+",
        default=None,
        help="batch sizes timed (default 1 64; --quick 1); 1 is always timed",
    )
    add("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    if args.epochs is None:
        args.epochs = 1 if args.quick else FULL_EPOCHS
    if args.limit is None and args.quick:
        args.limit = 1200
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 5), min(args.warmup, 1)
    args.batches = sorted({1, *(args.batches or ([1] if args.quick else [1, 64]))})
    survey = SurveyContext(SurveyConfig(quick=args.quick, epochs=args.epochs), progress=False)

    load_before = os.getloadavg()[0]
    print(describe_target())
    print(
        f"torch {torch.__version__}, quantized engine {torch.backends.quantized.engine}, "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, {os.cpu_count()} cores; timing "
        f"with {args.threads} torch thread(s) (training with {args.train_threads}), "
        f"{args.repeats} rounds at batch 1 (max(5, {args.repeats}//5) above) after "
        f"{args.warmup} warm-up, medians; 1-min load average {load_before:.2f}"
    )
    if load_before >= 1.0:
        print(f"warning: load average {load_before:.2f}: other processes share the cores")
    print(
        "Columns: x DC = contender / DC file (bytes; batch-1 and batch-64 median latency): "
        "> 1 means the DC file is smaller / faster; vs DC pp = contender top-1 minus DC's; "
        "x float = contender batch-1 latency / the float network's."
    )
    start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label in NETWORKS:
            result = run_network(label, args, survey, Path(tmp))
            print(render_table(result, args.batches), flush=True)
            results.append(result)
    summary = summarize(results)
    print(f"\nSummary. {summary}")
    seconds = time.perf_counter() - start
    print(f"({seconds:.0f} s in all; 1-min load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after, this process included)")  # fmt: skip
    if args.json is not None:
        report = {
            "target": describe_target(),
            "torch": torch.__version__,
            "quantized_engine": torch.backends.quantized.engine,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "networks": [asdict(r) for r in results],
            "summary": summary,
            "seconds": seconds,
        }
        atomic_write_text(args.json, json.dumps(report, indent=2))
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
