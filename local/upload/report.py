"""Options and results of an upload pass (shared by ``upload``, ``once`` and ``run``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from local.upload.state import mode_state_dir
from local.upload.targets import DEFAULT_VARIANTS
from remote.contract.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_PERMANENT, EXIT_TRANSIENT
from remote.contract.names import DEFAULT_STATE_DIR, MANIFEST_NAME


@dataclass
class WriterOptions:
    """How runs are opened: mode, resume policy, timeouts and the retry budget."""

    mode: str = "online"
    resume: str = "allow"
    job_type: str = "eval"
    init_timeout: float = 90.0
    finish_timeout: float = 300.0
    retry_attempts: int = 4
    retry_wait_max: float = 60.0
    wandb_dir: Optional[str] = None
    lean: bool = True


@dataclass
class UploadOptions:
    """Everything one pass needs; built by the CLI or by the once/run commands."""

    results_root: str = "./results"
    manifest_path: str = ""
    state_dir: str = DEFAULT_STATE_DIR
    model_filters: Sequence[str] = ()
    disable_wandb: bool = False
    # Upload worker processes (--workers); each runs up to worker_slots sessions at once and
    # retires after worker_sessions sessions (local.upload.pool and .worker say why these).
    workers: int = 2
    worker_slots: int = 16
    worker_sessions: int = 50
    orphan_wait_seconds: float = 60.0
    writer: WriterOptions = field(default_factory=WriterOptions)
    variants: Tuple[str, ...] = DEFAULT_VARIANTS
    # Upload-time overrides; ``overrides_required`` when the user named the file (else: if it exists).
    overrides_path: str = ""
    overrides_required: bool = False
    # WANDB_MODE=disabled: a dry run that makes no network call at all (not even reads).
    no_network: bool = False

    def manifest(self) -> str:
        return self.manifest_path or os.path.join(self.results_root, MANIFEST_NAME)

    def model_state_dir(self) -> str:
        """Return where this pass keeps model states (a subdirectory in offline mode)."""
        return mode_state_dir(self.state_dir, self.writer.mode)


@dataclass
class ModelOutcome:
    """What one pass did for one model."""

    model_dir: str
    run_id: str
    variant: str = "ckpt_step"
    uploaded_steps: List[int] = field(default_factory=list)
    revised_steps: List[int] = field(default_factory=list)
    recovered_steps: List[int] = field(default_factory=list)
    adopted_steps: List[int] = field(default_factory=list)  # found in W&B when reconciling: not logged again
    note: Optional[str] = None  # a caveat the report prints beside the model's line
    would_upload: List[int] = field(default_factory=list)
    failed_steps: Dict[int, str] = field(default_factory=dict)
    wandb_called: bool = False
    worker_pids: List[int] = field(default_factory=list)  # the upload worker of each attempt, in order
    error: Optional[str] = None
    error_kind: Optional[str] = None  # "transient", "permanent" or "refused"


@dataclass
class PassReport:
    """What one pass did: an outcome per model plus the manifest's unusable entries."""

    models: List[ModelOutcome] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    def exit_code(self) -> int:
        """Return 4 on a permanent failure, 3 on a transient one, 1 on any other failure, else 0."""
        kinds = {outcome.error_kind for outcome in self.models}
        if "permanent" in kinds:
            return EXIT_PERMANENT
        if "transient" in kinds:
            return EXIT_TRANSIENT
        if "refused" in kinds or self.problems or any(o.failed_steps for o in self.models):
            return EXIT_FAILED
        return EXIT_OK

    def summary_line(self) -> str:
        """Return one line counting what the pass did."""
        count = lambda attr: sum(len(getattr(o, attr)) for o in self.models)  # noqa: E731
        models = len({o.model_dir for o in self.models})
        errors = sum(1 for o in self.models if o.error)
        return (
            f"pass done: {models} models ({len(self.models)} runs), {count('uploaded_steps')} uploaded, "
            f"{count('revised_steps')} revised, {count('recovered_steps')} recovered, "
            f"{count('adopted_steps')} already in W&B, {count('would_upload')} would upload, "
            f"{count('failed_steps')} failed checkpoints, {errors} run errors, "
            f"{len(self.problems)} manifest problems"
        )
