"""Which models the service's next upload pass must look at: learned from unpack, not from the disk.

In the service loop the results tree changes only by unpack, and unpack knows every file it wrote
(``UnpackReport.files``). So after the loop's first cycle a pass plans only:
- the models of those files (``<model_dir>/...``);
- the models whose manifest entry or runs changed (an id or variant overridden without any file
  of the model in the bundle), found by comparing the runs of every selected model with the last
  pass's;
- the models the last pass left unfinished: a W&B error (transient: retried; permanent: reported
  again, as every pass did, so health stays unhealthy) or failed checkpoints.
With none of these, the cycle has no upload pass at all: no manifest read, no stat, no state
loaded, no SDK imported. A full scan (every model, every checkpoint stat-ed) still runs on the
loop's first cycle (nothing is known yet), after a failed unpack (what it wrote before failing is
unknown), when the upload-time overrides file changed, and every ``--full-scan-every`` cycles as a
safety net for a tree changed by other means; work it finds that the event path had not planned
is logged as a warning.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from local.upload.report import ModelOutcome, PassReport
from local.upload.targets import RunTarget
from remote.contract.manifest import ModelEntry

log = logging.getLogger(__name__)


def _file_key(path: str) -> Optional[Tuple[int, int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class Changes:
    """What the loop knows between cycles; ``full_every`` is ``--full-scan-every`` (1: every cycle)."""

    full_every: int
    overrides_path: str = ""
    cycles_since_full: Optional[int] = None  # None: no full scan yet (the loop's first cycle)
    written: Set[str] = field(default_factory=set)
    unfinished: Set[str] = field(default_factory=set)
    runs: Dict[str, List[RunTarget]] = field(default_factory=dict)
    event: Set[str] = field(default_factory=set)  # what the event path plans (or would) this pass
    overrides_key: Optional[Tuple[int, int, int]] = None
    unknown_writes: bool = False

    def unpacked(self, files: Iterable[str]) -> None:
        """Given the files an unpack moved into place, remember their models for the next pass."""
        self.written.update(name.split("/", 1)[0] for name in files if "/" in name)

    def unpack_failed(self) -> None:
        """An unpack failed part-way: what it wrote is unknown, so the next pass scans everything."""
        self.unknown_writes = True

    def full_scan_due(self) -> bool:
        """Say whether the next pass must plan every model (see the module docstring)."""
        return (
            self.cycles_since_full is None
            or self.unknown_writes
            or self.cycles_since_full + 1 >= self.full_every
            or _file_key(self.overrides_path) != self.overrides_key
        )

    def idle(self) -> bool:
        """Say whether the next pass would plan nothing, so the cycle can skip it."""
        return not (self.full_scan_due() or self.written or self.unfinished)

    def focus(self, full: bool) -> Callable[[ModelEntry, Sequence[RunTarget]], bool]:
        """Given whether the pass is a full scan, return the pass's test of which models to plan.

        It also records every selected model's runs, so the next pass sees which of them changed.
        """
        self.event = set()

        def wants(entry: ModelEntry, targets: Sequence[RunTarget]) -> bool:
            name, known = entry.model_dir, self.runs.get(entry.model_dir)
            self.runs[name] = list(targets)
            if name in self.written or name in self.unfinished or known != list(targets):
                self.event.add(name)
            return full or name in self.event

        return wants

    def passed(self, report: PassReport, full: bool) -> None:
        """Given a pass that ran (``full``: every model was planned), learn what is left to do."""
        if full:
            missed = sorted(_busy(report.models) - self.event)
            if missed and self.cycles_since_full is not None and not self.unknown_writes:
                log.warning(
                    "full scan: %d model(s) had work that the files unpack wrote did not show "
                    "(was the results tree changed by other means?): %s",
                    len(missed),
                    ", ".join(missed[:10]) + (" ..." if len(missed) > 10 else ""),
                )
            self.cycles_since_full, self.unknown_writes = 0, False
            self.overrides_key = _file_key(self.overrides_path)
        else:
            self.skipped()
        self.written.clear()
        self.unfinished = {o.model_dir for o in report.models if o.error or o.failed_steps}

    def skipped(self) -> None:
        """A cycle passed without a full scan: count it towards the next one."""
        self.cycles_since_full = (self.cycles_since_full or 0) + 1


def _busy(outcomes: Iterable[ModelOutcome]) -> Set[str]:
    """Given a pass's outcomes, return the models for which it uploaded, recovered or failed anything."""
    return {
        o.model_dir
        for o in outcomes
        if o.uploaded_steps
        or o.revised_steps
        or o.recovered_steps
        or o.adopted_steps
        or o.error
        or o.failed_steps
    }
