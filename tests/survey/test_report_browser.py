"""report.html in a real browser (Debian's chromium, driven by Playwright): it loads without
errors, shows its plots, sorts its table, lists the plotted rows, and says what a quick run is.

The survey result is built by hand (nothing trained), so the checks compare the page against
rows whose values the test knows.
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, sync_playwright

from netshrink.plots import agg_figure, png_bytes
from netshrink.survey.context import SurveyConfig
from netshrink.survey.registry import Figure
from netshrink.survey.report import write_report
from netshrink.survey.survey import SurveyResult, SurveyRow, environment

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEST_IMAGES = {"full": 1000, "quick": 240}  # test-split sizes, unlike any other number shown

# key, method, approach, targets speed, baseline, params, MACs, size (bytes), top-1,
# batch-1 latency (ms), notes. Two baselines, each row's ratios computed against its own.
ROWS = [
    ("lenet5", "LeNet-5 (baseline)", "architecture", False, "lenet5",
     61_706, 416_520, 246_824, 0.9871, 0.21, ""),
    ("lenet5_pruned", "Pruning 90% (Han et al.)", "weights", False, "lenet5",
     6_171, 416_520, 41_650, 0.9864, 0.22, "90% of the weights zero; dense kernels, no speed-up"),
    ("lenet5_deep", "Deep Compression", "weights", False, "lenet5",
     6_171, 41_652, 5_310, 0.9852, 0.35, "prune, 5-bit shared weights, Huffman coding"),
    ("lenet5_xnor", "XNOR-Net binarized", "weights", True, "lenet5",
     61_706, 416_520, 9_012, 0.9512, 0.12, ""),
    ("squeezenet", "SqueezeNet 1.1 (baseline)", "architecture", False, "squeezenet",
     723_146, 23_541_050, 2_892_584, 0.9903, 1.90, ""),
    ("squeezenet_bypass", "Simple bypass SqueezeNet", "architecture", False, "squeezenet",
     723_146, 23_650_112, 2_893_100, 0.9911, 2.05, "bypass around Fire 3, 5, 7 and 9"),
    ("mobilenet", "MobileNet v1 0.25", "architecture", True, "squeezenet",
     214_410, 5_834_000, 857_640, 0.9855, 0.95, ""),
    ("shufflenet_kd", "ShuffleNet distilled", "architecture", True, "squeezenet",
     120_004, 3_100_320, 480_016, 0.9822, 1.10, "teacher: SqueezeNet 1.1, temperature 4"),
]  # fmt: skip


def _rows(batch_sizes: tuple[int, ...], test_images: int) -> list[SurveyRow]:
    by_key = {r[0]: r for r in ROWS}
    rows = []
    for key, method, approach, speed, baseline, params, macs, size, top1, ms, notes in ROWS:
        base = by_key[baseline]
        # Latency grows sub-linearly with the batch; the spread is +-10 %.
        latency = {b: ms * b**0.8 for b in batch_sizes}
        # One row without an onnxruntime twin: binary layers do not export as they run.
        no_onnx = "not exported: the float network is not what this row runs"
        if key != "lenet5_xnor":
            no_onnx = ""
        rows.append(
            SurveyRow(
                key=key,
                method=method,
                approach=approach,
                targets_speed=speed,
                baseline=baseline,
                params=params,
                macs=macs,
                size_bytes=size,
                compression_ratio=base[7] / size,
                top1=top1,
                latency_ms=latency,
                speedup_theoretical=base[6] / macs,
                speedup_measured=base[9] / ms,
                notes=notes,
                latency_p10_ms={b: 0.9 * v for b, v in latency.items()},
                latency_p90_ms={b: 1.1 * v for b, v in latency.items()},
                test_images=test_images,
                onnx_latency_ms={} if no_onnx else {b: 0.8 * v for b, v in latency.items()},
                onnx_note=no_onnx,
            )
        )
    return rows


TABLE1 = [
    {"model": "alexnet", "input": [3, 224, 224], "params": 61_100_840, "macs": 714_188_480,
     "fp32_bytes": 244_403_360, "latency_ms": 38.2},
    {"model": "squeezenet1_1", "input": [3, 224, 224], "params": 1_235_496,
     "macs": 349_152_448, "fp32_bytes": 4_941_984, "latency_ms": 11.7},
]  # fmt: skip


def _figure() -> Figure:
    fig = agg_figure(6, 4)
    ax = fig.add_subplot()
    ax.plot([1, 3, 5, 7, 9], [0.9871, 0.9880, 0.9911, 0.9902, 0.9895], marker="o")
    ax.set_xlabel("Fire module with a bypass")
    ax.set_ylabel("test top-1")
    return Figure("bypass_fire", "Accuracy per bypassed Fire module", png_bytes(fig), "A caption.")


@dataclass
class Report:
    html: Path
    rows: list[SurveyRow]
    config: SurveyConfig


def _report(out: Path, quick: bool) -> Report:
    config = SurveyConfig(out=str(out), quick=quick, batch_sizes=(1, 8) if quick else (1, 64))
    rows = _rows(config.batch_sizes, TEST_IMAGES["quick" if quick else "full"])
    result = SurveyResult(
        config,
        rows,
        table1=[] if quick else TABLE1,
        seconds=42.0,
        figures=[] if quick else [_figure()],
        environment=environment(),
    )
    return Report(write_report(result)["html"], rows, config)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> Report:
    return _report(tmp_path_factory.mktemp("full"), quick=False)


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> Report:
    return _report(tmp_path_factory.mktemp("quick"), quick=True)


def _no_browser(reason: str) -> None:
    """Skip, or fail where the browser is required (CI sets NETSHRINK_REQUIRE_BROWSER=1)."""
    if os.environ.get("NETSHRINK_REQUIRE_BROWSER") == "1":
        pytest.fail(f"no chromium: {reason} (NETSHRINK_REQUIRE_BROWSER=1)")
    pytest.skip(f"no chromium: {reason}")


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        _no_browser("neither chromium nor chromium-browser is on PATH (`make browser`)")
    try:
        playwright = sync_playwright().start()
    except PlaywrightError as exc:
        _no_browser(f"Playwright did not start: {exc}")
    try:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            _no_browser(f"{executable} did not start: {str(exc).splitlines()[0]}")
        yield browser
        browser.close()
    finally:
        playwright.stop()


@dataclass
class Opened:
    page: Page
    errors: list[str]  # console errors and uncaught exceptions, as they happened


@pytest.fixture
def open_report(browser):
    """``open_report(report)``: the page loaded in a fresh browser context."""
    contexts = []

    def open_(report: Report) -> Opened:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(5_000)  # a missing element fails fast, not after 30 s
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on(
            "console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None
        )
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.goto(report.html.as_uri())
        return Opened(page, errors)

    yield open_
    for context in contexts:
        context.close()


def _keys(page: Page) -> list[str]:
    """The row keys of Table 2, top to bottom as shown."""
    return page.eval_on_selector_all("#table2 tbody tr", "rows => rows.map(r => r.dataset.key)")


def _header(page: Page, table: str, text: str) -> tuple[Locator, int]:
    """The header of ``table`` whose text is ``text``, and its column index."""
    headers = page.locator(f"{table} thead th")
    texts = [t.strip() for t in headers.all_text_contents()]
    assert texts.count(text) == 1, texts
    return headers.nth(texts.index(text)), texts.index(text)


def test_page_loads_without_errors(full_report, quick_report, open_report):
    for report in (full_report, quick_report):
        opened = open_report(report)
        # Run the sort script too: every header of every table, twice.
        for th in opened.page.locator("table.sortable thead th").all():
            th.click()
            th.click()
        assert opened.errors == [], report.html


def test_every_figure_shows_its_image(full_report, open_report):
    page = open_report(full_report).page
    images = page.locator("figure img")
    # The three plots and the entry's figure.
    assert images.count() == 4
    for i in range(images.count()):
        image = images.nth(i)
        assert image.is_visible()
        assert image.evaluate(
            "img => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0"
        )
        box = image.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100, box
    assert page.locator("figure#bypass_fire img").is_visible()


def test_table_sorts_by_a_numeric_column(full_report, open_report):
    page = open_report(full_report).page
    assert _keys(page) == [r.key for r in full_report.rows]  # as the survey ran them
    size, col = _header(page, "#table2", "Size")
    ascending = [r.key for r in sorted(full_report.rows, key=lambda r: r.size_bytes)]
    size.click()
    assert _keys(page) == ascending
    values = page.eval_on_selector_all(
        "#table2 tbody tr", f"rows => rows.map(r => parseFloat(r.cells[{col}].dataset.value))"
    )
    assert values == sorted(r.size_bytes for r in full_report.rows)
    assert size.get_attribute("aria-sort") == "ascending"
    size.click()
    assert _keys(page) == ascending[::-1]
    assert size.get_attribute("aria-sort") == "descending"

    top1, _ = _header(page, "#table2", "Top-1 %")
    top1.click()
    assert _keys(page) == [r.key for r in sorted(full_report.rows, key=lambda r: r.top1)]
    assert size.get_attribute("aria-sort") is None  # one sorted column at a time


def test_table_sorts_by_a_text_column(full_report, open_report):
    page = open_report(full_report).page
    method, _ = _header(page, "#table2", "Method")
    # The methods differ in a letter before any space or sign, so the browser's collation
    # (localeCompare) and casefold agree on their order.
    alphabetical = [r.key for r in sorted(full_report.rows, key=lambda r: r.method.casefold())]
    method.click()
    assert _keys(page) == alphabetical
    method.click()
    assert _keys(page) == alphabetical[::-1]


def test_plots_list_the_rows_they_draw(full_report, open_report):
    page = open_report(full_report).page
    rows = full_report.rows
    for plot in ("accuracy_vs_size", "accuracy_vs_macs"):
        points = json.loads(page.get_attribute(f"figure#{plot}", "data-points"))
        assert sorted(points) == sorted(r.key for r in rows), plot
    points = json.loads(page.get_attribute("figure#speedup_theoretical_vs_measured", "data-points"))
    assert sorted(points) == sorted(r.key for r in rows if r.key != r.baseline)
    assert {"lenet5", "squeezenet"}.isdisjoint(points)  # the baselines: speed-up 1 by definition


def test_notes_are_shown_in_their_rows(full_report, open_report):
    page = open_report(full_report).page
    _, col = _header(page, "#table2", "Notes")
    for row in full_report.rows:
        cell = page.locator(f'#table2 tbody tr[data-key="{row.key}"] td').nth(col)
        assert cell.inner_text().strip() == row.notes
        if row.notes:
            assert cell.is_visible()
            cell.scroll_into_view_if_needed()  # the table scrolls sideways in its box
            box = cell.bounding_box()
            assert box is not None and box["width"] > 100


def test_quick_run_shows_the_banner_before_the_table(quick_report, open_report):
    page = open_report(quick_report).page
    banner = page.locator("#quick-banner")
    assert banner.is_visible()
    text = banner.inner_text()
    assert "smoke test" in text
    assert f"{quick_report.config.train_epochs} epoch" in text
    assert f"{TEST_IMAGES['quick']} images" in text
    box, table = banner.bounding_box(), page.locator("#table2").bounding_box()
    assert box is not None and table is not None
    assert box["y"] + box["height"] <= table["y"]  # above the table
    assert box["y"] < 800  # in the first screenful
    assert banner.evaluate(
        "b => !!(b.compareDocumentPosition(document.getElementById('table2'))"
        " & Node.DOCUMENT_POSITION_FOLLOWING)"
    )


def test_full_run_has_no_banner(full_report, open_report):
    page = open_report(full_report).page
    assert page.locator("#quick-banner").count() == 0
    assert "smoke test" not in page.inner_text("body")


def test_environment_and_test_set_size_are_shown(full_report, open_report):
    page = open_report(full_report).page
    environment_table = page.locator("#environment")
    assert environment_table.is_visible()
    shown = dict(
        environment_table.evaluate(
            "t => Array.from(t.rows, r => [r.cells[0].innerText, r.cells[1].innerText])"
        )
    )
    assert shown["torch"] == torch.__version__
    assert shown["cpu_count"] == str(os.cpu_count())
    assert f"{TEST_IMAGES['full']} images" in page.inner_text("body")
