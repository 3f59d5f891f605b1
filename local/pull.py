"""``pull``: fetch the bundles the local side lacks from the remote outbox, verified, in order.

Bookkeeping lives in the inbox: ``<inbox>/.pull-state.json`` lists the bundles downloaded and
verified there (size and SHA-256 against the outbox index). A bundle is downloaded to
``<name>.part`` (resumed from its size after a broken connection), verified, then renamed to
its final name, so unpack only ever sees verified bundles. What is "already had" comes from
the results root's unpack ledger when ``results_root`` is given, else from the pull state.
With ``results_root``, pull also acknowledges what the ledger says was applied.
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

from local.ack import ack_if_needed, check_consumer, write_ack
from local.download import download_resumable
from local.errors import PermanentError, TransientError, UserError
from local.ledger import load_ledger
from local.sftp import ConnectionParams, SftpSession
from local.unpack import sha256_file
from remote import outbox
from remote.fsutil import exclusive_lock, fsync_dir, write_json_atomic

log = logging.getLogger(__name__)

# write_ack is re-exported: the `once` command acks right after unpack through local.pull.
__all__ = ["PullOptions", "PullReport", "check_consumer", "plan_downloads", "pull", "write_ack"]

STATE_NAME = ".pull-state.json"
STATE_VERSION = 1
LOCK_NAME = ".pull.lock"
PART_SUFFIX = ".part"
CORRUPT_ATTEMPTS = 3


@dataclass(frozen=True)
class PullOptions:
    """Everything one pull needs."""

    params: ConnectionParams
    remote_outbox: str
    inbox: str
    consumer: str
    results_root: Optional[str] = None


@dataclass
class PullReport:
    """What one pull did."""

    downloaded: List[str] = field(default_factory=list)
    present: List[str] = field(default_factory=list)
    bytes_transferred: int = 0
    acked_seq: Optional[int] = None
    restarted_from_full: bool = False


def load_state(inbox: str) -> Dict[str, Dict[str, object]]:
    """Given an inbox, return its verified bundles (name -> seq, sha256, size); empty if unreadable."""
    try:
        with open(os.path.join(inbox, STATE_NAME), "rb") as handle:
            document = json.load(handle)
        bundles = document["bundles"] if document.get("version") == STATE_VERSION else {}
        return {str(k): dict(v) for k, v in bundles.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("pull state in %s unreadable (%s); bundles there are verified again", inbox, exc)
        return {}


def save_state(inbox: str, state: Dict[str, Dict[str, object]]) -> None:
    """Given the verified bundles, keep the newest 200 entries and write the state atomically."""
    newest = sorted(state.items(), key=lambda item: int(str(item[1]["seq"])))[-200:]
    write_json_atomic(os.path.join(inbox, STATE_NAME), {"version": STATE_VERSION, "bundles": dict(newest)})


def plan_downloads(records: Sequence[outbox.BundleRecord], have_seq: int) -> List[outbox.BundleRecord]:
    """Given the index and the highest seq the local side has, return the bundles to get, in order.

    The chain starts at the newest full bundle above ``have_seq`` when there is one (a full
    bundle stands for everything before it), which also covers a local side that fell behind
    the remote's retention; otherwise the deltas must continue ``have_seq`` without a gap.
    """
    newer = [r for r in records if r.seq > have_seq]
    fulls = [i for i, r in enumerate(newer) if r.kind == "full"]
    chain = newer[fulls[-1] :] if fulls else newer
    expected = have_seq + 1
    for record in chain:
        if record.kind == "delta" and record.seq != expected:
            raise PermanentError(
                "the outbox lacks bundle {} that delta {} builds on, and has no newer full bundle".format(
                    expected, record.name
                ),
                "on the training machine run: python -m remote pack --full --results-root ... --outbox ...",
            )
        expected = record.seq + 1
    return chain


def read_index(sftp: paramiko.SFTPClient, remote_outbox: str) -> List[outbox.BundleRecord]:
    """Given an SFTP client, return the outbox's bundles (none when it has no index yet)."""
    try:
        with sftp.open(posixpath.join(remote_outbox, outbox.INDEX_NAME), "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        sftp.stat(remote_outbox)  # a missing outbox directory is an error, a missing index is not
        return []
    try:
        return outbox.parse_index(json.loads(data.decode("utf-8")))
    except (ValueError, outbox.OutboxFormatError) as exc:
        raise UserError("remote outbox index is unusable ({})".format(exc), "check the packer on the remote")


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
            "download {}".format(record.name), lambda s: download_resumable(s, remote_path, part, record.size)
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
        "{} failed SHA-256 verification {} times; nothing of it was applied".format(
            record.name, CORRUPT_ATTEMPTS
        ),
        "the remote file may be damaged; repack with: python -m remote pack --full",
    )


def _have_seq(options: PullOptions, state: Dict[str, Dict[str, object]]) -> int:
    """Given the options, return the highest seq the local side has (ledger, else verified inbox)."""
    if options.results_root:
        return load_ledger(options.results_root).applied_seq
    return max((int(str(entry["seq"])) for entry in state.values()), default=0)


def _sync(session: SftpSession, options: PullOptions, report: PullReport) -> None:
    """Given an open session, download what is missing, then ack what the ledger says was applied."""
    state = load_state(options.inbox)
    have = _have_seq(options, state)
    records = session.run("read the outbox index", lambda s: read_index(s, options.remote_outbox))
    if records and records[-1].seq < have:
        raise PermanentError(
            "the remote outbox ends at seq {} but the local side is at seq {}: was the outbox reset?".format(
                records[-1].seq, have
            ),
            "to re-sync from its newest full bundle, move {} aside".format(
                "the results root's .unpack-ledger.json"
                if options.results_root
                else "the inbox's .pull-state.json"
            ),
        )
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
        state[record.name] = {"seq": record.seq, "sha256": record.sha256, "size": record.size}
        save_state(options.inbox, state)
        report.downloaded.append(record.name)
        log.info("pulled %s (%d bytes, verified)", record.name, record.size)
    if options.results_root:
        applied = load_ledger(options.results_root).applied_seq
        if applied and ack_if_needed(session, options.remote_outbox, options.consumer, applied):
            report.acked_seq = applied


def pull(options: PullOptions, retrying: Optional[Retrying] = None) -> PullReport:
    """Given the options, bring the inbox up to date with the remote outbox; return what happened."""
    check_consumer(options.consumer)
    os.makedirs(options.inbox, exist_ok=True)
    report = PullReport()
    lock = exclusive_lock(os.path.join(options.inbox, LOCK_NAME), "pull")
    with lock, SftpSession(options.params, retrying) as session:
        try:
            _sync(session, options, report)
        except OSError as exc:
            raise UserError(
                "pull from {}:{} failed: {}".format(options.params.endpoint, options.remote_outbox, exc),
                "check --remote-outbox, the remote user's permissions and free space in the inbox",
            )
    return report
