"""The unpack ledger: which bundles the results root already holds (``.unpack-ledger.json``).

The file is hidden so the results scan ignores it, lives in the results root so it travels
with the data it describes, and is written atomically. ``applied_seq`` is the highest
bundle sequence number applied; every bundle up to it is reflected in the results root
(a full bundle stands for everything before it), which is what the acknowledgement reports.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from local.errors import UserError
from remote.contract.files import now_iso, write_json_atomic
from remote.contract.names import LEDGER_NAME

log = logging.getLogger(__name__)

LEDGER_VERSION = 1


@dataclass(frozen=True)
class AppliedBundle:
    """One bundle the results root holds."""

    seq: int
    name: str
    sha256: str
    files: int
    applied_at: str


@dataclass
class Ledger:
    """Every bundle applied to one results root, in the order they were applied."""

    bundles: List[AppliedBundle] = field(default_factory=list)

    @property
    def applied_seq(self) -> int:
        """Return the highest sequence number applied (0 when nothing was)."""
        return max((b.seq for b in self.bundles), default=0)

    def find(self, seq: int) -> Optional[AppliedBundle]:
        """Given a sequence number, return the bundle applied under it, if any."""
        return next((b for b in self.bundles if b.seq == seq), None)

    def to_json(self) -> Dict[str, Any]:
        """Return the document written to disk."""
        return {
            "version": LEDGER_VERSION,
            "applied_seq": self.applied_seq,
            "updated_at": now_iso(),
            "bundles": [asdict(b) for b in self.bundles],
        }


def ledger_path(results_root: str) -> str:
    """Given a results root, return the path of its ledger."""
    return os.path.join(results_root, LEDGER_NAME)


def load_ledger(results_root: str) -> Ledger:
    """Given a results root, return its ledger (empty when it has none yet)."""
    path = ledger_path(results_root)
    try:
        with open(path, "rb") as handle:
            document = json.load(handle)
        if document.get("version") != LEDGER_VERSION:
            raise ValueError("version is {!r}, expected {}".format(document.get("version"), LEDGER_VERSION))
        return Ledger([AppliedBundle(**item) for item in document["bundles"]])
    except FileNotFoundError:
        return Ledger()
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(
            f"unpack ledger {path} is unreadable ({exc})",
            "move it aside; the next pull then starts again from the newest full bundle",
        ) from exc


def record_applied(results_root: str, ledger: Ledger, applied: AppliedBundle) -> None:
    """Given the ledger and a bundle that is now fully in place, add it and save atomically."""
    ledger.bundles.append(applied)
    write_json_atomic(ledger_path(results_root), ledger.to_json())
    log.debug("ledger: %s applied (seq %d)", applied.name, applied.seq)


def new_entry(seq: int, name: str, sha256: str, files: int) -> AppliedBundle:
    """Given a bundle's identity, return its ledger entry stamped with the current time."""
    return AppliedBundle(seq=seq, name=name, sha256=sha256, files=files, applied_at=now_iso())
