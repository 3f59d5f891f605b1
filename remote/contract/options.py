"""Every command-line option of both roles, in one table: one flag, one environment variable each.

A flag means the same thing, reads the same environment variable, has the same type and the same
default in every command that takes it (``--results-root``/``RESULTS_ROOT`` on the training machine
and on the uploader alike). Commands pick their options from :data:`TABLE` by name; a test walks
every command's parser against it and against ``.env.template``. A command-line flag wins over its
environment variable, which wins over the default. Where the original tool (or its transfer script)
read an environment variable, the same name is used here, so a user's settings carry over.

Standard library only (the remote role uses it too).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from remote.contract.tree import DEFAULT_MAX_BUNDLE_BYTES, DEFAULT_MAX_FILE_MB, DEFAULT_MAX_MEMBERS

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
METAVARS = {"str": "TEXT", "int": "N", "float": "NUMBER"}


class OptionEnvError(ValueError):
    """An environment variable holds a value its option cannot take."""


@dataclass(frozen=True)
class Option:
    """One option: ``kind`` is str, int, float, bool or list (comma-separated, repeatable)."""

    flag: str
    env: str
    kind: str
    default: Any
    help: str
    choices: Tuple[str, ...] = ()
    shown_default: str = ""  # how --help names a computed default ("the host name")

    @property
    def dest(self) -> str:
        """Return the attribute name argparse stores the value under."""
        return self.flag[2:].replace("-", "_")


def _option(flag: str, env: str, kind: str, default: Any, text: str, **extra: Any) -> Option:
    return Option(flag, env, kind, default, text, **extra)


_REMOTE = (
    _option("--results-root", "RESULTS_ROOT", "str", "./results", "results root holding <model_dir>/"),
    _option(
        "--overrides", "REMOTE_MANIFEST_OVERRIDES", "str", "", "JSON file replacing fields per model_dir"
    ),
    _option(
        "--output-manifest",
        "REMOTE_MANIFEST_PATH",
        "str",
        "",
        "where prepare-manifest writes the manifest",
        shown_default="<results-root>/.wandb_eval_manifest.json",
    ),
    _option("--default-project", "MANIFEST_DEFAULT_PROJECT", "str", "MIMIGenRec-Eval", "W&B project"),
    _option("--default-entity", "MANIFEST_DEFAULT_ENTITY", "str", "", "W&B entity (empty: the key's)"),
    _option("--default-eval-split", "MANIFEST_DEFAULT_EVAL_SPLIT", "str", "test", "eval split per model"),
    _option("--run-id-prefix", "RUN_ID_PREFIX", "str", "eval", "prefix of generated run ids"),
    _option(
        "--default-num-train-epochs",
        "MANIFEST_DEFAULT_NUM_TRAIN_EPOCHS",
        "float",
        None,
        "num_train_epochs recorded per model (with max_steps or steps_per_epoch it fixes epoch_progress)",
    ),
    _option(
        "--default-wandb-group", "MANIFEST_DEFAULT_WANDB_GROUP", "str", "", "W&B group recorded per model"
    ),
    _option("--outbox", "OUTBOX", "str", "./outbox", "outbox directory the uploader pulls from"),
    _option("--no-manifest", "PACK_NO_MANIFEST", "bool", False, "do not refresh the manifest first"),
    _option("--full", "PACK_FULL", "bool", False, "pack every file, not only new or changed ones"),
    _option("--keep", "PACK_KEEP", "int", 20, "bundles kept in the outbox at most"),
    _option(
        "--max-file-mb", "MAX_FILE_MB", "float", DEFAULT_MAX_FILE_MB, "files larger than this never travel"
    ),
    _option(
        "--exclude",
        "EXCLUDE_BASENAMES_CSV",
        "str",
        "final_result.json,rollout.json",
        "basenames that never travel, comma-separated",
    ),
    _option("--jobs", "PACK_JOBS", "int", 2, "processes that read and compress (at most the usable CPUs)"),
)

_LOGGING = (
    _option("--log-level", "LOG_LEVEL", "str", "INFO", "log level", choices=LOG_LEVELS),
    _option(
        "--log-format",
        "LOG_FORMAT",
        "str",
        "text",
        "one line per event, or JSON lines",
        choices=("text", "json"),
    ),
)

_PULL = (
    _option("--host", "PULL_HOST", "str", "", "SSH host of the training machine"),
    _option("--port", "PULL_PORT", "int", 22, "SSH port"),
    _option("--user", "PULL_USER", "str", "", "SSH user"),
    _option(
        "--identity", "PULL_IDENTITY", "str", "", "private key file (passphrase: env SSH_KEY_PASSPHRASE)"
    ),
    _option("--known-hosts", "PULL_KNOWN_HOSTS", "str", "~/.ssh/known_hosts", "pinned host keys"),
    _option(
        "--accept-new-host-key",
        "PULL_ACCEPT_NEW_HOST_KEY",
        "bool",
        False,
        "pin an unknown host key into --known-hosts (never a changed one)",
    ),
    _option("--remote-outbox", "PULL_REMOTE_OUTBOX", "str", "", "outbox path on the training machine"),
    _option("--inbox", "PULL_INBOX", "str", "inbox", "local directory for verified bundles"),
    _option(
        "--consumer",
        "PULL_CONSUMER",
        "str",
        "",
        "name of this uploader in the outbox's acks/ (pin it in containers)",
        shown_default="the host name",
    ),
    _option("--timeout", "PULL_TIMEOUT", "float", 30.0, "network timeout in seconds"),
)

_UPLOAD = (
    _option(
        "--manifest-path",
        "MANIFEST_PATH",
        "str",
        "",
        "manifest to read",
        shown_default="<results-root>/.wandb_eval_manifest.json",
    ),
    _option(
        "--state-dir", "STATE_DIR", "str", "state/wandb_eval_uploader", "per-model upload state and the lock"
    ),
    _option("--once", "UPLOAD_ONCE", "bool", False, "run one pass and exit with its status (else: poll)"),
    _option("--poll-interval-seconds", "POLL_INTERVAL_SECONDS", "float", 60.0, "seconds between passes"),
    _option(
        "--model-filter",
        "MODEL_FILTER",
        "list",
        [],
        "keep models whose model_dir contains this text or matches this glob (repeatable, a,b)",
    ),
    _option(
        "--disable-wandb",
        "WANDB_DISABLED",
        "bool",
        False,
        "validate and report what would be uploaded; write nothing",
    ),
    _option(
        "--wandb-mode",
        "WANDB_MODE",
        "str",
        "online",
        "online; offline (local run files only); disabled (validate and report, like --disable-wandb)",
        choices=("online", "offline", "disabled"),
    ),
    _option(
        "--variants",
        "WANDB_UPLOAD_VARIANTS",
        "str",
        "ckpt_step,epoch",
        "runs per model: ckpt_step (one row per checkpoint) and/or epoch (the <run id>-epoch run)",
    ),
    _option(
        "--manifest-overrides",
        "WANDB_EVAL_MANIFEST_OVERRIDES",
        "str",
        "config/wandb_eval_manifest_overrides.json",
        "overrides applied to the manifest at upload time (the default is used only if it exists)",
    ),
    _option(
        "--wandb-resume",
        "WANDB_RESUME",
        "str",
        "allow",
        "wandb.init resume",
        choices=("allow", "must", "never", "auto"),
    ),
    _option("--wandb-job-type", "WANDB_JOB_TYPE", "str", "eval", "W&B job_type of the runs"),
    _option(
        "--wandb-dir", "WANDB_DIR", "str", "", "where the SDK keeps run files", shown_default="the SDK's"
    ),
    _option(
        "--workers",
        "UPLOAD_WORKERS",
        "int",
        2,
        "upload worker processes, each uploading up to 16 runs at once on one wandb-core; "
        "2 suits 2 cores (bench/upload.md): give one per core on a bigger machine (about 150 MiB each)",
    ),
    _option("--init-timeout", "WANDB_INIT_TIMEOUT", "float", 90.0, "seconds wandb.init may take per attempt"),
    _option(
        "--finish-timeout",
        "UPLOAD_FINISH_TIMEOUT",
        "float",
        300.0,
        "seconds run.finish may take to send rows",
    ),
    _option(
        "--retry-attempts",
        "UPLOAD_RETRY_ATTEMPTS",
        "int",
        4,
        "upload attempts per run and pass on transient W&B errors, never twice in one worker",
    ),
    _option(
        "--retry-wait-max",
        "UPLOAD_RETRY_WAIT_MAX",
        "float",
        60.0,
        "cap of the jittered exponential wait between attempts",
    ),
)

_SERVICE = (
    _option(
        "--heartbeat-file",
        "HEARTBEAT_FILE",
        "str",
        "",
        "heartbeat the loop writes and the healthcheck reads",
        shown_default="<state-dir>/heartbeat.json",
    ),
    _option("--max-cycles", "MAX_CYCLES", "int", 0, "stop after N cycles (0: run until stopped)"),
    _option(
        "--full-scan-every",
        "UPLOAD_FULL_SCAN_EVERY",
        "int",
        60,
        "every N cycles the upload stats every checkpoint of every model; in between it looks only "
        "at what unpack wrote and what the last pass left unfinished (1: a full scan every cycle)",
    ),
    _option(
        "--max-age-seconds",
        "HEALTH_MAX_AGE_SECONDS",
        "float",
        0.0,
        "oldest acceptable heartbeat",
        shown_default="max(3 x poll interval, 600)",
    ),
    _option(
        "--max-failed-cycles",
        "HEALTH_MAX_FAILED_CYCLES",
        "int",
        3,
        "unhealthy after this many failed cycles in a row (a permanent failure, exit 4: at once)",
    ),
    _option(
        "--max-seconds-without-success",
        "HEALTH_MAX_SECONDS_WITHOUT_SUCCESS",
        "float",
        21600.0,
        "unhealthy when no cycle succeeded for this long (0: no limit)",
    ),
    _option("--json", "STATUS_JSON", "bool", False, "print JSON instead of a table"),
    _option("--keep-bundles", "UNPACK_KEEP_BUNDLES", "bool", False, "keep applied bundles in the inbox"),
    _option("--max-members", "UNPACK_MAX_MEMBERS", "int", DEFAULT_MAX_MEMBERS, "members per bundle"),
    _option(
        "--max-bytes", "UNPACK_MAX_BYTES", "int", DEFAULT_MAX_BUNDLE_BYTES, "uncompressed bytes per bundle"
    ),
    _option(
        "--workdir",
        "DEMO_WORKDIR",
        "str",
        ".demo/walkthrough",
        "directory for both roles' files (recreated; the compose demo keeps its keys in .demo/compose)",
    ),
)

# The report (local.report): tables, charts and a page from a results tree; no W&B access.
_REPORT = (
    _option("--output-dir", "REPORT_OUTPUT_DIR", "str", "report", "where the CSVs, charts and index.html go"),
    _option(
        "--rank-by",
        "REPORT_RANK_BY",
        "list",
        ["NDCG@10", "HR@10", "NDCG@50", "HR@50"],
        "the best checkpoint: highest first metric, ties broken by the next, then the lower step",
    ),
    _option(
        "--peaks", "REPORT_PEAKS", "list", ["HR@50"], "metrics whose peak value, checkpoint and epoch to show"
    ),
    _option(
        "--baseline",
        "REPORT_BASELINE",
        "list",
        [],
        "reference checkpoint MODEL_DIR:CHECKPOINT, compared with its group's models (repeatable)",
    ),
    _option(
        "--models",
        "REPORT_MODELS",
        "list",
        [],
        "models to report, matched as --model-filter; none: all (repeatable, a,b)",
    ),
    _option(
        "--group-by",
        "REPORT_GROUP_BY",
        "str",
        "dataset",
        "models on one chart and compared with one baseline",
        choices=("dataset", "cb_setting", "none"),
    ),
    _option(
        "--metrics", "REPORT_METRICS", "list", ["HR@10", "NDCG@10", "HR@50", "NDCG@50"], "metrics to chart"
    ),
)

TABLE: Dict[str, Option] = {
    option.dest: option for option in _REMOTE + _LOGGING + _PULL + _UPLOAD + _SERVICE + _REPORT
}


def _convert(option: Option, raw: str) -> Any:
    """Given an option and a text value, return the typed value or raise ValueError."""
    if option.kind == "bool":
        word = raw.strip().lower()
        if word not in TRUE_WORDS + FALSE_WORDS:
            raise ValueError(f"expected one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")
        return word in TRUE_WORDS
    if option.kind == "list":
        return [part.strip() for part in raw.split(",") if part.strip()]
    if option.choices == LOG_LEVELS:
        raw = raw.upper()  # --log-level debug, as the original accepted
    value: Any = {"int": int, "float": float}.get(option.kind, str)(raw)
    if option.choices and value not in option.choices:
        raise ValueError(f"expected one of {', '.join(option.choices)}")
    return value


def env_value(name: str, environ: Optional[Mapping[str, str]] = None) -> Any:
    """Given an option name, return its value from the environment, else its default.

    Raises OptionEnvError naming the variable when the environment holds a value the option
    cannot take (a mistyped ``WANDB_MODE`` must stop the command, not fall back silently).
    """
    option = TABLE[name]
    raw = (os.environ if environ is None else environ).get(option.env, "")
    if raw == "":
        return list(option.default) if option.kind == "list" else option.default
    try:
        return _convert(option, raw)
    except ValueError as exc:
        raise OptionEnvError(f"{option.env}={raw!r} cannot be used for {option.flag} ({exc})") from exc


class _ReplaceThenAppend(argparse.Action):
    """``append`` whose first use on the command line replaces the environment's list."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        seen = f"_{self.dest}_given"
        current = getattr(namespace, self.dest) if getattr(namespace, seen, False) else []
        setattr(namespace, seen, True)
        setattr(namespace, self.dest, current + [part.strip() for part in values.split(",") if part.strip()])


