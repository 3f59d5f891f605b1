"""Connecting to the real sshd: host keys, user keys, unreachable hosts, exit codes and messages."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import List

import pytest
from tenacity import stop_after_attempt, wait_none

from local.cli.main import main
from local.errors import PermanentError, TransientError, UserError
from local.transfer.pull import PullOptions, pull_inbox
from local.transfer.sftp import SFTP_RETRY, ConnectionParams, load_private_key
from remote.contract.exit_codes import EXIT_PERMANENT, EXIT_TRANSIENT, EXIT_USAGE
from tests.fixtures.relay import Relay
from tests.fixtures.sshd import SshServer, free_port

FAST = SFTP_RETRY.copy(wait=wait_none())


def pull_with(tmp_path: Path, params: ConnectionParams, retrying=FAST):
    (tmp_path / "outbox").mkdir(exist_ok=True)
    return pull_inbox(PullOptions(params, str(tmp_path / "outbox"), str(tmp_path / "inbox"), "c1"), retrying)


def cli_args(server: SshServer, tmp_path: Path, known_hosts: Path, port: int = 0) -> List[str]:
    (tmp_path / "outbox").mkdir(exist_ok=True)
    args = ["pull", "--host", server.host, "--port", str(port or server.port), "--user", server.user]
    args += ["--identity", str(server.user_key), "--known-hosts", str(known_hosts)]
    return args + ["--remote-outbox", str(tmp_path / "outbox"), "--inbox", str(tmp_path / "inbox")]


def error_lines(err: str) -> List[str]:
    return [line for line in err.splitlines() if line.startswith("Error:")]


def test_sftp_unknown_host_key_names_host_and_pin_command(tmp_path: Path, sshd: SshServer) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    with pytest.raises(PermanentError) as caught:
        pull_with(tmp_path, sshd.params(known_hosts))
    assert "{}:{}".format(sshd.host, sshd.port) in caught.value.message
    assert "is not in {}".format(known_hosts) in caught.value.message
    assert "ssh-keyscan -p {} {} >> {}".format(sshd.port, sshd.host, known_hosts) in caught.value.hint


def test_sftp_known_hosts_entry_for_port_22_does_not_match_other_port(
    tmp_path: Path, sshd: SshServer
) -> None:
    """OpenSSH stores non-22 ports as [host]:port; a bare host entry must not vouch for them."""
    known_hosts = sshd.write_known_hosts(tmp_path / "known_hosts", port=22)
    with pytest.raises(PermanentError, match="is not in"):
        pull_with(tmp_path, sshd.params(known_hosts))


def test_sftp_changed_host_key_is_refused_even_with_accept_new(
    tmp_path: Path, sshd: SshServer, other_host_key: str
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("[{}]:{} {}\n".format(sshd.host, sshd.port, other_host_key))
    with pytest.raises(PermanentError, match="CHANGED") as caught:
        pull_with(tmp_path, sshd.params(known_hosts, accept_new_host_key=True))
    assert "ssh-keygen -R" in caught.value.hint
    assert known_hosts.read_text().count("\n") == 1  # nothing was added


def test_sftp_accept_new_pins_unknown_key_then_strict_works(tmp_path: Path, sshd: SshServer) -> None:
    known_hosts = tmp_path / "ssh" / "known_hosts"  # neither the file nor its directory exist yet
    pull_with(tmp_path, sshd.params(known_hosts, accept_new_host_key=True))
    assert known_hosts.read_text() == sshd.known_hosts_line()
    keyscan = subprocess.run(
        ["ssh-keygen", "-F", "[{}]:{}".format(sshd.host, sshd.port), "-f", str(known_hosts)],
        capture_output=True,
        text=True,
    )
    assert keyscan.returncode == 0  # OpenSSH itself reads the pinned entry
    pull_with(tmp_path, sshd.params(known_hosts))


def test_sftp_wrong_user_key_fails_fast_without_retries(
    tmp_path: Path, sshd: SshServer, other_key: Path
) -> None:
    with Relay(sshd.host, sshd.port) as relay:
        known_hosts = sshd.write_known_hosts(tmp_path / "known_hosts", relay.port)
        with pytest.raises(PermanentError, match="authentication as"):
            pull_with(tmp_path, sshd.params(known_hosts, relay.port, identity=other_key))
        assert len(relay.connections) == 1  # one connection: no retry storm


def test_sftp_unreachable_host_retries_then_transient_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    params = ConnectionParams("127.0.0.1", port, "nobody", known_hosts=str(tmp_path / "kh"), timeout=2)
    policy = FAST.copy(stop=stop_after_attempt(3))
    with (
        caplog.at_level(logging.WARNING, logger="local.transfer.sftp"),
        pytest.raises(TransientError) as caught,
    ):
        pull_with(tmp_path, params, policy)
    assert policy.statistics["attempt_number"] == 3
    assert "127.0.0.1:{}".format(port) in caught.value.message and "3 attempt(s)" in caught.value.message
    assert len([r for r in caplog.records if "Retrying" in r.getMessage()]) == 2  # each retry is logged


def test_sftp_cli_exit_codes_and_single_error_line(
    tmp_path: Path, sshd: SshServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr("local.transfer.sftp.SFTP_RETRY", FAST.copy(stop=stop_after_attempt(2)))
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    assert main(cli_args(sshd, tmp_path, empty)) == EXIT_PERMANENT
    assert main(cli_args(sshd, tmp_path, empty, port=free_port())) == EXIT_TRANSIENT
    assert main(["pull", "--inbox", str(tmp_path / "inbox")]) == EXIT_USAGE
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 3
    assert lines[0].startswith("Error: host key of {}:{}".format(sshd.host, sshd.port))
    assert lines[1].startswith("Error: could not read the outbox index on 127.0.0.1:")
    assert lines[2] == "Error: --host is required"


def test_sftp_passphrase_comes_from_env_and_is_never_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_path / "locked_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret-phrase", "-f", str(key)], check=True)
    with pytest.raises(UserError, match="encrypted"):
        load_private_key(ConnectionParams("h", identity=str(key)))
    with pytest.raises(UserError, match="cannot be loaded"):
        load_private_key(ConnectionParams("h", identity=str(key), passphrase="wrong"))
    params = ConnectionParams("h", identity=str(key), passphrase="s3cret-phrase")
    assert load_private_key(params) is not None
    assert "s3cret-phrase" not in repr(params)
    monkeypatch.setenv("SSH_KEY_PASSPHRASE", "s3cret-phrase")
    with caplog.at_level(logging.DEBUG):
        main(
            [
                "--log-level",
                "DEBUG",
                "pull",
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
                "--identity",
                str(key),
            ]
        )
    assert "s3cret-phrase" not in caplog.text
