"""What a person opening index.html sees: a headless Chromium renders it from disk (no server, no
network) and the screenshot shows the table and the charts; its DOM holds the best summary."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import List

import matplotlib.image
import numpy
import pytest

from remote.contract.exit_codes import EXIT_OK
from tests.local.report.test_best_summary import BASELINE

CHROMIUM = "/usr/bin/chromium"
# matplotlib's first two line colours (tab:blue, tab:orange): only a drawn chart has them.
CHART_COLOURS = ((31, 119, 180), (255, 127, 14))


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium with nothing that reaches out to the network or a display."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run installs it)")
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def colour_share(pixels: numpy.ndarray, colour: tuple) -> float:
    rgb = (pixels[:, :, :3] * 255).astype(int)
    return float((abs(rgb - numpy.array(colour)) <= 12).all(axis=2).mean())


def test_page_in_a_headless_browser_shows_the_table_and_the_charts(
    sample_results: Path, run_report, tmp_path: Path
) -> None:
    ran = run_report(sample_results, "--baseline", f"{BASELINE[0]}:{BASELINE[1]}")
    assert ran.code == EXIT_OK, ran.err
    page = ran.output_dir / "index.html"
    html = page.read_text()
    assert "<script" not in html and not re.search(r"(src|href)=\"(https?:)?//", html)
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1280)
    not_white = (pixels[:, :, :3] < 0.9).any(axis=2).mean()
    assert not_white > 0.05, f"only {not_white:.3f} of the screenshot is not white"
    for colour in CHART_COLOURS:  # the images loaded from their relative paths
        assert colour_share(pixels, colour) > 0.0001, colour  # a few hundred pixels of lines
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    cells = table_cells(dom)
    assert "Instruments-grec-grpo-rule-only-fixedhint-taskfix-b16-hintce-3-sft495" in cells
    assert "checkpoint-1665" in cells and f"baseline: {BASELINE[0]}" in cells
    assert "0.0945+0.0331" in cells  # NDCG@10 at the best checkpoint, and its gain over the baseline
    assert len(re.findall(r"<img ", dom)) == 17


def table_cells(dom: str) -> List[str]:
    """Given the rendered DOM, return the text of every table cell (tags removed)."""
    return [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", dom, re.S)]
