"""Acknowledgements: tell the remote outbox which bundles this consumer has applied.

The ack (``acks/<consumer>.json``, format in :mod:`remote.contract.outbox`) is what the packer's
retention reads; it is written over SFTP under a hidden temporary name and renamed into place, so
the packer never reads half an ack. Callers write it only after unpack applied what it covers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import posixpath
from typing import Optional

import paramiko
from tenacity import Retrying

from local.errors import UserError
from local.transfer.sftp import ConnectionParams, SftpSession
from remote.contract import outbox
from remote.contract.files import now_iso
from remote.contract.names import ACKS_DIR, TEMP_PREFIX

log = logging.getLogger(__name__)


def read_ack(sftp: paramiko.SFTPClient, remote_outbox: str, consumer: str) -> Optional[outbox.Ack]:
    """Given an SFTP client, return this consumer's current ack on the remote (None if absent or bad)."""
    try:
        with sftp.open(posixpath.join(remote_outbox, outbox.ack_name(consumer)), "rb") as handle:
            return outbox.parse_ack(json.loads(handle.read().decode("utf-8")))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        log.warning("replacing unreadable ack of %s (%s)", consumer, exc)
        return None


def put_ack(sftp: paramiko.SFTPClient, remote_outbox: str, consumer: str, applied_seq: int) -> None:
    """Given an SFTP client, write the ack atomically (temporary hidden name, then POSIX rename)."""
    directory = posixpath.join(remote_outbox, ACKS_DIR)
    with contextlib.suppress(OSError):
        sftp.mkdir(directory)  # already there is the usual case
    data = outbox.dumps(outbox.ack_to_json(outbox.Ack(consumer, applied_seq, now_iso())))
    temporary = posixpath.join(directory, f"{TEMP_PREFIX}{consumer}.part")
    with sftp.open(temporary, "wb") as handle:
        handle.write(data)
    final = posixpath.join(remote_outbox, outbox.ack_name(consumer))
    try:
        sftp.posix_rename(temporary, final)
    except OSError:
        # Servers without the posix-rename extension refuse to rename over an existing file.
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(final)
        sftp.rename(temporary, final)


def acknowledge(session: SftpSession, remote_outbox: str, consumer: str, applied_seq: int) -> bool:
    """Given an open session, write the ack unless the remote already holds this one; say if written."""
    current = session.run("read the ack", lambda s: read_ack(s, remote_outbox, consumer))
    if current is not None and current.applied_seq == applied_seq:
        return False
    session.run("write the ack", lambda s: put_ack(s, remote_outbox, consumer, applied_seq))
    log.info("acknowledged bundles up to seq %d as consumer %s", applied_seq, consumer)
    return True


def check_consumer(consumer: str) -> None:
    """Given a consumer name, raise UserError (before any network traffic) unless the outbox accepts it."""
    try:
        outbox.ack_name(consumer)
    except ValueError as exc:
        raise UserError(str(exc), "set --consumer / PULL_CONSUMER") from exc


def write_ack(
    params: ConnectionParams,
    remote_outbox: str,
    consumer: str,
    applied_seq: int,
    retrying: Optional[Retrying] = None,
) -> bool:
    """Given connection params, ack ``applied_seq`` for this consumer on the remote; say if written."""
    check_consumer(consumer)
    with SftpSession(params, retrying) as session:
        return acknowledge(session, remote_outbox, consumer, applied_seq)
