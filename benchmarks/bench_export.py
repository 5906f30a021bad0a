"""ONNX export both ways: file size and onnxruntime latency, dense fp32 vs codebook (Gather).

    OMP_WAIT_POLICY=ACTIVE python benchmarks/bench_export.py [--repeats 30] [--threads 1]

Each network is pruned (70% of every Conv2d/Linear weight) and weight-shared (8-bit conv,
5-bit fc codebooks) with netshrink's Deep Compression steps on seed-0 weights (BatchNorm
statistics settled on random inputs): sizes and latency do not depend on trained values.
For each: the ``.nsz`` file's size, and :func:`netshrink.export_onnx` written dense and
with ``codebook=True``; then PyTorch (the dense model), onnxruntime on the dense file and
onnxruntime on the codebook file timed side by side at batch 1 and 64 (interleaved
rounds after warm-up, medians; ratios are PyTorch's median over each runtime's).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")  # before torch: no idle-thread stalls

import argparse  # noqa: E402
import tempfile  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from bench_binary import describe_target, time_interleaved  # noqa: E402

import netshrink as ns  # noqa: E402
from netshrink.deploy import export_onnx  # noqa: E402
from netshrink.deploy.onnx import session_module  # noqa: E402
from netshrink.nsz import pack, unpack  # noqa: E402
from netshrink.prune import PruneConfig, prune_  # noqa: E402
from netshrink.quantize import WeightSharingConfig, share_weights_  # noqa: E402

MNIST = {"num_classes": 10, "in_chans": 1}
NETWORKS = {
    "lenet5": ("lenet5", {}, (1, 28, 28)),
    "squeezenet1_0 (28 px)": ("squeezenet1_0", {**MNIST, "small_input": True}, (1, 28, 28)),
    "mobilenet_v1 (28 px)": ("mobilenet_v1", {**MNIST, "small_input": True}, (1, 28, 28)),
    "squeezenet1_0 (224 px)": ("squeezenet1_0", {}, (3, 224, 224)),
}


def compressed(name: str, args: dict, size: tuple[int, int, int]) -> torch.nn.Module:
    torch.manual_seed(0)
    model = ns.create(name, **args).train()
    with torch.no_grad():
        model(torch.randn(8, *size))
    model.eval()
    prune_(model, PruneConfig(sparsity={"*": 0.7}))
    share_weights_(model, WeightSharingConfig(conv_bits=8, fc_bits=5))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(describe_target())
    print(f"{args.threads} thread(s), load {os.getloadavg()[0]:.2f}, onnxruntime intra-op "
          f"threads = torch threads")  # fmt: skip
    header = (
        f"{'model':<24} {'nsz':>10} {'onnx fp32':>10} {'onnx cbk':>10} {'batch':>5} "
        f"{'torch ms':>9} {'ort fp32':>9} {'ort cbk':>9} {'fp32 x':>7} {'cbk x':>7}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for label, (name, model_args, size) in NETWORKS.items():
            model = compressed(name, model_args, size)
            nsz = Path(tmp) / "m.nsz"
            pack(model, nsz, input_size=size)
            dense = unpack(nsz, model=ns.create(name, **model_args)).eval()
            files = {}
            for kind, codebook in (("fp32", False), ("cbk", True)):
                path = Path(tmp) / f"{kind}.onnx"
                export_onnx(dense, size, path, codebook=codebook, overwrite=True)
                files[kind] = path
            runtimes = [session_module(files[k].read_bytes(), args.threads) for k in files]
            for batch in args.batches:
                x = torch.randn(batch, *size)
                repeats = args.repeats if batch == 1 else max(5, args.repeats // 5)
                with torch.inference_mode():
                    ms = time_interleaved(
                        [partial(dense, x), *(partial(r, x) for r in runtimes)], repeats, 3
                    )
                print(
                    f"{label:<24} {nsz.stat().st_size:>10,} {files['fp32'].stat().st_size:>10,} "
                    f"{files['cbk'].stat().st_size:>10,} {batch:>5} {ms[0]:>9.3f} {ms[1]:>9.3f} "
                    f"{ms[2]:>9.3f} {ms[0] / ms[1]:>6.2f}x {ms[0] / ms[2]:>6.2f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
