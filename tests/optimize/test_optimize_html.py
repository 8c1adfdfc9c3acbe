"""The HTML reports in a real browser: headless Chromium (Debian's `chromium`, installed by .ci/run) draws the
plot, the sort script works, and the page logs nothing to the console; and `compare --report FILE.html`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from compressor.cli.main import main
from compressor.errors import ExitCode
from tests.conftest import assert_clean_error
from tests.optimize.search_helpers import BASE, FAST, MODEL, TEST, report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
)  # fmt: skip
#: Appended to a copy of a page: after the page's own script ran, record what the browser laid out, then click
#: the "size" header and record the sorted column.
PROBE = """<script>
var svg = document.getElementById('plot').getBoundingClientRect();
var drawn = Array.prototype.filter.call(document.querySelectorAll('circle.point'), function (c) {
  var r = c.getBoundingClientRect();
  return r.width > 2 && r.height > 2 && r.left >= svg.left && r.right <= svg.right && r.top >= svg.top
    && r.bottom <= svg.bottom;
});
document.body.setAttribute('data-drawn', drawn.length);
var table = document.querySelector('table.sortable');
var column = Array.prototype.map.call(table.tHead.rows[0].cells, function (th) { return th.textContent; })
  .indexOf('size');
table.tHead.rows[0].cells[column].click();
document.body.setAttribute('data-sorted', Array.prototype.map.call(table.tBodies[0].rows, function (row) {
  return row.cells[column].dataset.v;
}).join(' '));
</script>"""


def render(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and every console message the page produced."""
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return proc.stdout, console


def probed(page: Path, folder: Path) -> Path:
    copy = folder / f"probed-{page.name}"
    copy.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    return copy


@pytest.fixture(scope="module")
def optimized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "out"
    args = ["optimize", *BASE, *FAST, "--passes", "quantize.static,quantize.dynamic", "--max-trials", "3"]
    assert main([*args, "--cache-dir", str(out.parent / "cache"), "-o", str(out)]) == 0
    return out


def test_the_console_check_catches_script_errors(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>notDefinedAnywhere();</script></body></html>")
    _, console = render(page, tmp_path / "profile")
    assert any("Uncaught ReferenceError" in line for line in console), console


def test_the_optimize_report_draws_its_plot_without_console_errors(optimized: Path, tmp_path: Path) -> None:
    result = report(optimized)
    timed = [t for t in [result["baseline"], *result["trials"]] if t["latency"]]
    dom, console = render(optimized / "report.html", tmp_path / "profile")
    assert console == []
    assert '<svg id="plot"' in dom
    assert len(re.findall(r'<circle class="point ', dom)) == len(timed) == 4
    assert 'stroke="#1f2328" stroke-width="3"' in dom  # the chosen model is ringed

    dom, console = render(probed(optimized / "report.html", tmp_path), tmp_path / "profile2")
    assert console == []
    assert f'data-drawn="{len(timed)}"' in dom  # laid out inside the plot, each with a visible size
    sizes = [float(v) for v in re.search(r'data-sorted="([^"]*)"', dom).group(1).split()]  # type: ignore[union-attr]
    assert sizes == sorted(sizes) and len(sizes) == len(timed)


def test_compare_writes_an_html_trade_off_page(optimized: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    timing = ("--min-runs", "3", "--min-time", "0.02", "--warmup", "1")
    labelled = tmp_path / "labelled.html"
    result = cli("compare", MODEL, optimized / "model.onnx", "--data", TEST, *timing, "--report", labelled)
    assert result.code == 0, result.output
    dom, console = render(probed(labelled, tmp_path), tmp_path / "profile")
    assert console == []
    assert "accuracy against latency (batch 1)" in dom
    assert len(re.findall(r'<circle class="point ', dom)) == 2 and 'data-drawn="2"' in dom
    assert "Trade-off" in dom and "Footprint" in dom and "Environment" in dom
    assert '"command": "compare"' in labelled.read_text()  # the data behind the page

    unlabelled = tmp_path / "unlabelled.html"
    assert cli("compare", MODEL, optimized / "model.onnx", *timing, "--report", unlabelled).code == 0
    dom, console = render(unlabelled, tmp_path / "profile2")
    assert console == [] and "fidelity (mean cosine to the base) against latency" in dom


def test_compare_refuses_other_report_suffixes(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("compare", MODEL, MODEL, "--report", tmp_path / "report.txt")
    assert_clean_error(result, ExitCode.USAGE_ERROR, ".html")
