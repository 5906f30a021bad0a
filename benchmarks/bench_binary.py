"""Bit-packed XNOR layers (netshrink.kernels.binary) vs torch float32, side by side.

    python benchmarks/bench_binary.py [--quick] [--threads 1 2] [--batch 1 64] [--repeats 20]

Each case times a full layer, float32 NCHW in to float32 out, in one process with the two
contenders' runs interleaved (one of each per round, alternating which goes first, each
timed run right after an untimed run of the same contender) after a warm-up, and reports
medians. The binary layer signs and packs its input, gathers the taps
(im2col), runs the XNOR/popcount GEMM and applies ``((dot·α)·K) + bias`` with a given
per-pixel scale ``K``; its weights are packed once beforehand, as torch's are ready-made.
The float side is ``F.conv2d(x, w, b, 1, 1)`` / ``F.linear(x, w, b)``.

numba compiles for the host CPU unless told otherwise. To time the AVX2 code path of the
CI machines on an AVX-512 host, set *both* ``NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=""``
(the name alone keeps the host's AVX-512 features).

Run it on an otherwise idle machine: a second busy process on the 2 cores makes 2-thread
timings meaningless. The 1-minute load average is printed before and after.
"""

import os

# Must precede `import torch` (OpenMP reads it once at load): idle worker threads then spin
# instead of sleeping between runs (see netshrink.profile.latency). numba's OpenMP layer
# loads at its first parallel call, after torch, and binds to torch's libgomp: both
# contenders share one thread pool, so no idle pool spins against the running one.
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import partial  # noqa: E402

import llvmlite.binding as llvm  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import netshrink as ns  # noqa: E402
from netshrink.binarize import BinarizeConfig, binarize_  # noqa: E402
from netshrink.engine.packed import to_packed  # noqa: E402
from netshrink.kernels import binary  # noqa: E402
from netshrink.models.vgg import SmallVGG  # noqa: E402

CONV_CASES = [(64, 56), (128, 28), (256, 14), (512, 14)]  # (channels in = out, map size)
CONV_AIMS = {256: 5.0, 512: 8.0}  # channels -> aimed speed-up over F.conv2d
LINEAR_FEATURES = 4096
LINEAR_AIMS = {1: 20.0}  # batch -> aimed speed-up over F.linear


@dataclass
class Row:
    case: str
    threads: int
    batch: int
    float_ms: float
    binary_ms: float
    aim: float | None

    @property
    def speedup(self) -> float:
        return self.float_ms / self.binary_ms


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    numba.set_num_threads(threads)


def time_interleaved(
    contenders: list[Callable[[], object]], repeats: int, warmup: int
) -> list[float]:
    """Median wall time (ms) of each contender, run alternately: one run of each per round,
    the order reversed every other round. As in ``netshrink.profile.latency``, each timed
    run follows an untimed run of the same contender, so each is timed with its own data
    in cache, as when it runs alone, not after the other one evicted it (F.linear's 64 MB
    of weights evict the binary layer's 2 MB from every cache level)."""
    times: list[list[float]] = [[] for _ in contenders]
    for round_ in range(warmup + repeats):
        order = range(len(contenders)) if round_ % 2 == 0 else reversed(range(len(contenders)))
        for i in order:
            contenders[i]()
            start = time.perf_counter()
            contenders[i]()
            if round_ >= warmup:
                times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) * 1e3 for t in times]