def _type_for(option: Option) -> Any:
    def convert(raw: str) -> Any:
        try:
            return _convert(option, raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{raw!r}: {exc}") from exc

    convert.__name__ = option.kind
    return convert


def help_text(option: Option) -> str:
    """Given an option, return its help line: what it does, its variable, its default."""
    default = option.shown_default or ("off" if option.kind == "bool" else repr(option.default))
    if option.default in ("", [], None) and not option.shown_default:
        default = "none"
    return f"{option.help} (env {option.env}; default {default})"


def add_options(parser: argparse.ArgumentParser, names: Sequence[str], suppress: bool = False) -> None:
    """Given a parser and option names, add each option as the table defines it.

    ``suppress`` leaves the attribute unset unless the flag is given (for options a parent parser
    also defines, such as ``--log-level`` after the command name).
    """
    for name in names:
        option = TABLE[name]
        default = argparse.SUPPRESS if suppress else env_value(name)
        common: Dict[str, Any] = {"dest": option.dest, "default": default, "help": help_text(option)}
        if option.kind == "bool":
            parser.add_argument(option.flag, action="store_true", **common)
        elif option.kind == "list":
            parser.add_argument(option.flag, action=_ReplaceThenAppend, metavar="TEXT", **common)
        else:
            metavar = "{" + ",".join(option.choices) + "}" if option.choices else METAVARS[option.kind]
            parser.add_argument(option.flag, type=_type_for(option), metavar=metavar, **common)
