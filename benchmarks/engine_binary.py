"""Whole XNOR networks on the packed engine vs the dense float network, batch 1, side by side.

    OMP_WAIT_POLICY=ACTIVE python benchmarks/engine_binary.py [--threads 1 2] [--repeats 50]

Each network is built twice from one seed: the float network in XNOR block order (the dense
baseline, torch float32, not binarized) and the same network binarized in XNOR mode
(:func:`netshrink.binarize.binarize_`, default config, so with XNOR-Net's input scale ``K``).
The binarized network runs on three engines: ``layers``, the packed engine layer by layer
(``to_packed(fuse=False)``: each popcount layer a numba call, BatchNorm, Hardtanh and pools
PyTorch ops between them); ``stages``, the packed engine with each
``BatchNorm → Hardtanh → binary layer → max pool`` chain fused into one stage
(``to_packed``, the default); ``auto`` (``to_auto``: the stages, and the real-valued first
and last layers on the fused engine). All run end to end from a float32 image to the logits;
the contenders' runs are interleaved after a warm-up (one of each per round, the order
alternating, each timed run right after an untimed run of the same contender, as in
``benchmarks/bench_binary.py``) and their medians compared; the speed-up and its aim are the
stages engine's over dense. ``exact``: ``layers``' logits equal the float simulation's to
the bit; ``max diff``: the largest absolute logit difference of ``stages`` from the float
simulation (float32 rounding: ``K`` is summed in another order), ``top-1``: whether both
pick the same class for every probe image.

Run it on an otherwise idle machine: a second busy process on the 2 cores makes 2-thread
timings meaningless.
"""

import os

# Must precede `import torch`: idle OpenMP workers spin instead of sleeping between runs.
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import argparse  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

# Run as a script or loaded by bench_engine.py: benchmarks/ is on the path either way.
from bench_binary import describe_target, time_interleaved  # noqa: E402
from torch import nn  # noqa: E402

import netshrink as ns  # noqa: E402
from netshrink.binarize import BinarizeConfig, binarize_  # noqa: E402
from netshrink.engine.auto import to_auto  # noqa: E402
from netshrink.engine.packed import to_packed  # noqa: E402
from netshrink.kernels import binary  # noqa: E402
from netshrink.models.vgg import SmallVGG  # noqa: E402

# label -> (builder of the float network in XNOR block order, aimed speed-up at batch 1)
NETWORKS: dict[str, tuple[Callable[[], nn.Module], float]] = {
    "lenet5": (lambda: ns.create("lenet5", order="xnor"), 1.5),
    "vgg_small": (lambda: ns.create("vgg_small", order="xnor"), 4.0),
    "vgg_small x2 width": (lambda: SmallVGG((128, 256, 512), 1024, order="xnor"), 6.0),
}
BATCH = 1


def networks(seed: int = 0) -> dict[str, tuple[nn.Module, nn.Module, dict, float]]:
    """label -> (dense float network, binarized float simulation, engines by name, aim)."""
    built = {}
    for label, (build, aim) in NETWORKS.items():
        torch.manual_seed(seed)
        dense = build().train()
        with torch.no_grad():  # BatchNorm statistics that are not the identity
            for _ in range(3):
                dense(torch.randn(16, 1, 28, 28))
        dense.eval()
        binary = build()
        binary.load_state_dict(dense.state_dict())
        binarize_(binary, BinarizeConfig(mode="xnor"))
        binary.eval()
        engines = {}
        for name, convert in ENGINES.items():
            engines[name], notes = convert(binary)
            assert {n.engine for n in notes} <= {"packed", "fused"}, notes
        built[label] = (dense, binary, engines, aim)
    return built


ENGINES: dict[str, Callable] = {
    "layers": partial(to_packed, fuse=False),
    "stages": to_packed,
    "auto": partial(to_auto, warn=False),
}


def _start_thread_pools() -> None:
    """Run torch and numba once on every core before timing anything. numba's OpenMP layer
    shares torch's libgomp pool; when its first parallel call ran on one thread, later
    2-thread torch runs on this machine took ~70 ms instead of ~0.4 ms (measured)."""
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    with torch.inference_mode():
        torch.nn.functional.conv2d(torch.ones(1, 8, 16, 16), torch.ones(8, 8, 3, 3))
    binary.binary_gemm(np.zeros((64, 1), np.uint64), np.zeros((64, 1), np.uint64), 64)


def section(threads: int, repeats: int, warmup: int = 5) -> list[dict]:
    """One row per network at batch 1 on ``threads`` threads (torch's and numba's)."""
    _start_thread_pools()
    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    rows = []
    for label, (dense, simulated, engines, aim) in networks().items():
        x = torch.randn(BATCH, 1, 28, 28)
        probes = (x, torch.randn(16, 1, 28, 28))
        with torch.inference_mode():
            exact = all(
                torch.equal(engines[name](p), simulated(p))
                for name in ("layers", "stages")
                for p in probes
            )
            auto_diff = max(float((engines["auto"](p) - simulated(p)).abs().max()) for p in probes)
            times = time_interleaved(
                [partial(dense, x), *(partial(e, x) for e in engines.values())], repeats, warmup
            )
        dense_ms, layers_ms, stages_ms, auto_ms = times
        speedup = dense_ms / stages_ms
        rows.append(
            {
                "model": label,
                "batch": BATCH,
                "threads": threads,
                "dense_ms": dense_ms,
                "layers_ms": layers_ms,
                "stages_ms": stages_ms,
                "auto_ms": auto_ms,
                "speedup": speedup,
                "auto_speedup": dense_ms / auto_ms,
                "aim": aim,
                "met": speedup >= aim,
                "exact": exact,
                "auto_diff": auto_diff,
            }
        )
    return rows


HEADER = (
    f"{'model':<20} {'thr':>3} {'dense ms':>8} {'layers':>8} {'stages':>8} {'auto':>8} "
    f"{'speed-up':>8} {'auto x':>7} {'aim':>5} {'met':>4} {'exact':>5} {'auto diff':>9}"
)


def render_row(row: dict) -> str:
    return (
        f"{row['model']:<20} {row['threads']:>3} {row['dense_ms']:>8.3f} "
        f"{row['layers_ms']:>8.3f} {row['stages_ms']:>8.3f} {row['auto_ms']:>8.3f} "
        f"{row['speedup']:>7.2f}x {row['auto_speedup']:>6.2f}x {row['aim']:>4.1f}x "
        f"{'yes' if row['met'] else 'MISS':>4} {'yes' if row['exact'] else 'NO':>5} "
        f"{row['auto_diff']:>9.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=50, help="timed rounds")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(describe_target())
    print(
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, {os.cpu_count()} cores, "
        f"1-min load {load:.2f}"
    )
    print(HEADER)
    print("-" * len(HEADER))
    rows = []
    for threads in args.threads:
        for row in section(threads, args.repeats):
            rows.append(row)
            print(render_row(row), flush=True)
    missed = [r["model"] + f" ({r['threads']} thr)" for r in rows if not r["met"]]
    print(f"aims missed: {', '.join(missed) if missed else 'none'}")


if __name__ == "__main__":
    main()