def repeats_for(batch: int, repeats: int) -> int:
    """Fewer rounds for the big batch-64 cases (up to ~0.6 s a float run on one thread)."""
    return repeats if batch <= 8 else max(3, repeats // 4)


def conv_section(threads: list[int], batches: list[int], repeats: int, warmup: int) -> list[Row]:
    """Binary 3x3 conv (stride 1, pad 1, C_in = C_out) vs F.conv2d."""
    rows = []
    rng = np.random.default_rng(0)
    for channels, size in CONV_CASES:
        weight = torch.from_numpy(rng.standard_normal((channels, channels, 3, 3), np.float32))
        bias = torch.from_numpy(rng.standard_normal(channels, np.float32))
        alpha = weight.abs().mean((1, 2, 3)).numpy()
        weight_bits = binary.pack_conv_weight(weight.numpy())
        for batch in batches:
            x = torch.from_numpy(rng.standard_normal((batch, channels, size, size), np.float32))
            scale = rng.random((batch, size, size), np.float32)
            run_float = partial(F.conv2d, x, weight, bias, 1, 1)
            run_binary = partial(
                binary.binary_conv2d,
                x.numpy(),
                weight_bits,
                channels,
                (3, 3),
                (1, 1),
                (1, 1),
                alpha,
                scale,
                bias.numpy(),
            )
            for t in threads:
                set_threads(t)
                float_ms, binary_ms = time_interleaved(
                    [run_float, run_binary], repeats_for(batch, repeats), warmup
                )
                case = f"conv3x3 {channels}ch {size}x{size}"
                rows.append(Row(case, t, batch, float_ms, binary_ms, CONV_AIMS.get(channels)))
                print(render_row(rows[-1]), flush=True)
    return rows


def linear_section(threads: list[int], batches: list[int], repeats: int, warmup: int) -> list[Row]:
    """Binary fully connected 4096 -> 4096 vs F.linear."""
    rows = []
    rng = np.random.default_rng(1)
    n = LINEAR_FEATURES
    weight = torch.from_numpy(rng.standard_normal((n, n), np.float32))
    bias = torch.from_numpy(rng.standard_normal(n, np.float32))
    alpha = weight.abs().mean(1).numpy()
    weight_bits = binary.pack_rows(weight.numpy())
    for batch in batches:
        x = torch.from_numpy(rng.standard_normal((batch, n), np.float32))
        scale = x.abs().mean(1).numpy()
        run_float = partial(F.linear, x, weight, bias)
        run_binary = partial(
            binary.binary_linear, x.numpy(), weight_bits, n, alpha, scale, bias.numpy()
        )
        for t in threads:
            set_threads(t)
            float_ms, binary_ms = time_interleaved(
                [run_float, run_binary], repeats_for(batch, repeats), warmup
            )
            case = f"linear {n}->{n}"
            rows.append(Row(case, t, batch, float_ms, binary_ms, LINEAR_AIMS.get(batch)))
            print(render_row(rows[-1]), flush=True)
    return rows


# Whole networks in XNOR-Net's block order: label -> builder of the float twin.
NETWORKS = {
    "lenet5 xnor": lambda: ns.create("lenet5", order="xnor"),
    "vgg_small xnor": lambda: ns.create("vgg_small", order="xnor"),
    "vgg_small x2 width xnor": lambda: SmallVGG((128, 256, 512), 1024, order="xnor"),
}


def network_section(threads: list[int], batches: list[int], repeats: int, warmup: int) -> list[Row]:
    """A whole XNOR network on the packed engine (binary layers on the kernels, the first
    and last layer, BatchNorm and pooling in torch) vs its float twin: the same network
    before binarization, end to end from a float32 image batch to the logits."""
    rows = []
    for label, build in NETWORKS.items():
        torch.manual_seed(0)
        twin = build().train()
        with torch.no_grad():  # BatchNorm statistics that are not the identity
            for _ in range(3):
                twin(torch.randn(16, 1, 28, 28))
        twin.eval()
        model = build()
        model.load_state_dict(twin.state_dict())
        binarize_(model, BinarizeConfig(mode="xnor"))
        packed, notes = to_packed(model.eval())
        assert all(n.engine == "packed" for n in notes), notes
        for batch in batches:
            x = torch.randn(batch, 1, 28, 28)
            with torch.inference_mode():
                assert torch.equal(packed(x), model(x))  # the engine is exact

                run_float, run_packed = partial(twin, x), partial(packed, x)
                for t in threads:
                    set_threads(t)
                    float_ms, binary_ms = time_interleaved(
                        [run_float, run_packed], repeats_for(batch, repeats), warmup
                    )
                    rows.append(Row(f"net {label}", t, batch, float_ms, binary_ms, None))
                    print(render_row(rows[-1]), flush=True)
    return rows


HEADER = (
    f"{'case':<30} {'thr':>3} {'batch':>5} {'float ms':>9} {'binary ms':>9} "
    f"{'speed-up':>8} {'aim':>5}"
)


def render_row(row: Row) -> str:
    aim = (
        ""
        if row.aim is None
        else f"{row.aim:>4.0f}x {'pass' if row.speedup >= row.aim else 'MISS'}"
    )
    return (
        f"{row.case:<30} {row.threads:>3} {row.batch:>5} {row.float_ms:>9.3f} "
        f"{row.binary_ms:>9.3f} {row.speedup:>7.1f}x {aim}"
    )


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        return "unknown CPU"


def describe_target() -> str:
    """The CPU and what numba compiles for: AVX-512 or not decides the popcount code."""
    cpu = numba.config.CPU_NAME or llvm.get_host_cpu_name()
    features = numba.config.CPU_FEATURES
    if features is None:
        avx512 = llvm.get_host_cpu_features().get("avx512vpopcntdq", False)
        source = "host features"
    else:
        avx512 = "+avx512vpopcntdq" in features
        source = f"NUMBA_CPU_FEATURES={features!r}"
    return (
        f"{cpu_model()} ({llvm.get_host_cpu_name()}); numba target {cpu} ({source}): "
        f"{'AVX-512 VPOPCNTDQ' if avx512 else 'no AVX-512 VPOPCNTDQ (AVX2 popcount)'}; "
        f"numba {numba.__version__}, torch {torch.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds (batch <= 8)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds per case")
    parser.add_argument("--quick", action="store_true", help="batch 1, 5 rounds, 1 warm-up")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.repeats, args.warmup = [1], 5, 1

    print(describe_target())
    load_before = os.getloadavg()[0]
    print(
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, {os.cpu_count()} cores, "
        f"1-min load {load_before:.2f}"
    )
    if load_before >= 1.0:
        print(f"warning: load average {load_before:.2f}: other processes share the cores")
    start = time.perf_counter()
    print(HEADER)
    print("-" * len(HEADER))
    rows = conv_section(args.threads, args.batch, args.repeats, args.warmup)
    rows += linear_section(args.threads, args.batch, args.repeats, args.warmup)
    rows += network_section(args.threads, args.batch, args.repeats, args.warmup)
    missed = [r for r in rows if r.aim is not None and r.speedup < r.aim]
    print(
        f"({time.perf_counter() - start:.0f} s of timing; {len(missed)} of "
        f"{sum(r.aim is not None for r in rows)} aims missed; numba threading layer "
        f"{numba.threading_layer()}; 1-min load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after, this process included)"
    )


if __name__ == "__main__":
    main()
