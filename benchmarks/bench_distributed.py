"""Data-parallel training on CPU processes, what a step costs in communication, and a sweep
on the local engine against the Ray backend.

    .venv/bin/python benchmarks/bench_distributed.py [--quick] [--repeats 3]
                                                     [--parts train comm sweep]

Parts:

- ``train``: training throughput of LeNet-5 and SqueezeNet 1.0 (``small_input``, Adam at
  2e-4, as the survey trains it on 28 px images) on ``mnist5k``, three ways: one process
  at 1 thread, one process at 2 threads, and ``torchrun --standalone --nproc-per-node 2``
  (gloo, ``OMP_NUM_THREADS=1`` per rank). Every run is the whole ``netshrink train``
  command into a fresh folder; images/s is train images × epochs / the run's own
  ``train_seconds`` (metrics.json, rank 0's clock: the epochs' training steps plus each
  epoch's validation, checkpoint and the final BatchNorm re-estimation and metrics; not
  the process start, imports or the process group's set-up). The 2-process test top-1 is
  compared with the 1-process one at the same thread count as the library's default
  (``OMP_NUM_THREADS`` 1 vs 1 and 2).
- ``comm``: computed, not measured. Each step all-reduces every trainable parameter's fp32
  gradient, 4 bytes × parameters; a ring all-reduce sends (and receives) about
  2·(N−1)/N times that per rank, so its bandwidth term at a link of B bit/s is
  8 · 2·(N−1)/N · 4·P / B seconds (latency terms and overlap with the backward pass
  ignored). Parameter counts come from ``netshrink.models.create`` at each network's
  registry shape (ImageNet 224 px, 1000 classes; LeNet-5 at MNIST's) and
  ``netshrink.profile.count_params``.
- ``sweep``: ``bench_sweep_backends``'s sweep (two SqueezeNet trials, 1 epoch, 300
  images, 2 jobs) with ``--backend local`` and ``--backend ray``, each the whole command
  into a fresh folder (Ray's import, start-up and shutdown count).

Runs of a part alternate between their contenders, the order rotating each repeat; the
script prints medians and ratios. Child processes get this process's environment with
``OMP_NUM_THREADS`` set per run; nothing is timed in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from netshrink.data import load_dataset
from netshrink.models import create
from netshrink.profile import count_params

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_sweep_backends import SWEEP, cpu_model, timed_sweep  # noqa: E402

BIN = Path(sys.executable).parent  # the venv's console scripts: netshrink, torchrun
DATA = "mnist5k"
# The survey's SqueezeNet on 28 px data: small_input (3x3/1 conv1), Adam at 2e-4
# (netshrink.survey.architectures.SQUEEZENET_TRAIN; at 1e-3 its last ReLU dies).
SQUEEZENET_FLAGS = ("--arg", "small_input=true", "--lr", "2e-4")


@dataclass(frozen=True)
class Workload:
    label: str
    model: str
    flags: tuple[str, ...]  # netshrink train flags beside --data/--epochs/--limit
    epochs: int
    limit: int


def workloads(quick: bool) -> list[Workload]:
    if quick:
        return [
            Workload("LeNet-5", "lenet5", (), epochs=1, limit=1000),
            Workload("SqueezeNet 1.0", "squeezenet1_0", SQUEEZENET_FLAGS, epochs=1, limit=500),
        ]
    return [
        Workload("LeNet-5", "lenet5", (), epochs=2, limit=5000),
        Workload("SqueezeNet 1.0", "squeezenet1_0", SQUEEZENET_FLAGS, epochs=1, limit=1500),
    ]


# (label, processes, threads per process)
LAYOUTS = [("1 proc x 1 thread", 1, 1), ("1 proc x 2 threads", 1, 2), ("2 procs x 1 thread", 2, 1)]


def train_command(work: Workload, processes: int, out: Path) -> list[str]:
    args = ["train", work.model, "--data", DATA, *work.flags, "--epochs", str(work.epochs),
            "--limit", str(work.limit), "--quiet", "--out", str(out)]  # fmt: skip
    if processes == 1:
        return [str(BIN / "netshrink"), *args]
    return [str(BIN / "torchrun"), "--standalone", "--nproc-per-node", str(processes),
            "--no-python", str(BIN / "netshrink"), *args]  # fmt: skip


def run_training(work: Workload, processes: int, threads: int, out: Path) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(
        train_command(work, processes, out), capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"{work.model} x{processes} failed ({done.returncode}): "
                         f"{done.stderr[-2000:]}")  # fmt: skip
    return json.loads((out / "metrics.json").read_text())["metrics"]


def train_images(limit: int) -> int:
    return len(load_dataset(DATA, limit=limit).train)


def part_train(repeats: int, quick: bool, tmp: Path) -> dict[str, dict[str, float]]:
    """Images/s and test top-1 per workload and layout; returns medians for part comm."""
    medians: dict[str, dict[str, float]] = {}
    for work in workloads(quick):
        images = train_images(work.limit) * work.epochs
        speed: dict[str, list[float]] = {label: [] for label, _, _ in LAYOUTS}
        top1: dict[str, list[float]] = {label: [] for label, _, _ in LAYOUTS}
        for repeat in range(repeats):
            order = LAYOUTS[repeat % len(LAYOUTS) :] + LAYOUTS[: repeat % len(LAYOUTS)]
            for label, processes, threads in order:
                out = tmp / f"{work.model}-{processes}x{threads}-{repeat}"
                metrics = run_training(work, processes, threads, out)
                speed[label].append(images / metrics["train_seconds"])
                top1[label].append(100 * metrics["test_top1"])
        command = " ".join((work.model, *work.flags))
        print(f"\n{work.label} ({command}) on {DATA}, "
              f"--limit {work.limit} ({images // work.epochs} train images), "
              f"{work.epochs} epoch(s), batch 64; {repeats} interleaved repeat(s)")  # fmt: skip
        print(f"{'layout':20} {'images/s':>9} {'vs 1x1':>7} {'vs 1x2':>7} "
              f"{'test top-1 %':>12} {'vs 1 proc':>9}  runs (images/s)")  # fmt: skip
        med = {label: statistics.median(s) for label, s in speed.items()}
        for label, processes, threads in LAYOUTS:
            base = f"1 proc x {threads} thread{'s' if threads > 1 else ''}"
            acc = statistics.median(top1[label])
            diff = f"{acc - statistics.median(top1[base]):+8.2f}p" if processes > 1 else f"{'':9}"
            runs = ", ".join(f"{s:.0f}" for s in speed[label])
            vs = [med[label] / med[other] for other, _, _ in LAYOUTS[:2]]
            print(f"{label:20} {med[label]:9.0f} {vs[0]:6.2f}x {vs[1]:6.2f}x "
                  f"{acc:12.2f} {diff}  {runs}")  # fmt: skip
        medians[work.model] = med
    print("(vs 1 proc: 2-process test top-1 minus the 1-process one at 1 thread, in points)")
    return medians


COMM_MODELS = [  # (label, registry name, arguments); registry shape unless given
    ("LeNet-5 (MNIST)", "lenet5", {}),
    ("SqueezeNet 1.0, 28 px, 10 classes", "squeezenet1_0",
     {"small_input": True, "in_chans": 1, "num_classes": 10}),
    ("SqueezeNet 1.0", "squeezenet1_0", {}),
    ("AlexNet", "alexnet", {}),
    ("VGG-16", "vgg16", {}),
]  # fmt: skip
WORLDS = (2, 8)
LINKS_GBPS = (1, 10)


def part_comm(measured: dict[str, dict[str, float]]) -> None:
    print("\nGradient exchange per step (COMPUTED, not measured): fp32 gradients, ring all-reduce "
          "bandwidth term 2(N-1)/N x gradient per rank;\n"
          "time columns: ring bytes per rank x 8 / link speed, N machines")  # fmt: skip
    heads = [f"N={n} {g:>2}Gb/s" for n in WORLDS for g in LINKS_GBPS]
    print(f"{'network':34} {'trainable':>11} {'gradient':>9} "
          + " ".join(f"{'ring/rank N=' + str(n):>14}" for n in WORLDS) + "  "
          + " ".join(f"{h:>13}" for h in heads))  # fmt: skip
    alexnet = None
    rows = []
    for label, name, args in COMM_MODELS:
        with torch.device("meta"):  # shapes only: counting needs no weights
            model = create(name, **args)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert trainable == count_params(model), f"{name}: frozen parameters"
        rows.append((label, name, args, trainable))
        if name == "alexnet":
            alexnet = trainable
    for label, _, _, trainable in rows:
        grad = 4 * trainable
        ring = {n: 2 * (n - 1) / n * grad for n in WORLDS}
        times = [ring[n] * 8 / (g * 1e9) * 1e3 for n in WORLDS for g in LINKS_GBPS]
        print(f"{label:34} {trainable:11,} {grad / 1e6:7.1f}MB "
              + " ".join(f"{ring[n] / 1e6:12.1f}MB" for n in WORLDS) + "  "
              + " ".join(f"{t:11.1f}ms" for t in times))  # fmt: skip
    squeeze = next(t for label, name, args, t in rows if name == "squeezenet1_0" and not args)
    if alexnet:
        print(f"AlexNet / SqueezeNet 1.0 parameters (= bytes exchanged per step): "
              f"{alexnet / squeeze:.1f}x")  # fmt: skip
    if measured:
        print("Computed exchange time / this CPU's measured step (the faster 1-process layout, "
              "batch 64, part train):")  # fmt: skip
        for label, name, _, trainable in rows[:2]:
            if name not in measured:
                continue
            layout = max(LAYOUTS[:2], key=lambda layout: measured[name][layout[0]])[0]
            step_ms = 64 / measured[name][layout] * 1e3
            ratios = [
                2 * (n - 1) / n * 4 * trainable * 8 / (g * 1e9) * 1e3 / step_ms
                for n in WORLDS
                for g in LINKS_GBPS
            ]
            cells = ", ".join(f"{h} {r:.3f}" for h, r in zip(heads, ratios, strict=True))
            print(f"  {label:34} step {step_ms:6.1f} ms ({layout}): {cells}")


def part_sweep(repeats: int, tmp: Path) -> None:
    times: dict[str, list[float]] = {"local": [], "ray": []}
    backends = list(times)
    for repeat in range(repeats):
        for backend in backends[repeat % 2 :] + backends[: repeat % 2]:
            times[backend].append(timed_sweep(backend, tmp / f"sweep-{backend}{repeat}"))
    print(f"\nSweep wall time: netshrink sweep {' '.join(SWEEP)} --backend B (2 trials, "
          f"fresh folder each run); {repeats} interleaved repeat(s)")  # fmt: skip
    for backend, seconds in times.items():
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"{backend:>5}: median {statistics.median(seconds):6.1f} s  (runs: {runs})")
    ratio = statistics.median(times["ray"]) / statistics.median(times["local"])
    print(f"ray / local wall time: {ratio:.2f}x")


def versions() -> str:
    import ray  # only its version: the Ray runs are subprocesses

    return f"torch {torch.__version__}, ray {ray.__version__}, python {sys.version.split()[0]}"


def load_average() -> str:
    """Other users' load on the cores: these timings are only as quiet as the machine."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small runs, one repeat")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--parts", nargs="+", choices=("train", "comm", "sweep"),
                        default=["train", "comm", "sweep"])  # fmt: skip
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); {versions()}")
    print(f"load average at the start (1, 5, 15 min): {load_average()}")
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')} in the children")
    measured: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "train" in args.parts:
            measured = part_train(repeats, args.quick, Path(tmp))
        if "comm" in args.parts:
            part_comm(measured)
        if "sweep" in args.parts:
            part_sweep(repeats, Path(tmp))
    print(f"\nload average at the end (1, 5, 15 min): {load_average()}")


if __name__ == "__main__":
    main()
