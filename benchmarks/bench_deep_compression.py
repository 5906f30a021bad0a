"""Deep Compression (Han, Mao, Dally 2016) figures, reproduced side by side in one run.

    python benchmarks/bench_deep_compression.py [--quick] [--sections 1,2,3,4,5] [--repeats 5]

Sections (each prints its own table; a summary of every target ends the run):

1. LeNet-300-100 and LeNet-5 on mnist5k with the shipped recipes: accuracy kept and
   compression ratio against the paper's 40x and 39x (Tables 2-3), on every baseline of
   the ``deep-compression`` sweep (5 seeds x 10 and 20 epochs): per baseline, mean ± sd,
   and the worst case checked against the aims.
2. SqueezeNet 1.0 at ImageNet shape with Table 1's densities, untrained weights, no data:
   file size against the paper's 0.47 MB (6-bit) and 0.66 MB (8-bit), nonzero parameters
   against 421,098, and the ratio to AlexNet's fp32 size (the "510x" and "363x").
3. AlexNet-size pack/unpack against torch.save/torch.load of the dense checkpoint, timed
   interleaved (one run of each per round, alternating which goes first), medians.
4. Entropy coding: Huffman data bits of every stream against the empirical entropy bound,
   and the whole .nsz against zstd -19 and gzip -9 of the dense fp32 checkpoint.
5. 1-D k-means against scikit-learn's KMeans on 1M values, same linear init.
6. (named only) SqueezeNet 1.0 on mnist5k with the Table-1 recipe, on every baseline of the
   ``deep-compression`` sweep as in section 1: the worst top-1 change against the aim.

Times are only reported as ratios of contenders measured in the same process; absolute
medians are printed for context. The machine should be otherwise idle (the 1-minute load
average is printed). zstd -19 of the 233 MiB AlexNet checkpoint alone takes minutes.
"""

import os

# Must precede `import torch`: OpenMP reads it once at load (see bench_profile_speedup.py).
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import argparse  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import zstandard  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from torch import nn  # noqa: E402

from netshrink import models  # noqa: E402
from netshrink.layer_patterns import compressible_layers  # noqa: E402
from netshrink.nsz import (  # noqa: E402
    EncodingConfig,
    compression_report,
    load_into,
    pack,
    parse_nsz,
    render_report,
    unpack,
)
from netshrink.nsz.codec import section_tags  # noqa: E402
from netshrink.nsz.streams import decode_stream, stream_info  # noqa: E402
from netshrink.primitives import kmeans_1d  # noqa: E402
from netshrink.primitives.huffman import entropy_bits  # noqa: E402
from netshrink.prune import PruneConfig, prune_  # noqa: E402
from netshrink.quantize import WeightSharingConfig, share_weights_  # noqa: E402
from netshrink.runs.compress import compress  # noqa: E402
from netshrink.runs.load import load_trained  # noqa: E402
from netshrink.runs.recipe import (  # noqa: E402
    PruneStage,
    QuantizeStage,
    load_recipe,  # noqa: E402
)
from netshrink.sweep import SweepConfig, render_text, run_sweep  # noqa: E402
from netshrink.sweep.studies import MAX_DROP, plan  # noqa: E402
from netshrink.train import evaluate, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "bench"
RECIPES = ROOT / "recipes"


# SqueezeNet paper (Iandola et al. 2016), Table 2 with Deep Compression.
SQUEEZENET = {  # recipe -> (bits, paper MB, paper ratio to AlexNet)
    "squeezenet1_0_table1.yaml": (6, 0.47, 510.0),
    "squeezenet1_0_table1_8bit.yaml": (8, 0.66, 363.0),
}
SQUEEZENET_NONZEROS = 421_098  # Table 1, biases included
SQUEEZENET_RELEASED_8BIT = 675_763  # bytes of the released 8-bit file
ALEXNET_PARAMS = 61_100_840
ALEXNET_FP32 = 4 * ALEXNET_PARAMS  # the "240 MB" model

