"""Wall time of one small sweep on the local engine and on the Ray backend (a local Ray
instance), side by side.

Each run is the whole command, `netshrink sweep squeezenet ... --out FRESH`, in its own
process: Ray's import, start-up and shutdown count, as they do for a user. Runs alternate
between the backends; the script prints the median of each and their ratio.

    .venv/bin/python benchmarks/bench_sweep_backends.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["squeezenet", "--param", "squeeze_ratio=0.125,0.25", "--epochs", "1", "--limit", "300",
         "--jobs", "2", "--quiet"]  # fmt: skip


def cpu_model() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.partition(":")[2].strip()
    return "unknown CPU"


def timed_sweep(backend: str, out: Path) -> float:
    argv = [sys.executable, "-m", "netshrink.cli", "sweep", *SWEEP, "--backend", backend]
    begun = time.perf_counter()
    done = subprocess.run([*argv, "--out", str(out)], capture_output=True, text=True)
    seconds = time.perf_counter() - begun
    if done.returncode != 0:
        raise SystemExit(f"{backend} sweep failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for backend in times:  # interleaved: drift in the machine's load hits both
                times[backend].append(timed_sweep(backend, Path(tmp) / f"{backend}{repeat}"))
    print(f"CPU: {cpu_model()}")
    print(f"sweep: netshrink sweep {' '.join(SWEEP)} (2 trials, each into a fresh folder)")
    for backend, seconds in times.items():
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"{backend:>5}: median {statistics.median(seconds):6.1f} s  (runs: {runs})")
    ratio = statistics.median(times["ray"]) / statistics.median(times["local"])
    print(f"ray / local wall time: {ratio:.2f}x")


if __name__ == "__main__":
    main()
