"""Theoretical (MAC ratio) vs measured speed-up of compact architectures, side by side.

    python benchmarks/bench_profile_speedup.py [--repeats 20] [--warmup 3]

Each pair is timed in one process with the contenders' runs interleaved (one run of each
per round, alternating which goes first), at batch 1, 3x224x224, with 1 and 2 threads.
Fewer MACs rarely buy a proportional speed-up: depthwise and grouped convolutions and
channel shuffles do little arithmetic per byte moved, so measured/theoretical < 1 is the
expected finding, and this script reports how far below 1 it lands on this machine.

Run it on an otherwise idle machine: with all cores in use, a second process on them makes
multi-thread timings meaningless (on 2 cores, one busy neighbour turned a 0.6 ms forward
into a 50-170 ms one at 2 threads). The 1-minute load average is printed before and after.
"""

import os

# Must precede `import torch`: OpenMP reads it once at load. Without it, idle worker
# threads sleep between runs and waking them adds multi-millisecond stalls (see
# netshrink.profile.latency).
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import argparse  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from netshrink import models  # noqa: E402
from netshrink.profile import count_macs, measure_latency_interleaved  # noqa: E402

INPUT = (3, 224, 224)

# label -> (registry name, builder kwargs)
CONTENDERS = {
    "alexnet": ("alexnet", {}),
    "squeezenet1_0": ("squeezenet1_0", {}),
    "mobilenet_v1 1.0": ("mobilenet_v1", {"width_mult": 1.0}),
    "mobilenet_v1 0.5": ("mobilenet_v1", {"width_mult": 0.5}),
    "shufflenet_v1 g3 1x": ("shufflenet_v1", {"groups": 3, "scale": 1.0}),
    "shufflenet_v1 g3 0.5x": ("shufflenet_v1", {"groups": 3, "scale": 0.5}),
}

# (baseline, faster candidate)
PAIRS = [
    ("alexnet", "squeezenet1_0"),
    ("mobilenet_v1 1.0", "mobilenet_v1 0.5"),
    ("shufflenet_v1 g3 1x", "shufflenet_v1 g3 0.5x"),
    ("alexnet", "shufflenet_v1 g3 1x"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds per pair")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds per pair")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    torch.manual_seed(0)
    built = {label: models.create(name, **kw).eval() for label, (name, kw) in CONTENDERS.items()}
    macs = {label: count_macs(model, INPUT) for label, model in built.items()}

    print(
        f"torch {torch.__version__}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
        f"input {'x'.join(map(str, INPUT))}, batch 1, "
        f"{args.repeats} interleaved runs after {args.warmup} warm-up, median"
    )
    header = (
        f"{'baseline':<20} {'candidate':<22} {'thr':>3} {'base ms':>8} {'cand ms':>8} "
        f"{'theoretical':>11} {'measured':>8} {'meas/theo':>9}"
    )
    print(header)
    print("-" * len(header))
    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    if load_before >= 1.0:
        print(f"warning: load average {load_before:.2f}: other processes share the cores")
    for threads in args.threads:
        for base, cand in PAIRS:
            base_stats, cand_stats = measure_latency_interleaved(
                [built[base], built[cand]],
                INPUT,
                threads=threads,
                repeats=args.repeats,
                warmup=args.warmup,
            )
            theoretical = macs[base] / macs[cand]
            measured = base_stats.median_ms / cand_stats.median_ms
            print(
                f"{base:<20} {cand:<22} {threads:>3} {base_stats.median_ms:>8.2f} "
                f"{cand_stats.median_ms:>8.2f} {theoretical:>10.2f}x {measured:>7.2f}x "
                f"{measured / theoretical:>9.2f}"
            )
    print(
        f"({time.perf_counter() - start:.0f} s of timing; 1-min load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after, {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