# Deep Compression Table 4: fraction of AlexNet's weights kept per layer.
ALEXNET_DENSITY = {
    "features.conv1": 0.84,
    "features.conv2": 0.38,
    "features.conv3": 0.35,
    "features.conv4": 0.37,
    "features.conv5": 0.37,
    "classifier.fc6": 0.09,
    "classifier.fc7": 0.09,
    "classifier.fc8": 0.25,
}
ALEXNET_PAPER_RATIO, ALEXNET_PAPER_RATIO_PQ = 35.0, 27.0
UNPACK_AIM = 2.0  # unpack within 2x of loading the dense checkpoint
ENTROPY_AIM = 1.01  # Huffman data bits within 1% of the entropy bound
KMEANS_SPEED_AIM, KMEANS_INERTIA_AIM = 10.0, 1.001


@dataclass
class Target:
    figure: str
    ours: str
    aim: str
    passed: bool


@dataclass
class Context:
    args: argparse.Namespace
    targets: list[Target] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # label -> .nsz bytes
    alexnet: dict[str, Any] | None = None

    def check(self, figure: str, ours: str, aim: str, passed: bool) -> None:
        self.targets.append(Target(figure, ours, aim, bool(passed)))


def banner(title: str) -> None:
    print(f"\n{'=' * 100}\n{title}\n{'=' * 100}")


def mib(n: float) -> str:
    return f"{n / 2**20:.3f} MiB"


def median_interleaved(
    contenders: dict[str, Callable[[], Any]], repeats: int, warmup: int
) -> dict[str, float]:
    """Median seconds of each contender; every round runs each once, rotating the first."""
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            contenders[name]()
            elapsed = time.perf_counter() - start
            if round_ >= warmup:
                times[name].append(elapsed)
    return {name: float(np.median(t)) for name, t in times.items()}


def unpack_bytes(data: bytes) -> nn.Module:
    nsz = parse_nsz(data)
    return load_into(nsz, models.create(nsz.model_name, **nsz.model_args))


# 1. LeNets ---------------------------------------------------------------------------------


def section_lenet(ctx: Context) -> None:
    banner(
        "1. LeNet-300-100 and LeNet-5 on mnist5k with the shipped recipes (Tables 2-3), "
        "on every baseline of the grid"
    )
    seeds, epochs = (2, [10]) if ctx.args.quick else (ctx.args.seeds, [10, 20])
    grid = {"model": ["lenet300_100"] if ctx.args.quick else ["lenet300_100", "lenet5"],
            "epochs": epochs}  # fmt: skip
    config = SweepConfig("deep-compression", grid, seeds=seeds, out=str(RUNS / "dc-grid"))
    result = run_grid(ctx, config)
    for name in grid["model"]:
        rows = [r for r in result.rows if r.params["model"] == name]
        check_worst(ctx, rows, name)
    if ctx.args.control:
        dense_control(config, result)


def section_squeezenet_grid(ctx: Context) -> None:
    banner(
        "6. SqueezeNet 1.0 on mnist5k (28 px, 10 classes) with the Table-1 recipes (6 and "
        "8 bits), on every baseline of the grid"
    )
    seeds, epochs = (2, [10]) if ctx.args.quick else (ctx.args.seeds, [10, 20])
    recipes = [Path(name).stem for name in SQUEEZENET]
    grid = {"model": ["squeezenet1_0"], "recipe": recipes[:1] if ctx.args.quick else recipes,
            "epochs": epochs}  # fmt: skip
    out = str(RUNS / "dc-grid-squeezenet")
    result = run_grid(ctx, SweepConfig("deep-compression", grid, seeds=seeds, out=out))
    for recipe in grid["recipe"]:  # the ratio aims are section 2's (against AlexNet)
        check_worst(ctx, [r for r in result.rows if r.params["recipe"] == recipe], recipe)


