"""One table of options: every flag of every command of both roles, checked against the table,
against `.env.template` and against what compose passes to the uploader service."""

from __future__ import annotations

import argparse
import re
from collections import Counter
from typing import Dict, Iterator, Tuple

import pytest

import local.cli.main
import remote.cli
from remote.contract.options import TABLE, OptionEnvError, env_value
from tests.fixtures.trees import REPO_ROOT

TEMPLATE = REPO_ROOT / ".env.template"
COMPOSE = REPO_ROOT / "compose.yaml"
# Variables of .env.template that are not options of a command: compose, secrets, the SDK's own.
NOT_OPTIONS = {
    "SSH_KEY_PASSPHRASE": "a secret: read from the environment only, never a flag",
    "WANDB_API_KEY_FILE": "a secret file, read into WANDB_API_KEY",
    "WANDB_BASE_URL": "read by the wandb SDK itself",
    "HEALTHCHECK_INTERVAL": "compose's healthcheck interval",
    "STOP_GRACE_PERIOD": "compose's stop grace period",
    "IMAGE_TAG": "the image tag compose builds and runs",
    "DEMO_SSH_PORT": "the compose demo's remote",
    "DEMO_PACK_INTERVAL_SECONDS": "the compose demo's remote",
}
# Options of the service's commands that .env does not set, and why.
NOT_IN_ENV_FILE = {
    "PULL_INBOX": "a path inside the container (a volume), set by compose",
    "RESULTS_ROOT": "a path inside the container (a volume), set by compose",
    "STATE_DIR": "a path inside the container (a volume), set by compose",
    "WANDB_DIR": "a path inside the container (a volume), set by compose",
    "PULL_IDENTITY": "a secret mounted at a fixed path, set by compose",
    "PULL_KNOWN_HOSTS": "a secret mounted at a fixed path, set by compose",
    "PULL_ACCEPT_NEW_HOST_KEY": "known_hosts is a read-only secret in the container: pin it on the host",
    "HEARTBEAT_FILE": "<state-dir>/heartbeat.json inside the container",
    "MANIFEST_PATH": "<results-root>/.wandb_eval_manifest.json inside the container",
    "MAX_CYCLES": "the service runs until stopped",
    "WANDB_DISABLED": "a dry run is a one-off command, not a service",
    "WANDB_EVAL_MANIFEST_OVERRIDES": "a file: mount it and set it in a compose override file (README)",
}


def _commands(parser: argparse.ArgumentParser) -> Iterator[Tuple[str, argparse.ArgumentParser]]:
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _parsers() -> Dict[str, argparse.ArgumentParser]:
    found = {}
    for role, build in (("remote", remote.cli.build_parser), ("local", local.cli.main.build_parser)):
        for name, parser in _commands(build()):
            found[f"{role} {name}"] = parser
    return found


def _env_template() -> Dict[str, str]:
    return dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", TEMPLATE.read_text(), re.MULTILINE))


def test_options_every_flag_of_every_command_is_the_tables() -> None:
    for command, parser in _parsers().items():
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            option = TABLE.get(action.dest)
            assert option is not None, f"{command}: {action.option_strings} is not in the option table"
            assert action.option_strings == [option.flag], f"{command}: {action.dest} is spelled differently"
            assert f"env {option.env}" in (action.help or ""), f"{command} {option.flag}: help names no env"


def test_options_one_flag_and_one_variable_per_option() -> None:
    flags = Counter(option.flag for option in TABLE.values())
    envs = Counter(option.env for option in TABLE.values())
    assert [flag for flag, count in flags.items() if count > 1] == []
    assert [env for env, count in envs.items() if count > 1] == []


def test_options_same_flag_same_default_in_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    for option in TABLE.values():
        monkeypatch.delenv(option.env, raising=False)
    defaults: Dict[str, set] = {}
    for parser in _parsers().values():
        for action in parser._actions:
            if action.dest in TABLE and action.default is not argparse.SUPPRESS:
                defaults.setdefault(action.dest, set()).add(repr(action.default))
    assert {dest: values for dest, values in defaults.items() if len(values) > 1} == {}


def test_options_environment_sets_the_default_and_the_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULL_PORT", "2222")
    monkeypatch.setenv("MODEL_FILTER", "Games,Instruments-*")
    parser = local.cli.main.build_parser()
    args = parser.parse_args(["once"])
    assert (args.port, args.model_filter) == (2222, ["Games", "Instruments-*"])
    args = parser.parse_args(["once", "--port", "22", "--model-filter", "Beauty"])
    assert (args.port, args.model_filter) == (22, ["Beauty"])


def test_options_bad_environment_value_is_one_line_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("WANDB_MODE", "onlin")
    with pytest.raises(OptionEnvError, match="WANDB_MODE='onlin'"):
        env_value("wandb_mode")
    assert local.cli.main.main(["status"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("Error: WANDB_MODE='onlin' cannot be used for --wandb-mode")
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("PULL_PORT", "twenty-two")
    assert local.cli.main.main(["pull"]) == 2
    assert "PULL_PORT='twenty-two'" in capsys.readouterr().err


def test_options_env_template_holds_only_known_variables() -> None:
    known = {option.env for option in TABLE.values()} | set(NOT_OPTIONS)
    assert sorted(set(_env_template()) - known) == []


def test_options_every_service_option_is_in_the_env_template_and_passed_by_compose() -> None:
    parsers = _parsers()
    service_envs = {
        TABLE[action.dest].env
        for name in ("local run", "local health")
        for action in parsers[name]._actions
        if action.dest in TABLE
    }
    template = _env_template()
    missing = sorted(service_envs - set(template) - set(NOT_IN_ENV_FILE))
    assert missing == [], f"service options neither in .env.template nor explained: {missing}"
    compose = COMPOSE.read_text()
    not_passed = sorted(name for name in template if f"${{{name}" not in compose)
    assert not_passed == [], f".env.template variables compose.yaml never reads: {not_passed}"
    for name in (name for name, why in NOT_IN_ENV_FILE.items() if why.endswith("set by compose")):
        assert re.search(rf"^\s+{name}:", compose, re.MULTILINE), f"compose.yaml does not set {name}"
