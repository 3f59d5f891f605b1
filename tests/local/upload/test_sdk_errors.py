"""Every exception the SDK lets escape init, log, summary and finish is sorted by what happened:
a server error or a timeout is transient (retried, exit 3) even when the SDK calls it an
authentication error; a refused key, a deleted run or bad arguments are permanent (exit 4)."""

from __future__ import annotations

import pytest
import wandb
from wandb.sdk.lib.service.service_connection import WandbApiFailedError
from wandb.sdk.mailbox.mailbox_handle import ServerResponseError

from local.upload.uploader import upload_pass
from local.upload.writer import SDK_ERRORS, WandbPermanentError, WandbTransientError, classify_error
from remote.contract.exit_codes import EXIT_OK, EXIT_TRANSIENT
from tests.fixtures.upload import assert_exactly_once, generated_tree, options

BUSY = "Failed to execute API request: the service process is busy and did not respond in time."

CASES = [
    # What the SDK raised (type, message as measured or as its code words it) -> what it means.
    (
        wandb.errors.AuthenticationError,
        f"Failed to verify credentials with http://w: {BUSY}",
        WandbTransientError,
    ),
    (
        wandb.errors.AuthenticationError,
        "API key must be 40 characters long, yours was 12",
        WandbPermanentError,
    ),
    (
        wandb.errors.CommError,
        "Failed to get resume status for run x: returned error 401: unauthorized",
        WandbPermanentError,
    ),
    (
        wandb.errors.CommError,
        "Timed out while retrying: HTTP 409: run was previously created and deleted",
        WandbPermanentError,
    ),
    (wandb.errors.CommError, "Run initialization has timed out after 90.0 sec.", WandbTransientError),
    (wandb.errors.CommError, "returned error 503: Service Unavailable", WandbTransientError),
    (wandb.errors.UsageError, "resume='must' but run (x) doesn't exist", WandbPermanentError),
    (wandb.errors.UnsupportedError, "this server does not support the feature", WandbPermanentError),
    (wandb.errors.Error, "An unexpected error occurred", WandbTransientError),
    (ServerResponseError, "run ID x is in use", WandbTransientError),
    (WandbApiFailedError, BUSY, WandbTransientError),
    (TimeoutError, "Timed out waiting for the run to finish", WandbTransientError),
    (BrokenPipeError, "[Errno 32] Broken pipe", WandbTransientError),
    (ConnectionResetError, "[Errno 104] Connection reset by peer", WandbTransientError),
]


@pytest.mark.parametrize(
    ("kind", "message", "expected"), CASES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)]
)
def test_sdk_error_is_sorted_by_what_happened(kind, message, expected) -> None:
    exc = kind(message)
    assert isinstance(exc, SDK_ERRORS)  # the session catches it: never an "internal error"
    sorted_error = classify_error(exc)
    assert type(sorted_error) is expected and "\n" not in str(sorted_error)


def test_sdk_server_error_while_logging_the_table_is_retried_not_refused(wandb_server, tmp_path) -> None:
    # Logging the table makes the SDK verify the login; a 5xx there reads "AuthenticationError".
    results = generated_tree(tmp_path / "results", ["a", "b"], [100, 200])
    wandb_server.inject(500, count=1000, operation="Viewer")
    report = upload_pass(options(results, tmp_path / "state", retry_attempts=1, init_timeout=10))
    assert report.exit_code() == EXIT_TRANSIENT
    assert all(o.error_kind == "transient" and "busy" in (o.error or "") for o in report.models)
    wandb_server.clear_faults()
    assert upload_pass(options(results, tmp_path / "state")).exit_code() == EXIT_OK
    assert_exactly_once(wandb_server, "eval-a", [100, 200])
    assert_exactly_once(wandb_server, "eval-b", [100, 200])