def run_grid(ctx: Context, config: SweepConfig) -> Any:
    """Run the ``deep-compression`` study of ``config`` and print every baseline's row and
    the study's table; keep the last epochs' seed-0 file of each model for section 4."""
    grid = config.grid
    print(
        f"netshrink sweep deep-compression: models {grid['model']} x recipes "
        f"{grid.get('recipe', ['shipped'])} x epochs {grid['epochs']} x {config.seeds} seeds, "
        "each baseline trained with its seed and "
        f"compressed with the recipe (trials cached under {config.out})"
    )
    result = run_sweep(config, jobs=ctx.args.jobs, progress=False)
    if result.failed:
        print(f"{len(result.failed)} trials failed: {[o.key for o in result.failed]}")
    print(f"\n{'model':<14} {'recipe':<26} {'epochs':>6} {'seed':>4} {'base top-1':>10} "
          f"{'comp top-1':>10} {'change':>7} {'file bytes':>10} {'ratio':>7}")  # fmt: skip
    for group in plan(config)[1]:
        for seed, key in zip(config.seed_list, group.keys, strict=True):
            r = result.outcomes[key].result
            if r is None:
                continue
            print(
                f"{group.params['model']:<14} {group.params['recipe']:<26} "
                f"{group.params['epochs']:>6} {seed:>4} "
                f"{100 * r['baseline_top1']:>9.2f}% {100 * r['test_top1']:>9.2f}% "
                f"{r['change_points']:>+6.1f}p {r['file_bytes']:>10,} {r['ratio']:>6.1f}x"
            )
            if seed == 0 and group.params["epochs"] == grid["epochs"][-1]:
                folder = Path(config.out) / "trials" / key
                ctx.files[group.params["model"]] = (folder / "model.nsz").read_bytes()
    print()
    print(render_text(result.rows))
    print(
        "(test split: 20% of mnist5k, 1,000 images: one image is 0.1 pt; the baselines' "
        "own seed-to-seed spread is printed as the baseline column's range above)"
    )
    return result


def check_worst(ctx: Context, rows: list[Any], name: str) -> None:
    """The worst ratio (against the rows' ratio aim, where they have one: the study's, from
    the papers) and the worst top-1 change over every baseline of the study's ``rows``."""
    ratios = [x for r in rows for x in r.ratios]
    changes = [x for r in rows for x in r.changes]
    if not ratios:
        return
    n = len(ratios)
    paper_ratio = rows[0].params["aim_ratio"]
    if paper_ratio is not None:
        ctx.check(f"{name} worst ratio of {n}", f"{min(ratios):.1f}x", f">= {paper_ratio:g}x",
                  min(ratios) >= paper_ratio)  # fmt: skip
    ctx.check(
        f"{name} worst top-1 change of {n}", f"{min(changes):+.1f} pt",
        f">= -{MAX_DROP} pt", min(changes) >= -MAX_DROP - 1e-9,
    )  # fmt: skip


def dense_control(config: SweepConfig, result: Any) -> None:
    """Each baseline retrained dense with its recipe's training (every prune round's and the
    fine-tuning's, ±2 px shifts included) but nothing pruned or shared: what the retraining
    alone is worth, so that compressed − control is what compression itself costs."""
    print(
        "\nDense control: each baseline given the recipe's retraining without pruning or "
        "weight sharing (same epochs, rates and shifts)"
    )
    print(f"{'model':<14} {'epochs':>6} {'seed':>4} {'compressed':>10} {'control':>8} "
          f"{'comp - control':>14}")  # fmt: skip
    costs: dict[str, list[float]] = {}
    gains: dict[str, list[float]] = {}
    for group in plan(config)[1]:
        recipe = load_recipe(group.params["recipe"])
        for seed, key in zip(config.seed_list, group.keys, strict=True):
            r = result.outcomes[key].result
            if r is None:
                continue
            base_key = "baseline," + key.split(",", 1)[1].replace(f",recipe={recipe_key(key)}", "")
            trained = load_trained(Path(config.out) / "trials" / base_key / "model.pt")
            data = trained.load_data(config.data)
            model = trained.model
            for stage in recipe.stages:
                configs = []
                if isinstance(stage, PruneStage) and stage.retrain is not None:
                    configs = [stage.retraining(k) for k in range(1, stage.rounds + 1)]
                elif isinstance(stage, QuantizeStage) and stage.finetune is not None:
                    configs = [stage.finetune]
                for train_config in configs:
                    train(model, data, train_config, progress=False)
            control = evaluate(model, data.test)["top1"]
            gain = 100 * (control - r["baseline_top1"])
            cost = 100 * (r["test_top1"] - control)
            name = group.params["model"]
            gains.setdefault(name, []).append(gain)
            costs.setdefault(name, []).append(cost)
            print(
                f"{name:<14} {group.params['epochs']:>6} {seed:>4} "
                f"{r['change_points']:>+9.1f}p {gain:>+7.1f}p {cost:>+13.1f}p"
            )
    for name in costs:
        g, c = gains[name], costs[name]
        print(
            f"{name}: the retraining alone {statistics.fmean(g):+.2f} ± {statistics.stdev(g):.2f} "
            f"pt over the baseline; compressed - control {statistics.fmean(c):+.2f} ± "
            f"{statistics.stdev(c):.2f} pt (worst {min(c):+.1f}) over {len(c)} baselines"
        )


