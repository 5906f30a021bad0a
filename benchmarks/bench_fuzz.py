"""The ``.nsz`` reader on 100,000 damaged files: every one must load or fail with one line.

    python benchmarks/bench_fuzz.py [--files 100000] [--quick] [--seed 0]

Files come from the fuzz corpus of the tests (``tests/nsz/fuzz_corpus.py``: three small
models and LeNet-300-100, every damage kind in turn: truncations at section boundaries and
anywhere, bit flips, overwritten and inserted bytes, edits behind recomputed checksums,
splices of two files, reordered sections, extreme section lengths, stream fields and header
values, malformed headers, preamble fields), drawn by a seeded NumPy generator. Each file
goes through every reader entry point (``parse_nsz``, the inspect report, ``load_into``
with ``skeleton``, the sparse engine's ``load_sparse``) twice: once timed, once under
``tracemalloc``, whose peak is taken over the container's framing and checksums alone and
over the whole read.

Printed: files tried, outcomes by exception type, the median and worst time per file
against the 1 s bound, and the worst peaks: the container's relative to the file's size,
the whole read's relative to the undamaged file's. Exits 1 if any file raised anything but
a ``NetshrinkError`` with a one-line message, or took longer than the bound.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "nsz"))

import fuzz_corpus as corpus  # noqa: E402

from netshrink.errors import NetshrinkError  # noqa: E402
from netshrink.nsz.container import read_sections  # noqa: E402

TIME_LIMIT_S = 1.0  # per file of at most 1 MB (the corpus's largest damaged file is < 70 kB)
ALLOWANCE = 4096  # bytes of the container's own objects, whatever the file's size


def cpu() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "CPU: unknown (no lscpu)"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return f"CPU: {fields.get('Model name', '?').strip()} ({fields.get('CPU(s)', '?').strip()})"


def outcome(data: bytes, kind: str) -> str:
    """``loaded``, the ``NetshrinkError`` subclass's name, or ``BUG <type>: <message>``."""
    try:
        corpus.exercise(data, kind)
    except NetshrinkError as exc:
        if "\n" in str(exc):
            return f"BUG multi-line {type(exc).__name__}: {str(exc)[:80]!r}"
        return type(exc).__name__
    except Exception as exc:  # anything else is a reader bug
        return f"BUG {type(exc).__name__}: {str(exc)[:80]}"
    return "loaded"


def peaks(data: bytes, kind: str) -> tuple[int, int]:
    """Peak traced bytes of the container's framing and checksums, and of the whole read."""
    tracemalloc.start()
    try:
        try:
            read_sections(data)
        except NetshrinkError:
            pass
        container = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        outcome(data, kind)
        return container, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000, help="damaged files to try")
    parser.add_argument("--quick", action="store_true", help="3,000 files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_files = 3000 if args.quick else args.files
    rng = np.random.default_rng(args.seed)
    pick = corpus.NumpyPicker(rng)
    files = {kind: corpus.corpus_file(kind) for kind in corpus.FILES}
    baseline = {}
    for kind, data in files.items():  # compiles the kernels; the undamaged files' peaks
        assert outcome(data, kind) == "loaded"
        baseline[kind] = peaks(data, kind)[1]
    print(cpu())
    sizes = ", ".join(f"{kind} {len(data):,} B" for kind, data in files.items())
    print(f"corpus: {sizes}; {len(corpus.DAMAGES)} damage kinds; seed {args.seed}")

    damages = list(corpus.DAMAGES.items())
    outcomes: collections.Counter[str] = collections.Counter()
    by_damage: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    times, bugs, slow = [], [], []
    worst_read = (0.0, "")
    worst_bytes = 0
    started = time.perf_counter()
    worst_container = (-1.0, "")
    for i in range(n_files):
        name, damage = damages[i % len(damages)]
        kind = corpus.FILES[(i // len(damages)) % len(corpus.FILES)]
        data = damage(files[kind], pick)
        start = time.perf_counter()
        result = outcome(data, kind)
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        label = "other" if result.startswith("BUG") else result
        outcomes[label] += 1
        by_damage[name][label] += 1
        where = f"{name} on {kind}, {len(data):,} B"
        if result.startswith("BUG"):
            bugs.append(f"file {i} ({where}): {result}")
        if elapsed > TIME_LIMIT_S and len(data) <= 1 << 20:
            slow.append(f"file {i} ({where}): {elapsed:.2f} s")
        container, read = peaks(data, kind)
        worst_container = max(worst_container, ((container - ALLOWANCE) / max(len(data), 1), where))
        worst_read = max(worst_read, (read / baseline[kind], where))
        worst_bytes = max(worst_bytes, read)
        if (i + 1) % 10_000 == 0:
            print(f"  {i + 1:,} files, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    wall = time.perf_counter() - started

    print(f"files tried: {n_files:,} in {wall:.0f} s")
    print("outcomes: " + ", ".join(f"{k} {v:,}" for k, v in outcomes.most_common()))
    width = max(len(name) for name in corpus.DAMAGES)
    for name, counts in by_damage.items():
        print(f"  {name:<{width}}  " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    print(
        f"time per file: median {1e3 * statistics.median(times):.2f} ms, worst "
        f"{1e3 * max(times):.0f} ms (bound {TIME_LIMIT_S:g} s per file of at most 1 MB: "
        f"{len(slow)} over)"
    )
    print(
        f"peak memory (tracemalloc), container framing and checksums: worst "
        f"{ALLOWANCE // 1024} KiB + {max(worst_container[0], 0):.2f}x the file's size "
        f"({worst_container[1]})"
    )
    print(
        f"peak memory, whole read: worst {worst_read[0]:.1f}x the undamaged file's "
        f"({worst_read[1]}); largest {worst_bytes / 2**20:.1f} MiB"
    )
    for line in bugs[:20] + slow[:20]:
        print("  " + line)
    return 1 if bugs or slow else 0


if __name__ == "__main__":
    sys.exit(main())
