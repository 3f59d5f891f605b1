"""Round trips through a real sshd: remote pack -> pull -> unpack reproduces the remote tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest
from tenacity import wait_none

from local.cli.main import main
from local.errors import PermanentError
from local.service.cycle import sync_remote
from local.transfer.ack import write_ack
from local.transfer.pull import PullOptions, pull_inbox
from local.transfer.sftp import SFTP_RETRY
from local.unpack.apply import unpack_inbox
from remote import cli as remote_cli
from remote.contract.outbox import parse_ack
from tests.fixtures.sshd import SshServer
from tests.fixtures.trees import make_results_tree, write_checkpoint

FAST = SFTP_RETRY.copy(wait=wait_none())
CONSUMER = "test-consumer"


class Sides:
    """The remote results + outbox, and the local inbox + results, of one test."""

    def __init__(self, tmp_path: Path, server: SshServer) -> None:
        self.remote = make_results_tree(tmp_path / "remote-results", ["ModelA", "ModelB"], [100, 200])
        self.outbox = tmp_path / "outbox"
        self.inbox = tmp_path / "inbox"
        self.local = tmp_path / "local-results"
        self.server = server
        self.known_hosts = server.write_known_hosts(tmp_path / "known_hosts")

    def pack(self, *extra: str) -> None:
        args = ["pack", "--results-root", str(self.remote), "--outbox", str(self.outbox), *extra]
        assert remote_cli.main(args) == 0

    def options(self) -> PullOptions:
        return PullOptions(self.server.params(self.known_hosts), str(self.outbox), str(self.inbox), CONSUMER)

    def sync(self):
        """Pull what is new (acking what the local results root says was applied before)."""
        return sync_remote(self.options(), str(self.local), FAST)

    def cycle(self):
        """Pull (acking what was applied before), then unpack; return the pull report."""
        report = self.sync()
        unpack_inbox(str(self.local), str(self.inbox))
        return report

    def ack(self) -> Optional[int]:
        path = self.outbox / "acks" / (CONSUMER + ".json")
        return parse_ack(json.loads(path.read_text())).applied_seq if path.exists() else None


def visible_tree(root: Path) -> Dict[str, bytes]:
    """Return the files under ``root`` except the unpacker's own hidden bookkeeping."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".unpack")
    }


@pytest.fixture
def sides(tmp_path: Path, sshd: SshServer) -> Sides:
    return Sides(tmp_path, sshd)


def test_pull_full_round_trip_reproduces_remote_tree(sides: Sides) -> None:
    sides.pack()
    report = sides.cycle()
    assert report.downloaded == ["bundle-00000001-full.tar.gz"]
    assert visible_tree(sides.local) == visible_tree(sides.remote)
    assert ".wandb_eval_manifest.json" in visible_tree(sides.local)
    assert sides.ack() is None  # nothing was applied when that pull ran
    assert sides.sync().acked_seq == 1
    assert sides.ack() == 1


def test_pull_incremental_round_trip_fetches_only_the_delta(sides: Sides) -> None:
    sides.pack()
    sides.cycle()
    write_checkpoint(sides.remote, "ModelA", 300)
    write_checkpoint(sides.remote, "ModelC", 100)
    write_checkpoint(sides.remote, "ModelB", 200, metrics={"HR@10": 0.5})  # re-evaluated
    sides.pack()
    report = sides.cycle()
    assert report.downloaded == ["bundle-00000002-delta.tar.gz"]
    assert report.acked_seq == 1
    assert visible_tree(sides.local) == visible_tree(sides.remote)


def test_pull_second_pull_transfers_nothing(sides: Sides) -> None:
    sides.pack()
    sides.cycle()
    sides.sync()
    again = sides.sync()
    assert (again.downloaded, again.bytes_transferred, again.acked_seq) == ([], 0, None)
    without_root = pull_inbox(sides.options(), FAST)  # the inbox state alone also knows seq 1 is had
    assert (without_root.downloaded, without_root.bytes_transferred) == ([], 0)