def recipe_key(key: str) -> str:
    return next(p.split("=", 1)[1] for p in key.split(",") if p.startswith("recipe="))


# 2. SqueezeNet -----------------------------------------------------------------------------


def section_squeezenet(ctx: Context) -> None:
    banner("2. SqueezeNet 1.0 at ImageNet shape with Table 1's densities (no data, untrained)")
    print(
        "Weights: the model's seed-0 initialization (1000 classes, 3x224x224); no data, so "
        "nothing is retrained: the sizes depend on the densities and bits, not on training."
    )
    rows = []
    for recipe_file, (bits, paper_mb, paper_ratio) in SQUEEZENET.items():
        torch.manual_seed(0)
        result = compress(
            models.create("squeezenet1_0"), load_recipe(RECIPES / recipe_file), None,
            model_name="squeezenet1_0", model_args={}, input_size=(3, 224, 224),
            progress=False,
        )  # fmt: skip
        ctx.files[f"squeezenet1_0 {bits}-bit"] = result.data
        dense = unpack_bytes(result.data)
        nonzeros = sum(
            int(torch.count_nonzero(p)) if p.dim() > 1 else p.numel() for p in dense.parameters()
        )  # biases count as kept, as in Table 1
        nbytes = result.report.file_bytes
        vs_alexnet = ALEXNET_FP32 / nbytes
        rows.append((bits, nbytes, paper_mb, nonzeros, vs_alexnet, paper_ratio))
        ctx.check(
            f"squeezenet {bits}-bit size", mib(nbytes), f"<= {paper_mb} MiB",
            nbytes <= paper_mb * 2**20,
        )  # fmt: skip
        ctx.check(
            f"squeezenet {bits}-bit vs AlexNet fp32", f"{vs_alexnet:.0f}x", f">= {paper_ratio:g}x",
            vs_alexnet >= paper_ratio,
        )  # fmt: skip
        if bits == 8:
            ctx.check(
                "squeezenet 8-bit vs released file", f"{nbytes:,} B",
                f"<= {SQUEEZENET_RELEASED_8BIT:,} B", nbytes <= SQUEEZENET_RELEASED_8BIT,
            )  # fmt: skip
    print(
        f"{'bits':>4} {'file bytes':>11} {'MiB':>7} {'paper MB':>8} {'nonzeros':>9} "
        f"{'paper':>9} {'vs AlexNet fp32':>15} {'paper':>6}"
    )
    for bits, nbytes, paper_mb, nonzeros, vs_alexnet, paper_ratio in rows:
        print(
            f"{bits:>4} {nbytes:>11,} {nbytes / 2**20:>7.3f} {paper_mb:>8.2f} {nonzeros:>9,} "
            f"{SQUEEZENET_NONZEROS:>9,} {vs_alexnet:>14.0f}x {paper_ratio:>5.0f}x"
        )
    nonzeros = rows[0][3]
    ctx.check(
        "squeezenet nonzero parameters", f"{nonzeros:,}", f"{SQUEEZENET_NONZEROS:,} +-0.1%",
        abs(nonzeros - SQUEEZENET_NONZEROS) <= 1e-3 * SQUEEZENET_NONZEROS,
    )  # fmt: skip
    print(
        f"AlexNet fp32: {ALEXNET_PARAMS:,} x 4 bytes = {ALEXNET_FP32:,} B; released 8-bit "
        f"file {SQUEEZENET_RELEASED_8BIT:,} B ({SQUEEZENET_RELEASED_8BIT / 2**20:.3f} MiB)"
    )


