"""``netshrink sweep``: a small SqueezeNet sweep end to end, the rerun cache, bad input."""

import json

import pytest

from tests.cli.helpers import one_line_error, run


def test_squeezenet_sweep_writes_table_plot_and_reuses_finished_trials(capsys, tmp_path):
    out = tmp_path / "sweep"
    argv = ["sweep", "squeezenet", "--param", "squeeze_ratio=0.25,0.5", "--param",
            "bypass=none,complex", "--epochs", "1", "--limit", "200", "--jobs", "2",
            "--out", out]  # fmt: skip
    code, text, err = run(capsys, *argv)
    assert code == 0, err
    assert text.count(": done in") == 4
    assert "squeeze_ratio=0.5, bypass=complex" in text and "Test error %" in text
    record = json.loads((out / "results.json").read_text())
    rows = {r["label"]: r for r in record["rows"]}
    assert len(rows) == 4 and all(r["seeds_ok"] == 1 for r in rows.values())
    # More squeeze filters, more parameters; a complex bypass adds 1x1 convs.
    none_25 = rows["squeeze_ratio=0.25, bypass=none"]["param_count"]
    assert rows["squeeze_ratio=0.5, bypass=none"]["param_count"] > none_25
    assert rows["squeeze_ratio=0.25, bypass=complex"]["param_count"] > none_25
    assert (out / "figure.png").read_bytes()[:4] == b"\x89PNG"
    assert "| squeeze_ratio=0.25, bypass=none |" in (out / "table.md").read_text()

    code, text, err = run(capsys, *argv)
    assert code == 0, err
    assert text.count(": cached") == 4 and ": done in" not in text
    assert json.loads((out / "results.json").read_text())["rows"] == record["rows"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["squeezenet", "--param", "squeeze=0.5"], "unknown sweep parameter 'squeeze'"),
        (["squeezenet", "--param", "squeeze_ratio="], "'squeeze_ratio' has an empty value list"),
        (["squeezenet", "--param", "pct3x3=0.5,1.5"], "pct3x3 must lie in (0, 1)"),
        (["resnet"], "unknown sweep study 'resnet' (known: squeezenet, distill, deep-compression)"),
        (["distill", "--param", "temperature=0"], "temperature must be > 0"),
        (["distill", "--param", "alpha=2"], "alpha must lie in [0, 1], got 2.0"),
        # --jobs 0, --seeds 0: usage errors of the parser (tests/cli/test_options.py)
    ],
)
def test_bad_sweeps_are_one_line_errors_and_write_nothing(capsys, tmp_path, argv, needle):
    out = tmp_path / "never"
    code, _, err = run(capsys, "sweep", *argv, "--out", out)
    one_line_error(code, err, needle)
    assert not out.exists()


def test_sweep_device_without_a_gpu_is_one_line_and_writes_nothing(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "never"
    code, _, err = run(capsys, "sweep", "squeezenet", "--device", "cuda", "--out", out)
    one_line_error(code, err, "--device cuda: no CUDA device")
    assert not out.exists()
