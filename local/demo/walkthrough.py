"""The demo: the whole job on built-in sample data, on one machine, with no W&B account.

Given a work directory, play both roles: the training machine writes sample results and packs
them into its outbox; the local side unpacks the bundles and uploads every checkpoint to W&B
(offline mode unless ``WANDB_API_KEY`` is set); then a new checkpoint arrives and only it
travels and uploads; a last pass finds nothing new and makes no W&B call; last, the report
(tables, charts, ``index.html``) is written from the local results. In production the
bundles cross machines with ``python -m local pull`` over SFTP; here the outbox is local.

The training machine's side runs as it would there: the remote role's own command line in a
separate process (``python -m remote ...``), so the local role imports nothing of it beyond the
contract.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from typing import List

from local.errors import UserError
from local.report.build import INSTALL_HINT, ReportOptions, write_report
from local.service.status import collect, load_entries, render_sides
from local.unpack.apply import unpack_bundles
from local.upload.report import PassReport, UploadOptions, WriterOptions
from local.upload.uploader import upload_pass
from remote.contract.names import INDEX_NAME, MANIFEST_NAME

log = logging.getLogger(__name__)
MARKER = ".wandb-eval-demo"
DEMO_PROJECT = "wandb-eval-pipeline-demo"
DEMO_RUN_ID_PREFIX = "demo"
# Where the remote role's code is, to run it as a separate process (the training machine's side).
REMOTE_CODE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Demo:
    """The demo's directories: one for each role, under one work directory."""

    def __init__(self, workdir: str, mode: str) -> None:
        self.workdir = os.path.abspath(workdir)
        self.remote_results = os.path.join(self.workdir, "training-machine", "results")
        self.outbox = os.path.join(self.workdir, "training-machine", "outbox")
        self.results = os.path.join(self.workdir, "local", "results")
        self.state = os.path.join(self.workdir, "local", "state")
        self.wandb_dir = os.path.join(self.workdir, "local")
        self.report_dir = os.path.join(self.workdir, "local", "report")
        self.mode = mode

    def reset(self) -> None:
        """Start afresh, deleting only the two folders this demo makes, in a directory it marked.

        Never the whole work directory: whatever else is in it (the compose demo's keys in
        ``.demo/compose``, beside the default ``.demo/walkthrough``) stays.
        """
        marker = os.path.join(self.workdir, MARKER)
        if os.path.isdir(self.workdir) and os.listdir(self.workdir) and not os.path.exists(marker):
            raise UserError(f"{self.workdir} exists and is not a demo directory", "pick another --workdir")
        for own in (os.path.dirname(self.remote_results), os.path.dirname(self.results)):
            if os.path.isdir(own):
                shutil.rmtree(own)
        os.makedirs(self.workdir, exist_ok=True)
        open(marker, "w").close()

    def training_machine(self, *args: str) -> str:
        """Run the remote role's command line on the training machine's side; return its output."""
        command = [sys.executable, "-S", "-m", *args]  # -S: the standard library is all it has
        done = subprocess.run(command, cwd=REMOTE_CODE_ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise UserError(f"training machine: {' '.join(args[:2])} failed: {done.stderr.strip()}")
        return done.stdout

    def pack(self) -> None:
        """Training machine: refresh the manifest and publish new results to the outbox."""
        # The sample models carry real model names, so default ids would be the users' real run
        # ids: with a key set, the demo would append made-up metrics to their real runs.
        output = self.training_machine(
            "remote",
            "pack",
            "--results-root",
            self.remote_results,
            "--outbox",
            self.outbox,
            "--default-project",
            DEMO_PROJECT,
            "--run-id-prefix",
            DEMO_RUN_ID_PREFIX,
        )
        for line in output.splitlines():
            if line.startswith("Published "):
                say("training machine: " + line[0].lower() + line[1:])

    def unpack(self) -> None:
        """Local: apply the outbox's bundles to the local results tree."""
        with open(os.path.join(self.outbox, INDEX_NAME), encoding="utf-8") as handle:
            names = [bundle["name"] for bundle in json.load(handle)["bundles"]]
        report = unpack_bundles(self.results, [os.path.join(self.outbox, name) for name in names])
        say(
            "local: applied {} (results now at bundle {})".format(
                ", ".join(report.applied) or "nothing new", report.applied_seq
            )
        )

    def upload(self) -> PassReport:
        """Local: one upload pass; say what it uploaded."""
        writer = WriterOptions(mode=self.mode, wandb_dir=self.wandb_dir)
        report = upload_pass(UploadOptions(results_root=self.results, state_dir=self.state, writer=writer))
        # Each checkpoint goes to the model's run and to its epoch run: count checkpoints once.
        uploaded = sum(len(model.uploaded_steps) for model in report.models if model.variant == "ckpt_step")
        calls = sum(1 for model in report.models if model.wandb_called)
        # Offline, nothing leaves the machine: say where the rows went, not "to W&B".
        where = "to W&B" if self.mode == "online" else "to offline run files"
        say(f"local: uploaded {uploaded} checkpoints {where} ({calls} runs opened: per-checkpoint and epoch)")
        return report

    def report(self) -> None:
        """Local: write the researchers' report (tables, charts, page) from the uploaded results."""
        result = write_report(ReportOptions(results_root=self.results, output_dir=self.report_dir))
        say(f"report: open {result.index} ({len(result.charts)} charts; best_summary.csv beside it)")
        if result.charts_missing:
            say(f"report: no charts, matplotlib is not installed; to get them: {INSTALL_HINT}")


def say(message: str) -> None:
    """Print one demo step."""
    print("==> " + message, flush=True)


def run_demo(workdir: str, mode: str) -> int:
    """Given a work directory and a W&B mode, run the demo; return the last pass's exit code."""
    demo = Demo(workdir, mode)
    demo.reset()
    demo.training_machine("remote.demo.sample", demo.remote_results)
    models = names(sorted(os.listdir(demo.remote_results)))
    say(f"training machine: writing sample results ({', '.join(models)})")
    demo.pack()
    demo.unpack()
    codes = [demo.upload().exit_code()]
    added = demo.training_machine("remote.demo.sample", demo.remote_results, "--add-checkpoint").strip()
    say(f"training machine: new checkpoint ({added})")
    demo.pack()
    demo.unpack()
    codes.append(demo.upload().exit_code())
    say("nothing new: a last pass should make no W&B call")
    codes.append(demo.upload().exit_code())
    print()
    entries = load_entries(os.path.join(demo.results, MANIFEST_NAME)) or []
    print(render_sides(collect(entries, demo.results, demo.state, mode)))
    print()
    if mode == "offline":
        # Not 'wandb sync': these runs share their ids with the real ones, so syncing them and
        # later uploading online would put every checkpoint into the run twice.
        say(
            f"W&B offline mode: runs written to {demo.wandb_dir}/wandb/; "
            "set WANDB_API_KEY and run again to upload"
        )
    say(
        "see this table again: make status (until you have results of your own), or "
        f"python -m local status --results-root {demo.results} --state-dir {demo.state}"
    )
    demo.report()
    return max(codes)


def names(model_dirs: List[str]) -> List[str]:
    """Shorten model directory names for one readable line."""
    return [name if len(name) <= 24 else name[:21] + "..." for name in model_dirs]