# 3. AlexNet pack/unpack --------------------------------------------------------------------


def build_alexnet(ctx: Context) -> dict[str, Any]:
    """AlexNet with Gaussian weights, pruned to Table 4, shared 8/5 bits; packed once."""
    if ctx.alexnet is not None:
        return ctx.alexnet
    start = time.perf_counter()
    torch.manual_seed(0)
    model = models.create("alexnet")
    layers = compressible_layers(model)
    assert set(layers) == set(ALEXNET_DENSITY), list(layers)
    with torch.no_grad():
        for layer in layers.values():  # stand-in for trained, bell-shaped weights
            layer.weight.normal_(0.0, float(layer.weight.std()))
    prune_(model, PruneConfig(sparsity={k: 1 - v for k, v in ALEXNET_DENSITY.items()}))
    share_weights_(model, WeightSharingConfig(conv_bits=8, fc_bits=5))
    encoding = EncodingConfig(conv_index_bits=4, fc_index_bits=4, huffman=True)
    data = pack(model, None, encoding, model_name="alexnet", model_args={})
    ctx.files["alexnet"] = data
    ctx.alexnet = {"model": model, "encoding": encoding, "data": data}
    print(f"(AlexNet built, pruned, shared and packed in {time.perf_counter() - start:.0f} s)")
    return ctx.alexnet


