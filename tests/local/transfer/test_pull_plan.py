"""Which bundles pull fetches, and how its flags and environment variables are read (no network)."""

from __future__ import annotations

from typing import List

import pytest

from local.cli.main import build_parser
from local.cli.pull import default_consumer, options_from_args
from local.errors import PermanentError, UserError
from local.transfer.pull import check_consumer, plan_downloads
from remote.contract.outbox import CONSUMER_RE, BundleRecord, bundle_name


def records(*specs: str) -> List[BundleRecord]:
    """Given specs like '1f', '2d', return index records."""
    out = []
    for spec in specs:
        seq, kind = int(spec[:-1]), {"f": "full", "d": "delta"}[spec[-1]]
        out.append(BundleRecord(seq, kind, bundle_name(seq, kind), 10, "0" * 64, 1, "t"))
    return out


def seqs(chain: List[BundleRecord]) -> List[int]:
    return [r.seq for r in chain]


def test_pull_plan_fresh_consumer_starts_at_newest_full() -> None:
    assert seqs(plan_downloads(records("1f", "2d", "3f", "4d"), 0)) == [3, 4]


def test_pull_plan_continues_deltas_after_what_is_had() -> None:
    assert seqs(plan_downloads(records("1f", "2d", "3d", "4d"), 2)) == [3, 4]
    assert plan_downloads(records("1f", "2d"), 2) == []


def test_pull_plan_behind_retention_takes_newest_full() -> None:
    assert seqs(plan_downloads(records("7f", "8d", "9d"), 3)) == [7, 8, 9]


def test_pull_plan_gap_without_full_is_permanent_error() -> None:
    with pytest.raises(PermanentError, match="lacks bundle 4"):
        plan_downloads(records("1f", "5d", "6d"), 3)


def test_pull_consumer_default_is_a_valid_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "_gpu box#7.lab")
    assert default_consumer() == "gpu-box-7.lab"
    assert CONSUMER_RE.match(default_consumer())
    with pytest.raises(UserError, match="consumer name"):
        check_consumer("../evil")


def test_pull_flags_come_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "PULL_HOST": "gpu01",
        "PULL_PORT": "2222",
        "PULL_USER": "eval",
        "PULL_IDENTITY": "/keys/id",
        "PULL_KNOWN_HOSTS": "/keys/known_hosts",
        "PULL_ACCEPT_NEW_HOST_KEY": "true",
        "PULL_REMOTE_OUTBOX": "/data/outbox",
        "PULL_INBOX": "/inbox",
        "PULL_CONSUMER": "uploader-1",
        "RESULTS_ROOT": "/results",
        "SSH_KEY_PASSPHRASE": "pw",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = build_parser().parse_args(["pull"])
    options = options_from_args(args)
    params = options.params
    assert (params.host, params.port, params.user, params.identity) == ("gpu01", 2222, "eval", "/keys/id")
    assert (params.known_hosts, params.accept_new_host_key, params.passphrase) == (
        "/keys/known_hosts",
        True,
        "pw",
    )
    assert (options.remote_outbox, options.inbox, options.consumer) == (
        "/data/outbox",
        "/inbox",
        "uploader-1",
    )
    assert args.results_root == "/results"  # where the ledger, and so the ack, comes from
    assert "pw" not in repr(options)


def test_pull_help_ends_with_example(capsys: pytest.CaptureFixture) -> None:
    for command in ("pull", "unpack"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        lines = capsys.readouterr().out.rstrip().splitlines()
        last_header = max(i for i, line in enumerate(lines) if line and not line.startswith(" "))
        assert lines[last_header] == "example:"
