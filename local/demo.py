"""The demo: the whole job on built-in sample data, on one machine, with no W&B account.

Given a work directory, play both roles: the training machine writes sample results and packs
them into its outbox; the local side unpacks the bundles and uploads every checkpoint to W&B
(offline mode unless ``WANDB_API_KEY`` is set); then a new checkpoint arrives and only it
travels and uploads; a last pass finds nothing new and makes no W&B call. In production the
bundles cross machines with ``python -m local pull`` over SFTP; here the outbox is local.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import List

from local.errors import UserError
from local.status import collect, render
from local.unpack import unpack_bundles
from local.upload import upload_pass
from local.upload_report import PassReport, UploadOptions, WriterOptions
from remote.manifest import MANIFEST_NAME
from remote.outbox import INDEX_NAME
from remote.pack import PackOptions, pack
from remote.prepare import ManifestOptions, prepare_manifest
from remote.sample import add_next_checkpoint, make_sample_results

log = logging.getLogger(__name__)
MARKER = ".wandb-eval-demo"
DEMO_PROJECT = "wandb-eval-pipeline-demo"
DEMO_RUN_ID_PREFIX = "demo"


class Demo:
    """The demo's directories: one for each role, under one work directory."""

    def __init__(self, workdir: str, mode: str) -> None:
        self.workdir = os.path.abspath(workdir)
        self.remote_results = os.path.join(self.workdir, "training-machine", "results")
        self.outbox = os.path.join(self.workdir, "training-machine", "outbox")
        self.results = os.path.join(self.workdir, "local", "results")
        self.state = os.path.join(self.workdir, "local", "state")
        self.wandb_dir = os.path.join(self.workdir, "local")
        self.mode = mode

    def reset(self) -> None:
        """Start from an empty work directory (only ever deleting one this demo made)."""
        if os.path.isdir(self.workdir):
            if not os.path.exists(os.path.join(self.workdir, MARKER)):
                raise UserError(
                    "{} exists and is not a demo directory".format(self.workdir), "pick another --workdir"
                )
            shutil.rmtree(self.workdir)
        os.makedirs(self.workdir)
        open(os.path.join(self.workdir, MARKER), "w").close()

    def pack(self) -> None:
        """Training machine: refresh the manifest and publish new results to the outbox."""
        manifest = os.path.join(self.remote_results, MANIFEST_NAME)
        # The sample models carry real model names, so default ids would be the users' real run
        # ids: with a key set, the demo would append made-up metrics to their real runs.
        prepare_manifest(
            ManifestOptions(
                self.remote_results, manifest, default_project=DEMO_PROJECT, run_id_prefix=DEMO_RUN_ID_PREFIX
            )
        )
        record = pack(PackOptions(self.remote_results, self.outbox)).record
        if record:
            say(
                "training machine: published {} ({}, {} files, {} bytes)".format(
                    record.name, record.kind, record.files, record.size
                )
            )

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
        uploaded = sum(len(model.uploaded_steps) for model in report.models)
        calls = sum(1 for model in report.models if model.wandb_called)
        say("local: uploaded {} checkpoints to W&B ({} runs opened)".format(uploaded, calls))
        return report


def say(message: str) -> None:
    """Print one demo step."""
    print("==> " + message, flush=True)


def run_demo(workdir: str, mode: str) -> int:
    """Given a work directory and a W&B mode, run the demo; return the last pass's exit code."""
    demo = Demo(workdir, mode)
    demo.reset()
    say(
        "training machine: writing sample results ({})".format(
            ", ".join(names(make_sample_results(demo.remote_results)))
        )
    )
    demo.pack()
    demo.unpack()
    codes = [demo.upload().exit_code()]
    model_dir, step = add_next_checkpoint(demo.remote_results)
    say("training machine: new checkpoint {}/checkpoint-{}".format(model_dir, step))
    demo.pack()
    demo.unpack()
    codes.append(demo.upload().exit_code())
    say("nothing new: a last pass should make no W&B call")
    codes.append(demo.upload().exit_code())
    print()
    print(render(collect(os.path.join(demo.results, MANIFEST_NAME), demo.state, mode)))
    print()
    if mode == "offline":
        # Not 'wandb sync': these runs share their ids with the real ones, so syncing them and
        # later uploading online would put every checkpoint into the run twice.
        say(
            "W&B offline mode: runs written to {}/wandb/; set WANDB_API_KEY and run again to upload".format(
                demo.wandb_dir
            )
        )
    return max(codes)


def names(model_dirs: List[str]) -> List[str]:
    """Shorten model directory names for one readable line."""
    return [name if len(name) <= 24 else name[:21] + "..." for name in model_dirs]
