"""Contract 2: the outbox that ``pack`` publishes and ``pull`` reads.

Layout of an outbox directory (single definition, used by both roles)::

    outbox/
      bundle-00000001-full.tar.gz    tar.gz, member paths relative to the results root
      bundle-00000002-delta.tar.gz   only files new or changed since the previous bundle
      index.json                     the published bundles; written last, atomically
      acks/<consumer>.json           written by each uploader after it applied a bundle
      .packer-state.json, .lock      the packer's own bookkeeping (readers ignore them)

A bundle is visible to readers only once it is listed in ``index.json``; the bundle file is
renamed into place before the index that names it is replaced, so a reader never sees a
half-written bundle. Every bundle contains the current manifest.

Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

INDEX_NAME = "index.json"
INDEX_VERSION = 1
ACKS_DIR = "acks"
ACK_VERSION = 1
PACKER_STATE_NAME = ".packer-state.json"
LOCK_NAME = ".lock"
TEMP_PREFIX = ".tmp-"
KINDS = ("full", "delta")
BUNDLE_NAME_RE = re.compile(r"^bundle-(\d{8})-(full|delta)\.tar\.gz$")
CONSUMER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class OutboxFormatError(ValueError):
    """An index or acknowledgement file does not follow the outbox contract."""


@dataclass(frozen=True)
class BundleRecord:
    """One published bundle as listed in the index."""

    seq: int
    kind: str
    name: str
    size: int
    sha256: str
    files: int
    created_at: str


@dataclass(frozen=True)
class Ack:
    """A consumer's acknowledgement: it has applied every bundle up to ``applied_seq``."""

    consumer: str
    applied_seq: int
    applied_at: str


def bundle_name(seq: int, kind: str) -> str:
    """Given a sequence number and kind, return the bundle's file name."""
    if kind not in KINDS:
        raise ValueError("bundle kind must be one of {}".format(KINDS))
    return "bundle-{:08d}-{}.tar.gz".format(seq, kind)


def parse_bundle_name(name: str) -> Optional[BundleRecord]:
    """Given a file name, return a partial record (seq, kind, name) or None if not a bundle."""
    match = BUNDLE_NAME_RE.match(name)
    if not match:
        return None
    return BundleRecord(int(match.group(1)), match.group(2), name, -1, "", -1, "")


def _record_from_json(raw: Any) -> BundleRecord:
    if not isinstance(raw, dict):
        raise OutboxFormatError("index entry is not an object")
    try:
        record = BundleRecord(
            seq=int(raw["seq"]),
            kind=str(raw["kind"]),
            name=str(raw["name"]),
            size=int(raw["size"]),
            sha256=str(raw["sha256"]),
            files=int(raw["files"]),
            created_at=str(raw["created_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise OutboxFormatError("index entry {!r} is malformed ({})".format(raw, exc))
    if record.kind not in KINDS or record.name != bundle_name(record.seq, record.kind):
        raise OutboxFormatError("index entry {!r} has an unexpected kind or name".format(record.name))
    if not re.match(r"^[0-9a-f]{64}$", record.sha256) or record.size < 0:
        raise OutboxFormatError("index entry {!r} has a bad sha256 or size".format(record.name))
    return record


def parse_index(data: Any) -> List[BundleRecord]:
    """Given decoded index JSON, return its bundles sorted by sequence number."""
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        raise OutboxFormatError("index.json is not a version {} outbox index".format(INDEX_VERSION))
    bundles = data.get("bundles")
    if not isinstance(bundles, list):
        raise OutboxFormatError("index.json has no 'bundles' list")
    records = sorted((_record_from_json(item) for item in bundles), key=lambda r: r.seq)
    seqs = [r.seq for r in records]
    if len(set(seqs)) != len(seqs):
        raise OutboxFormatError("index.json lists a sequence number twice")
    return records


def index_to_json(records: List[BundleRecord], updated_at: str) -> Dict[str, Any]:
    """Given bundle records, return the index document to write."""
    ordered = sorted(records, key=lambda r: r.seq)
    return {"version": INDEX_VERSION, "updated_at": updated_at, "bundles": [asdict(r) for r in ordered]}


def ack_name(consumer: str) -> str:
    """Given a consumer name, return the ack file's path relative to the outbox."""
    if not CONSUMER_RE.match(consumer):
        raise ValueError("consumer name {!r} must be 1-64 letters, digits, '.', '_' or '-'".format(consumer))
    return "{}/{}.json".format(ACKS_DIR, consumer)


def parse_ack(data: Any) -> Ack:
    """Given decoded ack JSON, return the acknowledgement."""
    if not isinstance(data, dict) or data.get("version") != ACK_VERSION:
        raise OutboxFormatError("ack is not a version {} acknowledgement".format(ACK_VERSION))
    try:
        ack = Ack(str(data["consumer"]), int(data["applied_seq"]), str(data["applied_at"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise OutboxFormatError("ack is malformed ({})".format(exc))
    if not CONSUMER_RE.match(ack.consumer):
        raise OutboxFormatError("ack names an invalid consumer {!r}".format(ack.consumer))
    return ack


def ack_to_json(ack: Ack) -> Dict[str, Any]:
    """Given an acknowledgement, return the document the consumer writes."""
    return {"version": ACK_VERSION, **asdict(ack)}


def dumps(document: Dict[str, Any]) -> bytes:
    """Given an index or ack document, return its canonical bytes."""
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")
