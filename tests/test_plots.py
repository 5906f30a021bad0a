"""The shared Agg plotting helper: real PNG bytes, atomic files, no pyplot state."""

import matplotlib.pyplot as plt
import pytest

from netshrink.plots import agg_figure, png_bytes, save_figure


def test_png_bytes_and_files_without_pyplot(tmp_path):
    before = plt.get_fignums()
    fig = agg_figure(3, 2)
    fig.add_subplot().plot([0, 1], [1, 0])
    data = png_bytes(fig)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    save_figure(fig, tmp_path / "f.svg")
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")
    assert plt.get_fignums() == before  # nothing registered with pyplot
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.svg"]  # no temporary left


def test_save_figure_refuses_an_unknown_format(tmp_path):
    fig = agg_figure(1, 1)
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path / "f.unknown")
    assert list(tmp_path.iterdir()) == []
