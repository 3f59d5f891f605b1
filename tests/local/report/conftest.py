"""Helpers of the report tests: run the command, read its CSVs back."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple

import pytest

from local.cli.main import main


class Ran(NamedTuple):
    """One run of ``python -m local report``: exit code, output and where it wrote."""

    code: int
    out: str
    err: str
    output_dir: Path


def read_csv(path: Path) -> List[Dict[str, str]]:
    """Given a CSV written by the report, return its rows as dicts."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def run_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> Callable[..., Ran]:
    """Return a function running the report command on a results root into a fresh directory."""
    counter = iter(range(1000))

    def run(results: Path, *flags: str) -> Ran:
        output_dir = tmp_path / f"report-{next(counter)}"
        argv = ["report", "--results-root", str(results), "--output-dir", str(output_dir), *flags]
        code = main(argv)
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err, output_dir)

    return run
