"""The HTML report in a real headless browser: a run with a broken step, screenshotted and its DOM checked."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from harness.cli import main

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "plugin"
SCREENSHOT = REPO / "reports" / "report_browser.png"
WIDTH, HEIGHT = 1400, 1000
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless browser: install one with `apt-get install -y chromium`")


def _chromium(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    argv = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def report(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run a passing model and one whose training fails, then render their JUnit XML as the HTML report."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("TIPC_GPU_COUNT", "0")
    pytester.makeini("[pytest]\n")
    shutil.copytree(DATA / "scripts", pytester.path / "scripts")
    for name in ("alpha", "broken"):
        shutil.copytree(DATA / "configs" / name, pytester.path / "test_tipc" / "configs" / name)
    result = pytester.runpytest("-p", "harness.pytest_plugin", "--junitxml=junit.xml")
    result.assert_outcomes(passed=10, failed=1, skipped=3)
    page = pytester.path / "reports" / "report.html"
    code = main(["report", "html", str(pytester.path / "junit.xml"), "-o", str(page), "--log-root", str(pytester.path)])
    assert code == 0
    return page


def _rows(dom: str) -> dict[str, str]:
    """step-row HTML by '<model> <chain-prefix> <step>' (the chain shortened to its trainer)."""
    rows: dict[str, str] = {}
    for row in re.findall(r'<tr class="step[^"]*".*?</tr>', dom, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        model = re.sub(r"<[^>]+>", "", cells[0]).strip()
        trainer = cells[2].split("_gpus_")[0]
        rows[f"{model} {trainer} {cells[3]}"] = row
    return rows


def test_the_report_renders_in_chromium(report: Path) -> None:
    browser = _browser()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    shot = _chromium(browser, f"--screenshot={SCREENSHOT}", f"--window-size={WIDTH},{HEIGHT}", report.as_uri())
    assert SCREENSHOT.is_file(), shot.stderr[-2000:]
    assert _png_size(SCREENSHOT) == (WIDTH, HEIGHT)
    assert SCREENSHOT.stat().st_size > 20_000  # a blank page compresses to a few kB

    dump = _chromium(browser, "--dump-dom", report.as_uri())
    dom = dump.stdout
    assert "<h1>TIPC report</h1>" in dom, dump.stderr[-2000:]
    rows = _rows(dom)
    assert len(rows) == 14
    failed = rows["broken norm_train train"]
    assert 'data-status="failed"' in failed
    assert '<td class="status-failed"><span class="badge">failed</span> (exit 3)</td>' in failed
    assert '<a href="#failure-1">log excerpt</a>' in failed
    # the failure section: red, with the command, exit code and the log's last lines
    sections = re.findall(r'<section class="failure[^"]*" id="(failure-\d+)".*?</section>', dom, re.S)
    assert sections == ["failure-1"]
    section = re.search(r'<section class="failure.*?</section>', dom, re.S)
    assert section is not None
    text = section.group(0)
    assert "broken &middot; lite_train_lite_infer" in text.replace("\u00b7", "&middot;")
    assert "exit code: 3" in text and "fail.py line 40" in text and "deliberately broken step" in text
    assert "fail.py line 10\n" not in text
    for step in ("eval", "export"):
        assert 'data-status="skipped"' in rows[f"broken norm_train {step}"]
        assert "needs train, which failed" in rows[f"broken norm_train {step}"]
    assert "needs export, which was skipped" in rows["broken norm_train infer_cpu_bs_1"]
    assert all('data-status="passed"' in row for key, row in rows.items() if key.startswith("alpha "))
    # the grid: broken's train cell is red (failed), its later kinds grey (skipped); alpha is green throughout
    assert re.search(r'<td class="cell status-failed" data-kind="train" data-status="failed">', dom)
    assert len(re.findall(r'class="cell status-passed"', dom)) == 4
    assert len(re.findall(r'class="cell status-skipped"', dom)) == 3
    # the script ran: nothing is hidden by default
    assert "step hidden" not in dom


def test_the_status_filter_hides_rows_in_the_browser(report: Path) -> None:
    browser = _browser()
    dump = _chromium(browser, "--dump-dom", report.as_uri() + "?status=failed")
    rows = _rows(dump.stdout)
    shown = [key for key, row in rows.items() if 'class="step hidden"' not in row]
    assert shown == ["broken norm_train train"]
    dump = _chromium(browser, "--dump-dom", report.as_uri() + "?status=passed")
    assert '<section class="failure status-border-failed hidden"' in dump.stdout


# Appended to a copy of the report: measures the steps table as laid out, and writes the numbers into the DOM.
_MEASURE = """
<script>
window.addEventListener("load", function () {
  var heads = document.querySelectorAll("#steps thead th");
  var widths = Array.prototype.map.call(heads, function (th) { return Math.round(th.getBoundingClientRect().width); });
  var names = document.querySelectorAll("#steps tbody tr.step td:nth-child(4)");
  var tallest = 0;
  names.forEach(function (td) { tallest = Math.max(tallest, td.getBoundingClientRect().height); });
  var out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({
    widths: widths, page: document.documentElement.scrollWidth, window: window.innerWidth,
    table: Math.round(document.getElementById("steps").getBoundingClientRect().width), stepCell: Math.round(tallest)
  });
  document.body.appendChild(out);
});
</script>
"""


@pytest.mark.parametrize("width", [1280, 1400, 1920])
def test_the_steps_table_is_readable_at_desktop_widths(report: Path, width: int) -> None:
    import json

    browser = _browser()
    probe = report.with_name(f"probe-{width}.html")
    probe.write_text(report.read_text().replace("</body>", _MEASURE + "</body>"))
    shot = report.with_name(f"steps-{width}.png")
    _chromium(browser, f"--screenshot={shot}", f"--window-size={width},1000", probe.as_uri())
    assert _png_size(shot) == (width, 1000)
    dump = _chromium(browser, f"--window-size={width},1000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="measured">(.*?)</pre>', dump.stdout)
    assert found is not None, dump.stderr[-2000:]
    measured = json.loads(found.group(1).replace("&quot;", '"'))
    model, mode, chain, step, status, seconds, log, command = measured["widths"]
    assert measured["page"] <= measured["window"]  # nothing sticks out sideways
    assert log >= 110 and command >= 250 and chain >= 150 and status >= 90, measured
    assert measured["stepCell"] < 60, measured  # step names stay on a line or two, not one letter per line


def test_the_report_has_no_dead_links_and_links_results_log(report: Path) -> None:
    page = report.read_text()
    hrefs = re.findall(r'href="([^"]+)"', page)
    assert hrefs
    for href in hrefs:
        if href.startswith("#"):
            assert f'id="{href[1:]}"' in page, href
        else:
            assert (report.parent / href).is_file(), href
    assert page.count(">results_python.log</a>") == 2  # alpha and broken
    # skipped steps have no log to link to: their log cell is a dash and their reason is in the row
    for row in re.findall(r'<tr class="step" [^>]*data-status="skipped".*?</tr>', page, re.S):
        assert "href=" not in row and "&ndash;" in row
    # the environment the run ran on
    assert re.search(r"<th>Python</th><td>3\.\d+\.\d+</td>", page)
    assert "<th>Paddle</th>" in page and "<th>harness version</th>" in page
