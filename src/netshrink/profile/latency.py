"""Wall-clock latency of a forward pass, whole model or per layer.

OpenMP stall: with more than one torch thread, idle OpenMP worker threads go to sleep
between forward passes and waking them costs milliseconds. On the 2-core project machine a
small conv net (0.6-1.5 ms per forward) measured at 2 threads with 20-50 ms idle gaps between
runs had 27-44 % of its runs above 5 ms (p90 12-14 ms); with ``OMP_WAIT_POLICY=ACTIVE``
1-6 % (p90 about 2 ms). Back-to-back runs without gaps did not stall. The variable is read
when torch loads its OpenMP runtime, so it must be in the environment *before*
``import torch``; setting it later in the process has no effect. The netshrink CLI does
``os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")`` first thing; scripts must do the same
(or export it in the shell). ACTIVE makes waiting threads spin, so it only helps when the
threads have their cores to themselves: with one other busy process on the 2 cores, the same
net took 40-170 ms per forward at 2 threads under either policy. Time on an idle machine.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager

import numba
import numpy as np
import torch
from torch import nn

from netshrink.profile.counting import eval_mode, example_input
from netshrink.profile.records import LatencyStats

__all__ = ["measure_latency", "measure_latency_interleaved", "measure_layer_latency"]


def _resolve_threads(threads: int | None) -> int:
    """The thread count a measurement will use; warns (pointing at the public caller's
    caller) when the OpenMP wait policy makes multi-threaded timings stall-prone."""
    effective = torch.get_num_threads() if threads is None else threads
    if effective < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if effective > 1 and os.environ.get("OMP_WAIT_POLICY", "").upper() != "ACTIVE":
        warnings.warn(
            f"timing with {effective} threads while OMP_WAIT_POLICY is not ACTIVE: idle "
            "OpenMP threads sleep between runs and their wake-ups can add ~10 ms stalls. "
            "Set OMP_WAIT_POLICY=ACTIVE in the environment before torch is imported "
            "(the netshrink CLI does).",
            stacklevel=3,
        )
    return effective


@contextmanager
def _num_threads(threads: int) -> Iterator[None]:
    """Set torch's intra-op thread count for the block and restore it afterwards; numba's
    too (the packed binary kernels run on it), capped at the threads numba started."""
    previous, previous_numba = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
        numba.set_num_threads(previous_numba)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stats(times_s: Sequence[float], batch_size: int, threads: int) -> LatencyStats:
    ms = np.asarray(times_s, dtype=np.float64) * 1e3
    p10, median, p90 = np.percentile(ms, [10, 50, 90])
    return LatencyStats(
        median_ms=float(median),
        p10_ms=float(p10),
        p90_ms=float(p90),
        repeats=len(ms),
        batch_size=batch_size,
        threads=threads,
    )


def _check_counts(repeats: int, warmup: int, batch_size: int) -> None:
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(
            f"need repeats >= 1, warmup >= 0, batch_size >= 1; "
            f"got {repeats}, {warmup}, {batch_size}"
        )


def measure_latency_interleaved(
    models: Sequence[nn.Module],
    input_size: tuple[int, int, int],
    *,
    batch_size: int = 1,
    threads: int | None = None,
    repeats: int = 30,
    warmup: int = 5,
) -> list[LatencyStats]:
    """Time several models side by side: each repeat runs every model once, starting from a
    different model each time, so that drifts in machine load hit all contenders alike.
    Each timed call follows an untimed call of the same model, so every model is timed with
    its own weights in cache, whichever model ran before it.

    Eval mode, ``torch.inference_mode``, a fixed random input; ``warmup`` untimed rounds,
    then ``repeats`` timed ones (``time.perf_counter``). Returns one result per model.
    """
    _check_counts(repeats, warmup, batch_size)
    effective = _resolve_threads(threads)
    return _time_interleaved(models, input_size, batch_size, effective, repeats, warmup)


def measure_side_by_side(
    models: Mapping[str, tuple[nn.Module, tuple[int, int, int]]],
    *,
    batch_size: int = 1,
    threads: int | None = None,
    repeats: int = 30,
    warmup: int = 5,
) -> dict[str, LatencyStats]:
    """:func:`measure_latency_interleaved` for named models with their own input sizes.

    ``models`` maps a name to ``(model, (C, H, W))``; models sharing an input size are
    timed interleaved with each other. Returns the stats by name.
    """
    groups: dict[tuple[int, int, int], list[str]] = {}
    for name, (_, size) in models.items():
        groups.setdefault(tuple(size), []).append(name)
    out: dict[str, LatencyStats] = {}
    for size, names in groups.items():
        stats = measure_latency_interleaved(
            [models[n][0] for n in names],
            size,
            batch_size=batch_size,
            threads=threads,
            repeats=repeats,
            warmup=warmup,
        )
        out.update(zip(names, stats, strict=True))
    return out


def _time_interleaved(
    models: Sequence[nn.Module],
    input_size: tuple[int, int, int],
    batch_size: int,
    threads: int,
    repeats: int,
    warmup: int,
) -> list[LatencyStats]:
    with ExitStack() as stack:
        stack.enter_context(_num_threads(threads))
        for model in models:
            stack.enter_context(eval_mode(model))
        stack.enter_context(torch.inference_mode())
        inputs = [example_input(m, input_size, batch_size) for m in models]
        times: list[list[float]] = [[] for _ in models]
        for round_index in range(warmup + repeats):
            for k in range(len(models)):
                i = (round_index + k) % len(models)
                # One untimed call first: otherwise a small model timed right after a big
                # one pays for refilling the caches the big one evicted, an order effect
                # that made identical LeNets differ by 1.9x in the survey.
                models[i](inputs[i])
                _sync(inputs[i].device)
                start = time.perf_counter()
                models[i](inputs[i])
                _sync(inputs[i].device)
                if round_index >= warmup:
                    times[i].append(time.perf_counter() - start)
    return [_stats(t, batch_size, threads) for t in times]


def measure_latency(
    model: nn.Module,
    input_size: tuple[int, int, int],
    *,
    batch_size: int = 1,
    threads: int | None = None,
    repeats: int = 30,
    warmup: int = 5,
) -> LatencyStats:
    """Median, 10th and 90th percentile time of one forward pass of a ``batch_size`` batch.

    ``threads`` sets ``torch.set_num_threads`` for the measurement (restored after); None
    keeps the current setting. See the module docstring for ``OMP_WAIT_POLICY``.
    """
    _check_counts(repeats, warmup, batch_size)
    effective = _resolve_threads(threads)
    (stats,) = _time_interleaved([model], input_size, batch_size, effective, repeats, warmup)
    return stats


def measure_layer_latency(
    model: nn.Module,
    layers: Mapping[str, nn.Module],
    input_size: tuple[int, int, int],
    *,
    batch_size: int = 1,
    threads: int | None = None,
    repeats: int = 30,
    warmup: int = 5,
) -> dict[str, float]:
    """Median time per forward pass spent in each of ``layers`` (name -> module), in ms.

    A pre-hook and a hook read ``time.perf_counter`` around each call; a layer called several
    times in one pass gets the sum. The times include the hooks' own overhead (a few µs per
    call), so their sum exceeds the model's un-hooked latency, most for many small layers.
    """
    _check_counts(repeats, warmup, batch_size)
    effective = _resolve_threads(threads)
    names = {module: name for name, module in layers.items()}
    started: dict[nn.Module, float] = {}
    elapsed: dict[str, float] = dict.fromkeys(layers, 0.0)

    x = example_input(model, input_size, batch_size)

    def pre_hook(module: nn.Module, inputs: tuple) -> None:
        _sync(x.device)
        started[module] = time.perf_counter()

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        _sync(x.device)
        elapsed[names[module]] += time.perf_counter() - started[module]

    per_run: dict[str, list[float]] = {name: [] for name in layers}
    handles = []
    try:
        for module in names:
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(hook))
        with _num_threads(effective), eval_mode(model), torch.inference_mode():
            for run in range(warmup + repeats):
                elapsed.update(dict.fromkeys(elapsed, 0.0))
                model(x)
                if run >= warmup:
                    for name, seconds in elapsed.items():
                        per_run[name].append(seconds)
    finally:
        for handle in handles:
            handle.remove()
    return {name: float(np.median(t)) * 1e3 for name, t in per_run.items()}