def section_alexnet(ctx: Context) -> None:
    banner("3. AlexNet-size pack/unpack vs torch.save/torch.load of the dense checkpoint")
    print(
        "Stand-in weights: each conv/fc weight drawn from N(0, std of its default init) "
        "(trained weights are bell-shaped too; Huffman gains depend on the real histogram), "
        "pruned to Table 4 (conv1 84%, conv2 38%, conv3 35%, conv4 37%, conv5 37%, fc6 9%, "
        "fc7 9%, fc8 25% kept), shared 8-bit conv / 5-bit fc, 4-bit relative index, Huffman."
    )
    built = build_alexnet(ctx)
    model, encoding = built["model"], built["encoding"]
    report = compression_report(parse_nsz(built["data"]))
    print(render_report(report))

    with tempfile.TemporaryDirectory() as tmp:
        nsz_path, pt_path = Path(tmp) / "alexnet.nsz", Path(tmp) / "alexnet.pt"
        pack(model, nsz_path, encoding, model_name="alexnet", model_args={})
        dense = unpack(nsz_path).state_dict()  # the pruned and quantized model, fp32 dense
        torch.save(dense, pt_path)
        dense_bytes = pt_path.stat().st_size

        def load_into_skeleton() -> nn.Module:
            state = torch.load(pt_path, weights_only=True)
            with torch.device("meta"):  # as unpack does: allocate nothing before the data
                skeleton = models.create("alexnet")
            skeleton.load_state_dict(state, assign=True)
            return skeleton.eval()

        repeats, warmup = ctx.args.repeats, ctx.args.warmup
        saving = median_interleaved(
            {
                "pack": lambda: pack(
                    model, nsz_path, encoding, model_name="alexnet", model_args={}
                ),
                "torch.save": lambda: torch.save(dense, pt_path),
            },
            repeats,
            warmup,
        )
        loading = median_interleaved(
            {
                "unpack": lambda: unpack(nsz_path),
                "torch.load": lambda: torch.load(pt_path, weights_only=True),
                "torch.load + skeleton": load_into_skeleton,
            },
            repeats,
            warmup,
        )
    print(
        f"\n{repeats} interleaved rounds after {warmup} warm-up, median; files in a temporary "
        f"directory (page cache); torch threads {torch.get_num_threads()}"
    )
    print(f"{'ours':<8} {'torch':<34} {'ours s':>8} {'torch s':>8} {'ours/torch':>10}")
    pairs = [
        ("pack", "torch.save", saving),
        ("unpack", "torch.load", loading),
        ("unpack", "torch.load + skeleton", loading),
    ]
    for ours, peer, times in pairs:
        ratio = times[ours] / times[peer]
        print(f"{ours:<8} {peer:<34} {times[ours]:>8.3f} {times[peer]:>8.3f} {ratio:>9.2f}x")
    print(
        "(torch.load + skeleton: torch.load(weights_only=True), the model built on the meta "
        "device and load_state_dict(assign=True), i.e. a usable model like unpack returns)"
    )
    unpack_ratio = loading["unpack"] / loading["torch.load + skeleton"]
    ctx.check(
        "alexnet unpack / (torch.load+skeleton)", f"{unpack_ratio:.2f}x", f"<= {UNPACK_AIM:g}x",
        unpack_ratio <= UNPACK_AIM,
    )  # fmt: skip
    print(
        f"\nfile {report.file_bytes:,} B ({mib(report.file_bytes)}) vs dense checkpoint "
        f"{dense_bytes:,} B ({mib(dense_bytes)}); ratio {report.ratio:.1f}x "
        f"(paper {ALEXNET_PAPER_RATIO:g}x for trained AlexNet), P+Q alone {report.ratio_pq:.1f}x "
        f"(paper {ALEXNET_PAPER_RATIO_PQ:g}x); Huffman saves "
        f"{100 * (1 - report.file_bytes / report.bytes_pq):.1f}% (paper ~22%)"
    )
    # No pass/fail on these ratios: they depend on the weights' histogram, and the stand-in
    # weights are not trained AlexNet's.


# 4. Entropy coding -------------------------------------------------------------------------


def huffman_streams(data: bytes) -> list[tuple[str, str, int, int, float]]:
    """(layer, stream, symbols, data bits, entropy bound bits) of each Huffman stream."""
    nsz = parse_nsz(data)
    rows = []
    for entry, payloads in zip(nsz.entries, nsz.payloads, strict=True):
        for tag, payload in zip(section_tags(entry), payloads, strict=True):
            if tag not in (b"GAP ", b"IDX "):
                continue
            info = stream_info(payload)
            if info.coding != "huffman":
                continue
            symbols = decode_stream(payload)
            bound = entropy_bits(np.bincount(symbols, minlength=1 << info.symbol_bits))
            name = entry["name"].removesuffix(".weight")
            rows.append((name, tag.decode().strip().lower(), info.count, info.n_bits, bound))
    return rows


def peers(data: bytes, zstd_threads: int) -> tuple[int, int, int, float, float]:
    """Bytes of torch.save of the decoded model and of its zstd -19 and gzip -9; seconds."""
    buffer = io.BytesIO()
    torch.save(unpack_bytes(data).state_dict(), buffer)
    dense = buffer.getvalue()
    start = time.perf_counter()
    zstd = len(zstandard.ZstdCompressor(level=19, threads=zstd_threads).compress(dense))
    zstd_s = time.perf_counter() - start
    start = time.perf_counter()
    gz = len(gzip.compress(dense, compresslevel=9))
    return len(dense), zstd, gz, zstd_s, time.perf_counter() - start


