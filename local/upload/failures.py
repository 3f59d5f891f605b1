"""How W&B can fail an upload, named without the SDK: transient or permanent, and the fix to print.

The SDK's own exceptions are sorted into these two at the SDK edge (:func:`local.upload.writer.
classify_error`); everything above that edge (planning, the pool that retries attempts, the
report) only needs these names. Keeping them apart from :mod:`local.upload.writer` keeps ``wandb``
out of the uploader process: a pass with nothing to upload never loads the SDK, and a pass with
work loads it only in its upload workers.
"""

from __future__ import annotations


class WandbTransientError(Exception):
    """W&B failed in a way that may work later (timeout, 429, 5xx, connection refused)."""


class WandbPermanentError(Exception):
    """W&B refused in a way retrying cannot fix (credentials, deleted run, bad arguments)."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


DELETED_FIX = (
    "this run id cannot be reused: set a new wandb_run_id (and wandb_run_name) for this model in the "
    "uploader's overrides file (--manifest-overrides, env WANDB_EVAL_MANIFEST_OVERRIDES; the epoch run "
    "under variants.epoch) and upload again; to make it last, put the same in the training machine's "
    "prepare-manifest --overrides file"
)
AUTH_FIX = "check WANDB_API_KEY and that it may write to this entity/project"
