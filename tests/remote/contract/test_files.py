"""copy_range: the one bounded copy that pack's snapshot and its gzip stream both use."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from remote.contract.files import copy_range


def test_files_copy_range_copies_exactly_the_range_in_chunks(tmp_path: Path) -> None:
    source = tmp_path / "records"
    source.write_bytes(bytes(range(256)) * 40)
    out = io.BytesIO()
    copy_range(str(source), 1000, 5000, out.write, chunk=777)
    assert out.getvalue() == source.read_bytes()[1000:6000]


def test_files_copy_range_of_a_file_that_shrank_names_it(tmp_path: Path) -> None:
    source = tmp_path / "piece"
    source.write_bytes(b"x" * 100)
    out = io.BytesIO()
    with pytest.raises(OSError, match=r"piece ended 60 bytes before the range"):
        copy_range(str(source), 50, 110, out.write)
    assert out.getvalue() == b"x" * 50
