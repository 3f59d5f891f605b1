"""SFTP edge of the local role: verified connections, one retry policy, resumable downloads.

Host keys are checked against a known_hosts file (unknown keys rejected unless the caller
opts in to OpenSSH-style ``accept-new``; a changed key is always refused). Transient
failures (refused/reset connections, timeouts, EOF, a dropped transport) are retried by
``SFTP_RETRY``; authentication and host-key failures are raised at once as PermanentError.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Callable, Optional, TypeVar

import paramiko
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from local.errors import PermanentError, TransientError, UserError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Channel tuning measured in bench/pull.md: an 8 MiB window and 128 KiB packets roughly double
# paramiko's throughput over its 2 MiB / 32 KiB defaults (fewer, larger packets through Python).
WINDOW = 8 * 1024 * 1024
MAX_PACKET = 128 * 1024
TRANSIENT_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.EHOSTDOWN,
    errno.EPIPE,
}


class UnknownHostKeyError(paramiko.SSHException):
    """The server offered a host key the known_hosts file does not list."""

    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"unknown host key for {hostname}")
        self.hostname = hostname
        self.key = key


class ConnectionLostError(ConnectionError):
    """An SFTP operation failed because the SSH transport underneath it died."""


@dataclass(frozen=True)
class ConnectionParams:
    """Where and how to reach the remote outbox over SFTP (the passphrase is never shown)."""

    host: str
    port: int = 22
    user: str = ""
    identity: Optional[str] = None
    passphrase: Optional[str] = field(default=None, repr=False)
    known_hosts: str = "~/.ssh/known_hosts"
    accept_new_host_key: bool = False
    timeout: float = 30.0

    @property
    def endpoint(self) -> str:
        """Return ``host:port`` for messages."""
        return f"{self.host}:{self.port}"

    @property
    def known_hosts_path(self) -> str:
        """Return the known_hosts path with ``~`` expanded."""
        return os.path.expanduser(self.known_hosts)

    def keyscan_line(self) -> str:
        """Return the shell line that pins this server's key into the known_hosts file."""
        return f"ssh-keyscan -p {self.port} {self.host} >> {self.known_hosts_path}"


def is_transient(exc: BaseException) -> bool:
    """Given an exception, say whether retrying the same operation later may succeed."""
    if isinstance(exc, (paramiko.AuthenticationException, paramiko.BadHostKeyException, UnknownHostKeyError)):
        return False
    if isinstance(exc, (EOFError, socket.timeout, ConnectionError, socket.gaierror)):
        return True
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return True
    if isinstance(exc, paramiko.SSHException):
        return True  # banner/negotiation failures and dropped sessions
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