def section_entropy(ctx: Context) -> None:
    banner("4. Entropy coding: Huffman vs the entropy bound; the .nsz vs zstd -19 and gzip -9")
    if not ctx.args.quick:
        build_alexnet(ctx)
    if not ctx.files:
        print("no files: run section 1, 2 or 3 with it")
        return
    total_bits = total_bound = 0.0
    for label, data in ctx.files.items():
        rows = huffman_streams(data)
        bits, bound = sum(r[3] for r in rows), sum(r[4] for r in rows)
        total_bits, total_bound = total_bits + bits, total_bound + bound
        ratios = [r[3] / r[4] for r in rows if r[4] > 0]
        print(
            f"\n{label}: {len(rows)} Huffman streams; data bits / entropy bound "
            f"min {min(ratios):.4f} median {np.median(ratios):.4f} max {max(ratios):.4f}, "
            f"total {bits:,.0f} / {bound:,.0f} = {bits / bound:.4f}"
        )
        if label == "alexnet":
            print(
                f"  {'layer':<16} {'stream':<6} {'symbols':>11} {'data bits':>12} "
                f"{'bound bits':>12} {'bits/sym':>8} {'bound/sym':>9} {'ratio':>7}"
            )
            for name, stream, count, n_bits, bound_bits in rows:
                print(
                    f"  {name:<16} {stream:<6} {count:>11,} {n_bits:>12,} {bound_bits:>12,.0f} "
                    f"{n_bits / count:>8.3f} {bound_bits / count:>9.3f} "
                    f"{n_bits / bound_bits:>7.4f}"
                )
    overall = total_bits / total_bound
    print(f"\nall files: {total_bits:,.0f} data bits / {total_bound:,.0f} bound = {overall:.4f}")
    ctx.check(
        "Huffman bits / entropy bound (all)", f"{overall:.4f}", f"<= {ENTROPY_AIM}",
        overall <= ENTROPY_AIM,
    )  # fmt: skip

    print(
        "\nPeers: torch.save of the decoded (pruned, quantized) fp32 state dict, compressed "
        f"whole by zstd level 19 ({ctx.args.zstd_threads} thread(s)) and gzip level 9"
    )
    print(
        f"{'model':<22} {'.nsz':>11} {'torch.save':>12} {'zstd -19':>11} {'zstd/ours':>9} "
        f"{'gzip -9':>11} {'gzip/ours':>9} {'zstd s':>7} {'gzip s':>7}"
    )
    for label, data in ctx.files.items():
        dense, zstd, gz, zstd_s, gzip_s = peers(data, ctx.args.zstd_threads)
        ours = len(data)
        print(
            f"{label:<22} {ours:>11,} {dense:>12,} {zstd:>11,} {zstd / ours:>8.2f}x "
            f"{gz:>11,} {gz / ours:>8.2f}x {zstd_s:>7.1f} {gzip_s:>7.1f}"
        )
        ctx.check(f"{label} zstd-19 / .nsz bytes", f"{zstd / ours:.2f}x", "> 1x", zstd > ours)


# 5. k-means --------------------------------------------------------------------------------


