"""The environment that points the real wandb SDK (0.31.0) at the test server and keeps it offline-safe.

Every variable, and why it is set:
  WANDB_BASE_URL        the test server; all GraphQL, file_stream and upload URLs derive from it
  WANDB_API_KEY         the key the server accepts (Basic auth "api:<key>"); format-checked by the SDK
  WANDB_MODE=online     talk to the server (a user's `wandb offline` setting must not leak in)
  WANDB_DIR             run directories (`wandb/run-*`) go to a temp dir, not the repo
  WANDB_CACHE_DIR       artifact cache (logged tables are staged here)
  WANDB_CONFIG_DIR      settings file; keeps ~/.config/wandb out of the tests
  WANDB_DATA_DIR        staging area for artifact uploads
  WANDB_ARTIFACT_DIR    downloaded artifacts (not used by the uploader, kept out of cwd anyway)
  WANDB_SILENT=true     no banners/progress on the terminal
  WANDB_DISABLE_CODE=true, WANDB_SAVE_CODE=false   no code capture (and no code artifact upload)
  WANDB_DISABLE_GIT=true                            no git metadata collection (no `git` subprocesses)
  WANDB_CONSOLE=off                                 no stdout/stderr capture (no output.log streaming)
  WANDB__DISABLE_STATS=true         (x_disable_stats) no system-metrics sampler
  WANDB__DISABLE_META=true          (x_disable_meta) no system metadata (wandb-metadata.json)
  WANDB__DISABLE_MACHINE_INFO=true  (x_disable_machine_info) no GPU/cloud probing, e.g. the
                                    CoreWeave metadata URL 169.254.169.254
  WANDB__SAVE_REQUIREMENTS=false    (x_save_requirements) no requirements.txt upload
  WANDB_ERROR_REPORTING=false       no Sentry crash reports to the internet
  NO_PROXY/no_proxy                 the server's host, so a configured HTTP(S) proxy is never used for it
wandb 0.31 has no PyPI version check at `init`, so nothing else phones home.
"""

from __future__ import annotations

import os
from typing import Dict
from urllib.parse import urlsplit


def sdk_env(base_url: str, api_key: str, root: str) -> Dict[str, str]:
    """Given the server URL, API key and a scratch root directory, return the WANDB_* environment."""
    dirs = {
        name: os.path.join(root, sub)
        for name, sub in (
            ("WANDB_DIR", "runs"),
            ("WANDB_CACHE_DIR", "cache"),
            ("WANDB_CONFIG_DIR", "config"),
            ("WANDB_DATA_DIR", "data"),
            ("WANDB_ARTIFACT_DIR", "artifacts"),
        )
    }
    for path in dirs.values():
        os.makedirs(path, exist_ok=True)
    host = urlsplit(base_url).hostname or "127.0.0.1"
    no_proxy = ",".join(p for p in (os.environ.get("NO_PROXY", ""), host, "127.0.0.1", "localhost") if p)
    return dict(
        dirs,
        WANDB_BASE_URL=base_url,
        WANDB_API_KEY=api_key,
        WANDB_MODE="online",
        WANDB_SILENT="true",
        WANDB_DISABLE_CODE="true",
        WANDB_SAVE_CODE="false",
        WANDB_DISABLE_GIT="true",
        WANDB_CONSOLE="off",
        WANDB__DISABLE_STATS="true",
        WANDB__DISABLE_META="true",
        WANDB__DISABLE_MACHINE_INFO="true",
        WANDB__SAVE_REQUIREMENTS="false",
        WANDB_ERROR_REPORTING="false",
        NO_PROXY=no_proxy,
        no_proxy=no_proxy,
    )
