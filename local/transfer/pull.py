"""``pull``: fetch the bundles the local side lacks from the remote outbox, verified, in order.

Pull only pulls: the caller says which sequence number the local side holds (the unpack ledger's,
or the inbox's own record); pull neither reads the ledger nor writes acks (the service cycle acks
after unpack). Bookkeeping lives in the inbox: ``.pull-state.json`` lists the bundles downloaded
and verified there (size and SHA-256 against the outbox index). A bundle is downloaded to
``<name>.part`` (resumed from its size after a broken connection), verified, then renamed to
its final name, so unpack only ever sees verified bundles.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import paramiko
from tenacity import Retrying

from local.errors import PermanentError, TransientError, UserError
from local.transfer.ack import check_consumer, read_ack
from local.transfer.download import download_resumable
from local.transfer.sftp import ConnectionParams, SftpSession
from remote.contract import outbox
from remote.contract.files import exclusive_lock, fsync_dir, now_iso, sha256_file, write_json_atomic
from remote.contract.names import INDEX_NAME, PART_SUFFIX, PULL_LOCK_NAME, PULL_STATE_NAME

log = logging.getLogger(__name__)

STATE_VERSION = 1
CORRUPT_ATTEMPTS = 3
# The pull state remembers this many verified bundles (older ones are long applied and gone).
STATE_KEEP = 200


@dataclass(frozen=True)
class PullOptions:
    """Everything one pull needs."""

    params: ConnectionParams
    remote_outbox: str
    inbox: str
    consumer: str


@dataclass
class PullReport:
    """What one pull did, and this consumer's ack as the remote holds it (None: no ack yet)."""

    downloaded: List[str] = field(default_factory=list)
    present: List[str] = field(default_factory=list)
    bytes_transferred: int = 0
    restarted_from_full: bool = False
    remote_ack_seq: Optional[int] = None
    acked_seq: Optional[int] = None  # set by callers that acknowledge after pulling


