"""Property: whatever a metrics file holds, the reader gives finite numbers or one reason, never
raises; and a file cut anywhere never gives numbers the whole file does not hold.

Files are generated (``tests.fixtures.hostile``): JSON of any shape (NaN, Infinity, integers too
large for a float, strings, lists, nesting up to 5,000 deep), TSVs with odd, empty, huge or
missing cells, arbitrary bytes, each perhaps cut. 200 examples per property, from a seed derived
from the test (``derandomize``), so a failure reproduces by running the test again.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st

from local.upload.metrics import MetricsResult, read_metrics
from tests.fixtures.hostile import PROPERTY_SETTINGS, metrics_json, metrics_tsv


def _read(name: str, raw: bytes) -> MetricsResult:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_bytes(raw)
        return read_metrics(tmp)


def _files() -> st.SearchStrategy:
    return st.one_of(
        st.tuples(st.just("metrics.json"), metrics_json()),
        st.tuples(st.just("metrics.tsv"), metrics_tsv()),
        st.tuples(st.sampled_from(["metrics.json", "metrics.tsv"]), st.binary(max_size=200)),
    )


@PROPERTY_SETTINGS
@given(file=_files(), cut=st.one_of(st.none(), st.none(), st.none(), st.integers(min_value=0)))
def test_metrics_property_any_file_gives_finite_numbers_or_one_reason(file: tuple, cut: int) -> None:
    name, raw = file
    result = _read(name, raw if cut is None else raw[: cut % (len(raw) + 1)])
    assert isinstance(result, MetricsResult) and result.source == name
    if not result.ok:
        event(f"{name}: failure")
        assert result.metrics == {} and "\n" not in str(result.reason) and str(result.reason).startswith(name)
        return
    event(f"{name}: numbers")
    assert result.metrics
    for value in result.metrics.values():
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@PROPERTY_SETTINGS
@given(
    file=st.one_of(
        st.tuples(st.just("metrics.json"), metrics_json()),
        st.tuples(st.just("metrics.tsv"), metrics_tsv(one_full_row=True)),
    ),
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_metrics_property_a_cut_file_fails_or_reads_as_the_whole(file: tuple, where: float) -> None:
    name, full = file
    cut = full[: int(len(full) * where)]
    whole, part = _read(name, full), _read(name, cut)
    event(f"{name}: cut file {'fails' if not part.ok else 'reads as the whole'}")
    assert not part.ok or part.metrics == whole.metrics, (cut, part, whole)