def test_pull_behind_retention_takes_newest_full_bundle(sides: Sides) -> None:
    sides.pack()
    sides.cycle()  # applied seq 1, never acked: retention may prune past this consumer
    for step, extra in ((300, ()), (400, ()), (500, ("--full",)), (600, ())):
        write_checkpoint(sides.remote, "ModelA", step)
        sides.pack("--keep", "2", *extra)
    names = [b["name"] for b in json.loads((sides.outbox / "index.json").read_text())["bundles"]]
    assert names == ["bundle-00000004-full.tar.gz", "bundle-00000005-delta.tar.gz"]
    report = sides.sync()
    assert report.restarted_from_full
    assert report.downloaded == names
    unpack_inbox(str(sides.local), str(sides.inbox))
    assert visible_tree(sides.local) == visible_tree(sides.remote)
    sides.sync()
    assert sides.ack() == 5


def test_pull_write_ack_is_written_once(sides: Sides) -> None:
    sides.pack()
    params = sides.options().params
    assert write_ack(params, str(sides.outbox), CONSUMER, 1, FAST) is True
    assert write_ack(params, str(sides.outbox), CONSUMER, 1, FAST) is False
    assert sides.ack() == 1
    assert sorted(p.name for p in (sides.outbox / "acks").iterdir()) == [CONSUMER + ".json"]


def test_pull_cli_downloads_and_reports(sides: Sides, capsys: pytest.CaptureFixture) -> None:
    sides.pack()
    server = sides.server
    args = ["pull", "--host", server.host, "--port", str(server.port), "--user", server.user]
    args += ["--identity", str(server.user_key), "--known-hosts", str(sides.known_hosts)]
    args += ["--remote-outbox", str(sides.outbox), "--inbox", str(sides.inbox), "--consumer", CONSUMER]
    assert main(args) == 0
    assert "pull: 1 new bundle(s)" in capsys.readouterr().out
    assert (sides.inbox / "bundle-00000001-full.tar.gz").is_file()


def test_pull_cli_missing_remote_outbox_is_usage_error(sides: Sides, capsys: pytest.CaptureFixture) -> None:
    server = sides.server
    args = ["pull", "--host", server.host, "--port", str(server.port), "--user", server.user]
    args += ["--identity", str(server.user_key), "--known-hosts", str(sides.known_hosts)]
    args += ["--remote-outbox", "/nonexistent/outbox", "--inbox", str(sides.inbox)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("Error:") == 1 and "/nonexistent/outbox" in err


def test_pull_and_unpack_as_processes_configured_by_environment(sides: Sides) -> None:
    """How compose runs them: ``python -m local ...`` with every setting from the environment."""
    sides.pack()
    server = sides.server
    env = dict(os.environ)
    env.update(
        PULL_HOST=server.host,
        PULL_PORT=str(server.port),
        PULL_USER=server.user,
        PULL_IDENTITY=str(server.user_key),
        PULL_KNOWN_HOSTS=str(sides.known_hosts),
        PULL_REMOTE_OUTBOX=str(sides.outbox),
        PULL_INBOX=str(sides.inbox),
        PULL_CONSUMER=CONSUMER,
        RESULTS_ROOT=str(sides.local),
    )
    for command in ("pull", "unpack", "pull"):
        done = subprocess.run(
            [sys.executable, "-m", "local", command], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    assert "acked seq 1" in done.stdout
    assert visible_tree(sides.local) == visible_tree(sides.remote)
    assert sides.ack() == 1


def test_pull_outbox_reset_behind_local_side_is_reported(sides: Sides) -> None:
    sides.pack()
    sides.cycle()
    for step in (300, 400):
        write_checkpoint(sides.remote, "ModelA", step)
        sides.pack()
    sides.cycle()  # local side now at seq 3
    shutil.rmtree(sides.outbox)
    sides.pack()  # a fresh outbox starts again at seq 1
    with pytest.raises(PermanentError, match="ends at seq 1 but the local side is at seq 3"):
        sides.sync()