SFTP_RETRY = Retrying(
    retry=retry_if_exception(is_transient),
    stop=stop_after_attempt(6) | stop_after_delay(300),
    wait=wait_exponential_jitter(multiplier=1, max=30, jitter=1),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    """Refuse a server whose key is not pinned (paramiko's RejectPolicy, with the key kept)."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownHostKeyError(hostname, key)


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """Like OpenSSH ``accept-new``: pin an unknown key by appending it; changed keys never reach here."""

    def __init__(self, path: str) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as handle:
            handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)
        log.warning("accepted new host key for %s (%s) into %s", hostname, key.fingerprint, self.path)


def load_private_key(params: ConnectionParams) -> Optional[paramiko.PKey]:
    """Given connection params, load the identity file (None: let paramiko use the agent/defaults)."""
    if not params.identity:
        return None
    path = os.path.expanduser(params.identity)
    try:
        secret = params.passphrase.encode("utf-8") if params.passphrase else None
        return paramiko.PKey.from_path(path, secret)
    except FileNotFoundError:
        raise UserError(f"identity file {path} does not exist", "check --identity / PULL_IDENTITY") from None
    except (paramiko.PasswordRequiredException, TypeError):
        # cryptography reports a missing passphrase as TypeError, paramiko as PasswordRequired.
        raise UserError(f"identity file {path} is encrypted", "set SSH_KEY_PASSPHRASE") from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise UserError(
            f"identity file {path} cannot be loaded ({type(exc).__name__})",
            "check that it is an OpenSSH private key and that SSH_KEY_PASSPHRASE is right",
        ) from exc


def _host_key_error(params: ConnectionParams, exc: paramiko.SSHException) -> PermanentError:
    """Given a host-key failure, return the error that says what to check and how to pin."""
    pin = f"check the fingerprint with the remote's admin, then pin it: {params.keyscan_line()}"
    if isinstance(exc, paramiko.BadHostKeyException):
        return PermanentError(
            f"host key of {params.endpoint} CHANGED: got {exc.key.get_name()} {exc.key.fingerprint}, "
            f"{params.known_hosts_path} expects {exc.expected_key.fingerprint} (possible man-in-the-middle)",
            f"if the server was really reinstalled: ssh-keygen -R '[{params.host}]:{params.port}' "
            f"-f {params.known_hosts_path}; then {pin}",
        )
    key = exc.key if isinstance(exc, UnknownHostKeyError) else None
    shown = f"{key.get_name()} {key.fingerprint}" if key else "unknown"
    return PermanentError(
        f"host key of {params.endpoint} ({shown}) is not in {params.known_hosts_path}",
        f"{pin} (or pass --accept-new-host-key once)",
    )


def _verifying_client(params: ConnectionParams) -> paramiko.SSHClient:
    """Given connection params, return an unconnected client that checks the pinned host keys."""
    client = paramiko.SSHClient()
    if os.path.exists(params.known_hosts_path):
        try:
            client.get_host_keys().load(params.known_hosts_path)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise UserError(f"known_hosts {params.known_hosts_path} is unreadable ({exc})") from exc
    accept_new = params.accept_new_host_key
    client.set_missing_host_key_policy(
        _AcceptNew(params.known_hosts_path) if accept_new else _RejectUnknown()
    )
    return client


def open_client(params: ConnectionParams) -> paramiko.SSHClient:
    """Given connection params, return a connected, host-verified, authenticated SSH client."""
    pkey = load_private_key(params)
    client = _verifying_client(params)
    try:
        client.connect(
            params.host,
            port=params.port,
            username=params.user or None,
            pkey=pkey,
            look_for_keys=pkey is None,
            allow_agent=pkey is None,
            timeout=params.timeout,
            banner_timeout=params.timeout,
            auth_timeout=params.timeout,
        )
    except BaseException as exc:
        client.close()
        if isinstance(exc, (paramiko.BadHostKeyException, UnknownHostKeyError)):
            raise _host_key_error(params, exc) from exc
        if isinstance(exc, paramiko.AuthenticationException):
            raise PermanentError(
                f"authentication as {params.user!r} on {params.endpoint} failed",
                "add the public key (ssh-keygen -y -f IDENTITY) to that user's ~/.ssh/authorized_keys",
            ) from exc
        raise
    return client


class SftpSession:
    """A lazily (re)connected SFTP client whose operations run under a retry policy."""

    def __init__(self, params: ConnectionParams, retrying: Optional[Retrying] = None) -> None:
        self.params = params
        self.retrying = retrying or SFTP_RETRY
        self.connects = 0
        self._client: Optional[paramiko.SSHClient] = None
        self._sftp: Optional[paramiko.SFTPClient] = None

    def __enter__(self) -> SftpSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def sftp(self) -> paramiko.SFTPClient:
        """Return the SFTP client, connecting first if needed."""
        if self._sftp is None:
            self.connects += 1
            log.debug(
                "connecting to %s as %r (attempt %d)", self.params.endpoint, self.params.user, self.connects
            )
            self._client = open_client(self.params)
            transport = self._client.get_transport()
            sftp = paramiko.SFTPClient.from_transport(
                transport, window_size=WINDOW, max_packet_size=MAX_PACKET
            )
            if sftp is None:
                raise ConnectionLostError(f"could not open an SFTP channel on {self.params.endpoint}")
            self._sftp = sftp
            self._sftp.get_channel().settimeout(self.params.timeout)
        return self._sftp

    def close(self) -> None:
        """Close the connection (the next operation reconnects)."""
        if self._client is not None:
            self._client.close()
        self._client, self._sftp = None, None

    def _attempt(self, operation: Callable[[paramiko.SFTPClient], T]) -> T:
        """Given an operation, run it once; on a broken connection, drop it so the retry reconnects."""
        try:
            return operation(self.sftp())
        except Exception as exc:
            transport = self._client.get_transport() if self._client else None
            dead = transport is None or not transport.is_active()
            self.close()
            if dead and not is_transient(exc) and not isinstance(exc, UserError):
                # paramiko reports some drops as plain IOError; a dead transport says what it was.
                raise ConnectionLostError(f"connection to {self.params.endpoint} lost ({exc!r})") from exc
            raise
        except BaseException:
            self.close()
            raise

    def run(self, what: str, operation: Callable[[paramiko.SFTPClient], T]) -> T:
        """Given a description and an operation, run it with retries; TransientError when they run out."""
        try:
            return self.retrying(self._attempt, operation)
        except UserError:
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise TransientError(
                "could not {} on {} after {} attempt(s): {}".format(
                    what,
                    self.params.endpoint,
                    self.retrying.statistics.get("attempt_number", 1),
                    exc or repr(exc),
                ),
                f"check that {self.params.endpoint} is up and reachable "
                f"(ssh -p {self.params.port} {self.params.user}@{self.params.host}); the next run resumes",
            ) from exc
