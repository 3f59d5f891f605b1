"""Property: whatever a bundle holds, unpack applies it or refuses it with one line, and never
writes outside the results root, leaves staging behind, or blocks the next bundle.

Bundles are generated member by member (``tests.fixtures.hostile``): names with ``..``, absolute,
not UTF-8, reserved or long; links, devices and FIFOs; declared sizes that lie (up to 1 TiB);
duplicates; and gzip streams cut anywhere. 200 examples from a seed derived from the test
(``derandomize``), so a failure reproduces by running the test again.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict

from hypothesis import event, given

from local.errors import UserError
from local.unpack.apply import unpack_bundles
from local.unpack.tarsafety import Limits
from remote.contract.names import STAGING_DIR
from remote.contract.outbox import bundle_name
from tests.fixtures.hostile import PROPERTY_SETTINGS, REG, Member, bundles, listing, write_members

# Small limits, so generated sizes cross them often.
LIMITS = Limits(max_members=6, max_bytes=900, max_file_bytes=200)
LATER = "Later-bundle/checkpoint-1/metrics.json"
# How refusals are tallied in --hypothesis-show-statistics (to see every rule is exercised).
REASONS = (
    "climbs out",
    "absolute",
    "is a link",
    "device or FIFO",
    "unsupported type",
    "appears twice",
    "per-file limit",
    "takes the bundle over",
    "past the limit",
    "bookkeeping",
    "NUL or backslash",
    "not a readable",
    "damaged header",
    "ends without",
    "expands past",
    "without a name",
    "both a file",
    "need it as a directory",
    "component over",
    "path over",
    "sparse",
)


def _normalised(name: str) -> str:
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def _could_hold(members: Any, name: str, data: bytes) -> bool:
    """Tell whether a regular member named ``name`` declares exactly ``len(data)`` bytes, its own first.

    A size declared longer than the data swallows the bytes after it (the next header, say): still
    a tar member of that size. What may never happen: more bytes than declared, or other bytes first.
    """
    return any(
        m.kind == REG
        and _normalised(m.name) == name
        and m.size == len(data)
        and data.startswith(m.data[: m.size])
        for m in members
    )


def _links_under(root: Path) -> list:
    return [d for d, dirs, files in os.walk(root) for n in dirs + files if os.path.islink(os.path.join(d, n))]


@PROPERTY_SETTINGS
@given(bundle=bundles())
def test_unpack_property_any_bundle_is_applied_or_refused_and_stays_in_the_root(
    bundle: Dict[str, Any],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "outside").mkdir()
        (base / "outside" / "sentinel").write_bytes(b"keep")
        root = base / "deep" / "results"  # '..' twice from here is still inside base: it would show
        path = write_members(
            base / "inbox" / bundle_name(1, "full"), bundle["members"], bundle["fmt"], cut=bundle["cut"]
        )
        before = listing(base)
        try:
            report = unpack_bundles(str(root), [str(path)], LIMITS)
            applied = True
            event("applied, some skipped" if report.skipped else "applied")
        except UserError as exc:
            assert "\n" not in exc.message and exc.message.startswith(f"bundle {path.name} refused")
            applied = False
            event("refused: " + next((w for w in REASONS if w in exc.message), exc.message))
        after = listing(base)
        outside = {name: data for name, data in after.items() if not name.startswith("deep/results/")}
        assert outside == before
        written = {n[len("deep/results/") :]: d for n, d in after.items() if n.startswith("deep/results/")}
        written = {n: d for n, d in written.items() if not n.startswith(".unpack")}
        if not applied:
            assert written == {}
        assert all(_could_hold(bundle["members"], name, data) for name, data in written.items()), written
        assert not (root / STAGING_DIR).exists() and _links_under(root) == []

        later = write_members(base / "inbox" / bundle_name(2, "full"), [Member(LATER, b"ok")])
        assert unpack_bundles(str(root), [str(later)], LIMITS).applied == [later.name]
        assert (root / LATER).read_bytes() == b"ok"