def section_kmeans(ctx: Context) -> None:
    n = 100_000 if ctx.args.quick else 1_000_000
    k = 32
    banner(f"5. 1-D k-means vs scikit-learn KMeans: {n:,} values, {k} clusters, linear init")
    rng = np.random.default_rng(0)
    samples = {"normal": rng.standard_normal(n), "laplace": rng.laplace(size=n)}
    print(
        "Both start from np.linspace(min, max, 32); scikit-learn: KMeans(n_init=1, "
        "algorithm='lloyd', default max_iter=300 and tol=1e-4) on one thread (threadpoolctl: "
        "its OpenMP threads spin and contend on a busy 2-core machine); ours: "
        "kmeans_1d(init='linear'), NumPy on one thread, run to convergence."
    )
    print(
        f"{'values':<8} {'ours s':>8} {'sklearn s':>9} {'speed-up':>8} {'ours iter':>9} "
        f"{'skl iter':>8} {'skl runs':>8} {'inertia ours/sklearn':>20}"
    )
    for label, values in samples.items():
        init = np.linspace(values.min(), values.max(), k).reshape(-1, 1)
        column = values.reshape(-1, 1)

        def fit_sklearn(init=init, column=column) -> KMeans:
            with threadpool_limits(1):  # one thread, as ours
                return KMeans(n_clusters=k, init=init, n_init=1, algorithm="lloyd").fit(column)

        kmeans_1d(values, k, init="linear")  # warm-up
        start = time.perf_counter()
        theirs = fit_sklearn()
        first_sklearn = time.perf_counter() - start
        runs = 3 if first_sklearn < 20 else 1  # a slow sklearn is timed once
        contenders = {"ours": lambda values=values: kmeans_1d(values, k, init="linear")}
        if runs > 1:
            contenders["sklearn"] = fit_sklearn
        times = median_interleaved(contenders, repeats=3, warmup=0)
        sklearn_s = times.get("sklearn", first_sklearn)
        ours = kmeans_1d(values, k, init="linear")
        speedup = sklearn_s / times["ours"]
        inertia = ours.inertia / theirs.inertia_
        print(
            f"{label:<8} {times['ours']:>8.3f} {sklearn_s:>9.3f} {speedup:>7.1f}x "
            f"{ours.iterations:>9} {theirs.n_iter_:>8} {runs:>8} {inertia:>20.6f}"
        )
        ctx.check(
            f"k-means {label} speed-up", f"{speedup:.1f}x", f">= {KMEANS_SPEED_AIM:g}x",
            speedup >= KMEANS_SPEED_AIM,
        )  # fmt: skip
        ctx.check(
            f"k-means {label} inertia ratio", f"{inertia:.6f}", f"<= {KMEANS_INERTIA_AIM}",
            inertia <= KMEANS_INERTIA_AIM,
        )  # fmt: skip
    print(
        "(ours: median of 3 runs after a warm-up; sklearn: median of 3 runs interleaved with "
        "ours after a first fit, or that first fit alone when it took over 20 s)"
    )


SECTIONS = {
    1: section_lenet,
    2: section_squeezenet,
    3: section_alexnet,
    4: section_entropy,
    5: section_kmeans,
    6: section_squeezenet_grid,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true",
        help="LeNet-300-100 only, no AlexNet (sections 3 and 4 on the small files), 100k "
        "values for k-means",
    )  # fmt: skip
    parser.add_argument(
        "--sections", default="1,2,3,4,5",
        help="comma-separated, e.g. 1,3; 6 (SqueezeNet's grid, about an hour on 2 cores) "
        "runs only when named",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (section 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds (section 3)")
    parser.add_argument("--zstd-threads", type=int, default=2, help="zstd worker threads")
    parser.add_argument("--seeds", type=int, default=5, help="baselines per model and epochs (1)")
    parser.add_argument(
        "--control", action="store_true",
        help="section 1: also retrain every baseline dense with its recipe's training",
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=None, help="trials at once (1; default: cores)")
    args = parser.parse_args()
    chosen = sorted({int(s) for s in args.sections.split(",") if s.strip()})
    if unknown := [s for s in chosen if s not in SECTIONS]:
        parser.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    if args.quick and 3 in chosen:
        print("--quick: section 3 (AlexNet) skipped")
        chosen.remove(3)

    ctx = Context(args)
    load_before = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
        f"1-min load average {load_before:.2f}"
    )
    if load_before >= 1.0:
        print(f"warning: load average {load_before:.2f}: other processes share the cores")
    start = time.perf_counter()
    for number in chosen:
        section_start = time.perf_counter()
        SECTIONS[number](ctx)
        print(f"(section {number}: {time.perf_counter() - section_start:.0f} s)")

    banner("Summary: every target")
    width = max([len(t.figure) for t in ctx.targets] + [6])
    print(f"{'figure':<{width}} {'ours':>14} {'paper/aim':>16}  result")
    for t in ctx.targets:
        print(f"{t.figure:<{width}} {t.ours:>14} {t.aim:>16}  {'pass' if t.passed else 'FAIL'}")
    passed = sum(t.passed for t in ctx.targets)
    print(
        f"{passed}/{len(ctx.targets)} targets met; {time.perf_counter() - start:.0f} s in all; "
        f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )


if __name__ == "__main__":
    main()
