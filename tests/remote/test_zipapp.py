"""The remote role as one file (`make remote-zipapp`): it packs from any folder, with `python3 -S`,
on this machine's Python and on a real CPython 3.9 (Debian bullseye's python3, in a chroot).

The 3.9 root is built once by tests/fixtures/python39-root.sh (debootstrap from this host's
configured Debian mirror, about a minute) and kept; it needs root and debootstrap. Outside CI
a machine without them skips only that test; in CI (CI=true) it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict

import pytest

from tests.fixtures.trees import REPO_ROOT, SAMPLE_MANIFEST, copy_writable, require_samples

ROOT_SCRIPT = REPO_ROOT / "tests" / "fixtures" / "python39-root.sh"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the one-file remote role with the Makefile's own target; return its path."""
    if shutil.which("make") is None:
        pytest.fail("make is missing (apt-get install make)")
    work = tmp_path_factory.mktemp("zipapp")
    target = work / "dist" / "wandb-eval-remote.pyz"
    subprocess.run(
        [
            "make",
            "-s",
            "remote-zipapp",
            f"ZIPAPP={target}",
            f"ZIPAPP_BUILD={work / 'build'}",
            f"PYTHON={sys.executable}",
        ],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


@pytest.fixture(scope="module")
def python39_root() -> Path:
    """A bullseye root filesystem whose python3 is CPython 3.9 (built once, then reused)."""
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        message = "a CPython 3.9 root needs root and debootstrap (apt-get install debootstrap)"
        if IN_CI:
            pytest.fail("CI prerequisite missing: " + message, pytrace=False)
        pytest.skip(message)
    done = subprocess.run(["bash", str(ROOT_SCRIPT)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1])


def _run_ids(manifest: Path) -> Dict[str, str]:
    models = json.loads(manifest.read_text())["models"]
    return {m["model_dir"]: m["wandb_run_id"] for m in models}


def _fresh_sample(target: Path) -> Path:
    """A writable copy of the real sample tree without its manifest (ids are generated anew)."""
    root = copy_writable(require_samples(), target)
    (root / ".wandb_eval_manifest.json").unlink()
    return root


def test_zipapp_packs_from_an_unrelated_folder_with_no_site_packages(zipapp: Path, tmp_path: Path) -> None:
    results, elsewhere = _fresh_sample(tmp_path / "results"), tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = [
        sys.executable,
        "-S",
        str(zipapp),
        "pack",
        "--results-root",
        str(results),
        "--outbox",
        "../outbox",
    ]
    done = subprocess.run(command, cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Published bundle-00000001-full.tar.gz" in done.stdout
    assert json.loads((tmp_path / "outbox" / "index.json").read_text())["bundles"][0]["seq"] == 1
    assert _run_ids(results / ".wandb_eval_manifest.json") == _run_ids(SAMPLE_MANIFEST)
    assert (
        "remote/demo/sample.py"
        not in subprocess.run(
            [sys.executable, "-m", "zipfile", "-l", str(zipapp)], capture_output=True, text=True, check=True
        ).stdout
    )


def test_zipapp_packs_under_a_real_python_3_9(zipapp: Path, python39_root: Path) -> None:
    work = python39_root / "tmp" / f"zipapp-{uuid.uuid4().hex[:8]}"
    try:
        (work / "elsewhere").mkdir(parents=True)
        shutil.copy(zipapp, work / "wandb-eval-remote.pyz")
        results = _fresh_sample(work / "results")
        inside = "/" + str(work.relative_to(python39_root))
        script = (
            f"cd {inside}/elsewhere && python3 -c 'import sys; print(sys.version_info[:2])' && "
            f"python3 -S {inside}/wandb-eval-remote.pyz pack "
            f"--results-root {inside}/results --outbox {inside}/outbox"
        )
        done = subprocess.run(
            ["chroot", str(python39_root), "/bin/sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("(3, 9)"), done.stdout
        index = json.loads((work / "outbox" / "index.json").read_text())
        assert [b["name"] for b in index["bundles"]] == ["bundle-00000001-full.tar.gz"]
        # The same run ids as the original tool (and as Python 3.11): stable across versions.
        assert _run_ids(results / ".wandb_eval_manifest.json") == _run_ids(SAMPLE_MANIFEST)
    finally:
        shutil.rmtree(work, ignore_errors=True)
