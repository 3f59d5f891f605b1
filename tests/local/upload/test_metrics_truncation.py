"""A metrics file cut anywhere (an eval still writing it, an interrupted copy) never gives a number.

Complete means: ``metrics.json`` parses as an object; ``metrics.tsv`` ends with a newline and its
last value line has as many cells as its header. Every prefix of every real sample file is tried.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from local.upload.metrics import MetricsResult, read_metrics
from tests.fixtures.trees import require_samples


def _samples(name: str) -> List[Path]:
    found = sorted(require_samples().glob(f"*/checkpoint-*/{name}"))
    assert len(found) == 35, found  # the sample slice: 35 checkpoints with both files
    return found


def _read(tmp_path: Path, name: str, raw: bytes) -> MetricsResult:
    directory = tmp_path / "checkpoint-1"
    directory.mkdir(exist_ok=True)
    (directory / name).write_bytes(raw)
    return read_metrics(str(directory))


def test_metrics_real_sample_tsvs_are_complete_as_written(tmp_path: Path) -> None:
    for path in _samples("metrics.tsv"):
        result = _read(tmp_path, "metrics.tsv", path.read_bytes())
        assert result.ok and len(result.metrics) == 12 and result.dropped == ["path"], path


@pytest.mark.parametrize("index", range(0, 35, 7))
def test_metrics_tsv_cut_at_every_byte_offset_never_gives_a_number(tmp_path: Path, index: int) -> None:
    full = _samples("metrics.tsv")[index].read_bytes()
    for offset in range(len(full)):
        result = _read(tmp_path, "metrics.tsv", full[:offset])
        assert not result.ok and result.metrics == {}, (offset, full[:offset][-20:], result)
        assert result.reason and "metrics.tsv" in result.reason


def test_metrics_json_cut_at_every_byte_offset_fails_or_gives_the_whole(tmp_path: Path) -> None:
    for path in _samples("metrics.json")[::7]:
        full = path.read_bytes()
        whole = _read(tmp_path, "metrics.json", full)
        assert whole.ok and len(whole.metrics) == 12
        for offset in range(len(full)):
            result = _read(tmp_path, "metrics.json", full[:offset])
            assert not result.ok or result.metrics == whole.metrics, (offset, result)


def test_metrics_tsv_last_cell_cut_short_is_not_read_as_a_smaller_number(tmp_path: Path) -> None:
    """The issue's example: 0.5678 must never become 0.56."""
    result = _read(tmp_path, "metrics.tsv", b"path\tHR@10\tNDCG@10\nm/checkpoint-1\t0.1234\t0.56")
    assert not result.ok
    assert result.reason == "metrics.tsv does not end with a newline (still being written, or cut short)"


def test_metrics_tsv_cut_after_a_tab_does_not_lose_a_metric_silently(tmp_path: Path) -> None:
    result = _read(tmp_path, "metrics.tsv", b"path\tHR@10\tNDCG@10\nm/checkpoint-1\t0.1234\t")
    assert not result.ok and "newline" in str(result.reason)


def test_metrics_tsv_windows_line_ends_and_empty_cells_are_complete(tmp_path: Path) -> None:
    """csv.writer ends lines with \\r\\n; pandas writes NaN as an empty cell (dropped, named)."""
    result = _read(tmp_path, "metrics.tsv", b"path\tHR@10\tNDCG@10\r\nm/checkpoint-1\t0.5678\t\r\n")
    assert result.ok and result.metrics == {"HR@10": 0.5678} and result.dropped == ["path", "NDCG@10"]


def test_metrics_tsv_appended_rerun_cut_short_fails_rather_than_falling_back(tmp_path: Path) -> None:
    """The last line wins; while it is being appended, the file is incomplete, not the older line."""
    raw = b"path\tHR@10\nm\t0.1\nm\t0.5678"
    assert not _read(tmp_path, "metrics.tsv", raw).ok
    assert _read(tmp_path, "metrics.tsv", raw + b"\n").metrics == {"HR@10": 0.5678}


def test_metrics_tsv_cell_with_a_unicode_line_separator_stays_one_line(tmp_path: Path) -> None:
    result = _read(tmp_path, "metrics.tsv", "path\tHR\u2028@10\nm\t0.5\n".encode())
    assert result.ok and result.metrics == {"HR\u2028@10": 0.5}
