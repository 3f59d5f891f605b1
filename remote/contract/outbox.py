"""Contract 2: the outbox that ``pack`` publishes and ``pull`` reads.

Layout of an outbox directory (file names in :mod:`remote.contract.names`)::

    outbox/
      bundle-00000001-full.tar.gz    tar.gz, member paths relative to the results root
      bundle-00000002-delta.tar.gz   only files new or changed since the previous bundle
      index.json                     the published bundles; written last, atomically
      acks/<consumer>.json           written by each uploader after it applied a bundle
      .packer-state.json, .lock      the packer's own bookkeeping (readers ignore them)

Bundle format (what the unpacker may rely on):

- one gzip member holding a POSIX.1-2001 (pax) tar archive of **regular files only** (no
  directories, links, devices or FIFOs), each with mode 0644 and its mtime in whole seconds;
- the current manifest (``.wandb_eval_manifest.json``) is the first member;
- **member names are valid UTF-8**, relative to the results root, ``/``-separated, with no
  empty, ``.`` or ``..`` component and no leading ``/``; no component is hidden (leading dot)
  except the manifest's; each name appears once. A file or directory whose name on disk is
  not valid UTF-8 is never packed (``pack`` skips it and says so; see :func:`remote.contract.tree.is_utf8`).

A bundle is visible to readers only once it is listed in ``index.json``; the bundle file is
renamed into place before the index that names it is replaced, so a reader never sees a
half-written bundle. Every bundle contains the current manifest. A full bundle stands for
everything before it; a delta only holds what changed since the bundle before it, which is the
rule :func:`bundles_after` applies for both the puller and the unpacker.

Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Protocol, Sequence, TypeVar

from remote.contract.names import ACKS_DIR

INDEX_VERSION = 1
ACK_VERSION = 1
KINDS = ("full", "delta")
BUNDLE_NAME_RE = re.compile(r"^bundle-(\d{8})-(full|delta)\.tar\.gz$")
CONSUMER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class OutboxFormatError(ValueError):
    """An index or acknowledgement file does not follow the outbox contract."""


class ChainGapError(ValueError):
    """A delta cannot be applied: the bundle it builds on is neither held nor available."""

    def __init__(self, missing_seq: int, delta_name: str) -> None:
        super().__init__(f"bundle {missing_seq} that delta {delta_name} builds on is missing")
        self.missing_seq = missing_seq
        self.delta_name = delta_name


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


class _Bundle(Protocol):
    """Anything with a sequence number, a kind and a name (index records, files in an inbox)."""

    @property
    def seq(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def name(self) -> str: ...


B = TypeVar("B", bound=_Bundle)


def bundles_after(bundles: Sequence[B], have_seq: int) -> List[B]:
    """Given bundles and the highest seq the local side holds, return those to apply, in order.

    The chain starts at the newest full bundle above ``have_seq`` when there is one (a full
    bundle stands for everything before it, which also covers a local side that fell behind the
    remote's retention); otherwise its deltas must continue ``have_seq`` without a gap.
    A bundle listed twice under one seq counts once. Raises ChainGapError on a gap.
    """
    unique = {bundle.seq: bundle for bundle in bundles}
    newer = [unique[seq] for seq in sorted(unique) if seq > have_seq]
    fulls = [index for index, bundle in enumerate(newer) if bundle.kind == "full"]
    chain = newer[fulls[-1] :] if fulls else newer
    expected = have_seq + 1
    for bundle in chain:
        if bundle.kind == "delta" and bundle.seq != expected:
            raise ChainGapError(expected, bundle.name)
        expected = bundle.seq + 1
    return chain


def bundle_name(seq: int, kind: str) -> str:
    """Given a sequence number and kind, return the bundle's file name."""
    if kind not in KINDS:
        raise ValueError(f"bundle kind must be one of {KINDS}")
    return f"bundle-{seq:08d}-{kind}.tar.gz"


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
        raise OutboxFormatError(f"index entry {raw!r} is malformed ({exc})") from exc
    if record.kind not in KINDS or record.name != bundle_name(record.seq, record.kind):
        raise OutboxFormatError(f"index entry {record.name!r} has an unexpected kind or name")
    if not re.match(r"^[0-9a-f]{64}$", record.sha256) or record.size < 0:
        raise OutboxFormatError(f"index entry {record.name!r} has a bad sha256 or size")
    return record


def parse_index(data: Any) -> List[BundleRecord]:
    """Given decoded index JSON, return its bundles sorted by sequence number."""
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        raise OutboxFormatError(f"index.json is not a version {INDEX_VERSION} outbox index")
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
        raise ValueError(f"consumer name {consumer!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return f"{ACKS_DIR}/{consumer}.json"


def parse_ack(data: Any) -> Ack:
    """Given decoded ack JSON, return the acknowledgement."""
    if not isinstance(data, dict) or data.get("version") != ACK_VERSION:
        raise OutboxFormatError(f"ack is not a version {ACK_VERSION} acknowledgement")
    try:
        ack = Ack(str(data["consumer"]), int(data["applied_seq"]), str(data["applied_at"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise OutboxFormatError(f"ack is malformed ({exc})") from exc
    if not CONSUMER_RE.match(ack.consumer):
        raise OutboxFormatError(f"ack names an invalid consumer {ack.consumer!r}")
    return ack


def ack_to_json(ack: Ack) -> Dict[str, Any]:
    """Given an acknowledgement, return the document the consumer writes."""
    return {"version": ACK_VERSION, **asdict(ack)}


def dumps(document: Dict[str, Any]) -> bytes:
    """Given an index or ack document, return its canonical bytes."""
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")
