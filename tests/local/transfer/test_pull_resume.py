"""Broken and corrupted downloads: resumed from the partial file, or discarded and never applied."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
from tenacity import wait_none

from local.cli.main import main
from local.errors import TransientError
from local.transfer.pull import PullOptions, pull_inbox
from local.transfer.sftp import SFTP_RETRY
from local.unpack.apply import unpack_inbox
from remote.contract import outbox
from remote.contract.exit_codes import EXIT_TRANSIENT
from remote.contract.files import now_iso
from remote.contract.names import INDEX_NAME
from tests.fixtures.relay import Relay
from tests.fixtures.sshd import SshServer

FAST = SFTP_RETRY.copy(wait=wait_none())
PAYLOAD_BYTES = 3 * 1024 * 1024


def publish_random_bundle(directory: Path, payload_bytes: int = PAYLOAD_BYTES) -> outbox.BundleRecord:
    """Publish one full bundle holding an incompressible file, with its index, like the packer does."""
    directory.mkdir(parents=True, exist_ok=True)
    name = outbox.bundle_name(1, "full")
    data = os.urandom(payload_bytes)
    with tarfile.open(directory / name, "w:gz") as tar:
        info = tarfile.TarInfo("ModelA/checkpoint-1/blob.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    raw = (directory / name).read_bytes()
    record = outbox.BundleRecord(1, "full", name, len(raw), hashlib.sha256(raw).hexdigest(), 1, now_iso())
    (directory / INDEX_NAME).write_bytes(outbox.dumps(outbox.index_to_json([record], now_iso())))
    return record


def options(tmp_path: Path, sshd: SshServer, port: int) -> PullOptions:
    known_hosts = sshd.write_known_hosts(tmp_path / "known_hosts", port)
    return PullOptions(
        sshd.params(known_hosts, port), str(tmp_path / "outbox"), str(tmp_path / "inbox"), "c1"
    )


def test_pull_cut_mid_download_resumes_from_partial_file(tmp_path: Path, sshd: SshServer) -> None:
    record = publish_random_bundle(tmp_path / "outbox")
    with Relay(sshd.host, sshd.port, cut_after=record.size // 2, cuts_left=1) as relay:
        report = pull_inbox(options(tmp_path, sshd, relay.port), FAST)
    assert report.downloaded == [record.name]
    first, second = relay.connections
    assert first.cut and not second.cut
    # Resumed, not restarted: the second connection carried less than the whole bundle.
    assert second.bytes_down < record.size
    assert report.bytes_transferred < record.size
    final = tmp_path / "inbox" / record.name
    assert hashlib.sha256(final.read_bytes()).hexdigest() == record.sha256
    assert not (tmp_path / "inbox" / (record.name + ".part")).exists()


def test_pull_corrupt_partial_is_discarded_and_refetched(tmp_path: Path, sshd: SshServer) -> None:
    record = publish_random_bundle(tmp_path / "outbox", 64 * 1024)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / (record.name + ".part")).write_bytes(b"\0" * record.size)  # complete size, wrong bytes
    report = pull_inbox(options(tmp_path, sshd, sshd.port), FAST)
    assert report.downloaded == [record.name]
    assert report.bytes_transferred == record.size  # fetched again from the start
    assert hashlib.sha256((inbox / record.name).read_bytes()).hexdigest() == record.sha256


def test_pull_corrupt_remote_bundle_is_never_applied(tmp_path: Path, sshd: SshServer) -> None:
    record = publish_random_bundle(tmp_path / "outbox", 64 * 1024)
    remote_file = tmp_path / "outbox" / record.name
    damaged = bytearray(remote_file.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    remote_file.write_bytes(bytes(damaged))
    with pytest.raises(TransientError, match="failed SHA-256 verification 3 times"):
        pull_inbox(options(tmp_path, sshd, sshd.port), FAST)
    inbox = tmp_path / "inbox"
    assert sorted(p.name for p in inbox.iterdir() if not p.name.startswith(".")) == []
    report = unpack_inbox(str(tmp_path / "results"), str(inbox))
    assert report.applied == [] and not (tmp_path / "results" / "ModelA").exists()


def test_pull_cli_corrupt_remote_bundle_exits_transient(
    tmp_path: Path, sshd: SshServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    record = publish_random_bundle(tmp_path / "outbox", 16 * 1024)
    (tmp_path / "outbox" / record.name).write_bytes(b"x" * record.size)
    monkeypatch.setattr("local.transfer.sftp.SFTP_RETRY", FAST)
    known_hosts = sshd.write_known_hosts(tmp_path / "known_hosts")
    args = ["pull", "--host", sshd.host, "--port", str(sshd.port), "--user", sshd.user]
    args += ["--identity", str(sshd.user_key), "--known-hosts", str(known_hosts)]
    args += ["--remote-outbox", str(tmp_path / "outbox"), "--inbox", str(tmp_path / "inbox")]
    assert main(args) == EXIT_TRANSIENT
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("Error:")] == [
        "Error: {} failed SHA-256 verification 3 times; nothing of it was applied".format(record.name)
    ]


def test_pull_verified_file_missing_from_state_is_not_downloaded_again(
    tmp_path: Path, sshd: SshServer
) -> None:
    """A crash between the rename and the state save: the file is hashed, not fetched again."""
    record = publish_random_bundle(tmp_path / "outbox", 64 * 1024)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / record.name).write_bytes((tmp_path / "outbox" / record.name).read_bytes())
    (inbox / (outbox.bundle_name(9, "delta") + ".part")).write_bytes(b"stale")
    report = pull_inbox(options(tmp_path, sshd, sshd.port), FAST)
    assert (report.downloaded, report.present, report.bytes_transferred) == ([], [record.name], 0)
    assert sorted(p.name for p in inbox.iterdir() if not p.name.startswith(".")) == [record.name]


def test_pull_final_file_with_wrong_content_is_replaced(tmp_path: Path, sshd: SshServer) -> None:
    record = publish_random_bundle(tmp_path / "outbox", 64 * 1024)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / record.name).write_bytes(b"\0" * record.size)
    report = pull_inbox(options(tmp_path, sshd, sshd.port), FAST)
    assert report.downloaded == [record.name]
    assert hashlib.sha256((inbox / record.name).read_bytes()).hexdigest() == record.sha256
