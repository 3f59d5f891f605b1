"""The user's retry budget (``--retry-attempts``, ``--retry-wait-max``) applied to a W&B retry policy.

Each W&B edge has its own named policy (writes: :data:`local.upload.pool.WANDB_RETRY`; history
reads: :data:`local.upload.history.HISTORY_READ_RETRY`); the options bound both the same way.
"""

from __future__ import annotations

from tenacity import Retrying, stop_after_attempt, stop_after_delay, wait_exponential_jitter, wait_none

from local.upload.report import WriterOptions


def within_budget(policy: Retrying, options: WriterOptions, total_seconds: float) -> Retrying:
    """Given a named policy, return it bounded by the options' attempts and wait, and ``total_seconds``.

    A ``retry_wait_max`` of 0 or less means no wait between attempts (tests, benchmarks).
    """
    wait = (
        wait_none()
        if options.retry_wait_max <= 0
        else wait_exponential_jitter(multiplier=2, max=options.retry_wait_max, jitter=2)
    )
    stop = stop_after_attempt(max(1, options.retry_attempts)) | stop_after_delay(total_seconds)
    return policy.copy(stop=stop, wait=wait)
