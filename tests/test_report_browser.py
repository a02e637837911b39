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
