#!/usr/bin/env bash
# Check the uploader's configuration before `docker compose up/run`: the env file exists and every
# secret file the active services mount exists and is readable by uid 10001 (the containers' user;
# compose bind-mounts secret files as they are, it cannot change their owner or mode).
#   docker/preflight.sh [ENV_FILE]     (default .env; exit 2 with one line per problem)
set -euo pipefail
cd "$(dirname "$0")/.."
env_file=${1:-.env}
if [ ! -f "$env_file" ]; then
    echo "preflight: no $env_file; create it: cp .env.template $env_file, then fill it in" >&2
    exit 2
fi
docker compose --env-file "$env_file" config --format json | "${PYTHON:-python3}" -c '
import json, os, stat, sys
config = json.load(sys.stdin)
used = {s["source"] for svc in config.get("services", {}).values() for s in svc.get("secrets", [])}
problems = []
for name in sorted(used):
    path = config["secrets"][name].get("file")
    if not path:
        continue
    try:
        info = os.stat(path)
    except OSError as exc:
        problems.append("secret {}: {} ({})".format(name, path, exc.strerror))
        continue
    readable = (info.st_uid == 10001 and info.st_mode & stat.S_IRUSR) or \
        (info.st_gid == 10001 and info.st_mode & stat.S_IRGRP) or info.st_mode & stat.S_IROTH
    if not readable:
        problems.append("secret {}: {} is not readable by uid 10001 (the container user); "
                        "run: sudo chown 10001 {}".format(name, path, path))
for problem in problems:
    print("preflight: " + problem, file=sys.stderr)
sys.exit(2 if problems else 0)
'
echo "preflight: $env_file and its secret files look fine"
