"""Is there a W&B API key at all? Checked once per online pass, before any model is touched.

Without a key every model's session would fail on its own, each with the SDK's long message,
so one missing key became a dozen identical errors. This module looks where wandb 0.31 looks
(``wandb/sdk/lib/wbauth/authenticate.py``: ``WANDB_API_KEY``, else ``WANDB_IDENTITY_TOKEN_FILE``,
else the netrc file's entry for the host of ``WANDB_BASE_URL``; the netrc file is ``NETRC`` if
set, else ``~/.netrc``) plus this project's ``WANDB_API_KEY_FILE``, whose key it puts into
``WANDB_API_KEY`` for the SDK. It only finds out whether a key exists: whether W&B accepts it
is the server's answer, given per model. Offline and disabled passes need no key.

Standard library only, and no SDK call: asking the SDK would start its machinery (and print
its own messages) just to learn that there is nothing to send.
"""

from __future__ import annotations

import netrc
import os
from typing import Mapping, Optional
from urllib.parse import urlsplit

from local.errors import PermanentError

DEFAULT_BASE_URL = "https://api.wandb.ai"


def netrc_path(environ: Mapping[str, str]) -> str:
    """Given the environment, return the netrc file the SDK would read."""
    return os.path.expanduser(environ.get("NETRC") or "~/.netrc")


def netrc_has_key(path: str, base_url: str) -> bool:
    """Given a netrc path and the W&B URL, say whether it holds a password for that host."""
    host = urlsplit(base_url).netloc
    try:
        entry = netrc.netrc(path).authenticators(host) if host else None
    except (OSError, netrc.NetrcParseError):
        return False  # the SDK only warns about an unreadable netrc and goes on without it
    return bool(entry and entry[2])


def key_from_file(environ: Mapping[str, str]) -> Optional[str]:
    """Given the environment, return the key in the file WANDB_API_KEY_FILE names (None: no key there)."""
    path = environ.get("WANDB_API_KEY_FILE")
    if not path:
        return None
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def key_available() -> bool:
    """Tell whether a key can be found where the SDK looks (loading WANDB_API_KEY_FILE into it)."""
    try:
        require_api_key("online")
    except PermanentError:
        return False
    return True


def require_api_key(mode: str) -> None:
    """Given the W&B mode, return if a key can be found (loading WANDB_API_KEY_FILE); else raise.

    Raises PermanentError (exit 4) naming every place looked at: nothing was sent anywhere.
    """
    env = os.environ
    if mode != "online" or env.get("WANDB_API_KEY") or env.get("WANDB_IDENTITY_TOKEN_FILE"):
        return
    key = key_from_file(env)
    if key:
        os.environ["WANDB_API_KEY"] = key  # the SDK reads the environment, never our file
        return
    base_url = env.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
    path = netrc_path(env)
    if netrc_has_key(path, base_url):
        return
    raise PermanentError(
        "no W&B API key, so nothing was uploaded: WANDB_API_KEY is not set, WANDB_API_KEY_FILE "
        f"names no file with a key, and {path} has no entry for {urlsplit(base_url).netloc}",
        "set WANDB_API_KEY (or WANDB_API_KEY_FILE to a file holding it, or run 'wandb login'); "
        "to try without an account: --wandb-mode offline",
    )