def load_state(inbox: str) -> Dict[str, Dict[str, object]]:
    """Given an inbox, return its verified bundles (name -> seq, sha256, size); empty if unreadable."""
    try:
        with open(os.path.join(inbox, PULL_STATE_NAME), "rb") as handle:
            document = json.load(handle)
        bundles = document["bundles"] if document.get("version") == STATE_VERSION else {}
        return {str(k): dict(v) for k, v in bundles.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("pull state in %s unreadable (%s); bundles there are verified again", inbox, exc)
        return {}


def save_state(inbox: str, state: Dict[str, Dict[str, object]]) -> None:
    """Given the verified bundles, keep the newest entries and write the state atomically."""
    newest = sorted(state.items(), key=lambda item: int(str(item[1]["seq"])))[-STATE_KEEP:]
    write_json_atomic(
        os.path.join(inbox, PULL_STATE_NAME), {"version": STATE_VERSION, "bundles": dict(newest)}
    )


def inbox_seq(inbox: str) -> int:
    """Given an inbox, return the highest sequence number verified there (0 when none)."""
    return max((int(str(entry["seq"])) for entry in load_state(inbox).values()), default=0)


def plan_downloads(records: Sequence[outbox.BundleRecord], have_seq: int) -> List[outbox.BundleRecord]:
    """Given the index and the highest seq the local side has, return the bundles to get, in order."""
    try:
        return outbox.bundles_after(records, have_seq)
    except outbox.ChainGapError as exc:
        raise PermanentError(
            f"the outbox lacks bundle {exc.missing_seq} that delta {exc.delta_name} builds on, "
            "and has no newer full bundle",
            "on the training machine run: python -m remote pack --full --results-root ... --outbox ...",
        ) from exc


def read_index(sftp: paramiko.SFTPClient, remote_outbox: str) -> List[outbox.BundleRecord]:
    """Given an SFTP client, return the outbox's bundles (none when it has no index yet)."""
    try:
        with sftp.open(posixpath.join(remote_outbox, INDEX_NAME), "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        sftp.stat(remote_outbox)  # a missing outbox directory is an error, a missing index is not
        return []
    try:
        return outbox.parse_index(json.loads(data.decode("utf-8")))
    except (ValueError, outbox.OutboxFormatError) as exc:
        raise UserError(f"remote outbox index is unusable ({exc})", "check the packer on the remote") from exc


def _is_verified(
    options: PullOptions, record: outbox.BundleRecord, state: Dict[str, Dict[str, object]]
) -> bool:
    """Given a planned bundle, say whether the inbox already holds it verified.

    A final-named file the state does not list (a crash between rename and state save) is
    hashed once rather than downloaded again.
    """
    path = os.path.join(options.inbox, record.name)
    if not os.path.isfile(path):
        return False
    entry = state.get(record.name)
    if entry is not None:
        return entry.get("sha256") == record.sha256
    if os.path.getsize(path) == record.size and sha256_file(path) == record.sha256:
        state[record.name] = {"seq": record.seq, "sha256": record.sha256, "size": record.size}
        return True
    os.unlink(path)  # not what the index describes: never let unpack see it
    return False


def _drop_stale_parts(inbox: str, chain: Sequence[outbox.BundleRecord]) -> None:
    """Given the bundles still wanted, delete partial downloads of any other bundle (disk space)."""
    wanted = {record.name + PART_SUFFIX for record in chain}
    for name in os.listdir(inbox):
        if (
            name.endswith(PART_SUFFIX)
            and name not in wanted
            and outbox.parse_bundle_name(name[: -len(PART_SUFFIX)])
        ):
            log.info("removing stale partial download %s", name)
            os.unlink(os.path.join(inbox, name))


def fetch_verified(session: SftpSession, options: PullOptions, record: outbox.BundleRecord) -> int:
    """Given a bundle record, download, verify and rename it into the inbox; return bytes fetched.

    A download whose size or SHA-256 does not match the index is deleted and fetched again,
    a bounded number of times; it never reaches its final name.
    """
    remote_path = posixpath.join(options.remote_outbox, record.name)
    part = os.path.join(options.inbox, record.name + PART_SUFFIX)
    fetched = 0
    for attempt in range(1, CORRUPT_ATTEMPTS + 1):
        result = session.run(
            f"download {record.name}", lambda s: download_resumable(s, remote_path, part, record.size)
        )
        fetched += result.fetched
        if result.size == record.size and result.sha256 == record.sha256:
            os.replace(part, os.path.join(options.inbox, record.name))
            fsync_dir(options.inbox)
            return fetched
        log.warning(
            "%s failed verification (attempt %d of %d); discarding it", record.name, attempt, CORRUPT_ATTEMPTS
        )
        os.unlink(part)
    raise TransientError(
        f"{record.name} failed SHA-256 verification {CORRUPT_ATTEMPTS} times; nothing of it was applied",
        "the remote file may be damaged; repack with: python -m remote pack --full",
    )


def _check_not_reset(records: Sequence[outbox.BundleRecord], have_seq: int, have_source: str) -> None:
    """Given the index, refuse an outbox that ends below what the local side already holds."""
    if records and records[-1].seq < have_seq:
        raise PermanentError(
            f"the remote outbox ends at seq {records[-1].seq} but the local side is at seq {have_seq}: "
            "was the outbox reset?",
            f"to re-sync from its newest full bundle, move {have_source} aside",
        )


def _sync(
    session: SftpSession, options: PullOptions, have: int, have_source: str, report: PullReport
) -> None:
    """Given an open session, download what is missing after seq ``have``, in order."""
    state = load_state(options.inbox)
    records = session.run("read the outbox index", lambda s: read_index(s, options.remote_outbox))
    _check_not_reset(records, have, have_source)
    chain = plan_downloads(records, have)
    if chain and chain[0].seq != have + 1:
        report.restarted_from_full = True
        log.warning("local side is at seq %d; continuing from full bundle %s", have, chain[0].name)
    _drop_stale_parts(options.inbox, chain)
    for record in chain:
        if _is_verified(options, record, state):
            report.present.append(record.name)
            continue
        report.bytes_transferred += fetch_verified(session, options, record)
        state[record.name] = {
            "seq": record.seq,
            "sha256": record.sha256,
            "size": record.size,
            "verified_at": now_iso(),
        }
        save_state(options.inbox, state)
        report.downloaded.append(record.name)
        log.info("pulled %s (%d bytes, verified)", record.name, record.size)
    ack = session.run("read the ack", lambda s: read_ack(s, options.remote_outbox, options.consumer))
    report.remote_ack_seq = ack.applied_seq if ack is not None else None


def pull(session: SftpSession, options: PullOptions, have_seq: int, have_source: str = "") -> PullReport:
    """Given an open session and the seq the local side holds, bring the inbox up to date.

    ``have_source`` names where ``have_seq`` came from, for the hint when the outbox was reset.
    The inbox is locked meanwhile, so two pulls never download into one inbox.
    """
    check_consumer(options.consumer)
    os.makedirs(options.inbox, exist_ok=True)
    report = PullReport()
    source = have_source or os.path.join(options.inbox, PULL_STATE_NAME)
    with exclusive_lock(os.path.join(options.inbox, PULL_LOCK_NAME), "pull"):
        try:
            _sync(session, options, have_seq, source, report)
        except OSError as exc:
            raise UserError(
                f"pull from {options.params.endpoint}:{options.remote_outbox} failed: {exc}",
                "check --remote-outbox, the remote user's permissions and free space in the inbox",
            ) from exc
    return report


def pull_inbox(options: PullOptions, retrying: Optional[Retrying] = None) -> PullReport:
    """Given the options, bring the inbox up to date from its own record of what it holds."""
    with SftpSession(options.params, retrying) as session:
        return pull(session, options, inbox_seq(options.inbox))
