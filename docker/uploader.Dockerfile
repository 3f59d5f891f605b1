# Local role (the uploader): pull bundles over SFTP, unpack, upload to W&B. Non-root, with a HEALTHCHECK
# that reads the heartbeat `python -m local run` writes every cycle.
#   docker compose build uploader        (see compose.yaml; BuildKit is required for the optional secret)
# Build secret `build_ca` (optional): a CA bundle for pip during the build only, for build hosts whose
# HTTPS goes through an intercepting proxy (docker/compose.build-ca.yaml). It is never stored in the image.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# uid/gid 10001: mounted secrets (SSH key, known_hosts, W&B key) must be readable by this id.
RUN groupadd --gid 10001 uploader \
    && useradd --uid 10001 --gid uploader --create-home --shell /usr/sbin/nologin uploader \
    && mkdir -p /data/inbox /data/results /data/state /data/wandb \
    && chown -R uploader:uploader /data
WORKDIR /src
# Dependencies first (their own layer, rebuilt only when pyproject.toml changes): exactly the pinned
# `local` extra of pyproject.toml, the one place the versions are written.
COPY pyproject.toml README.md ./
RUN --mount=type=secret,id=build_ca,required=false \
    if [ -s /run/secrets/build_ca ]; then export PIP_CERT=/run/secrets/build_ca; fi \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['local']))" >/tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY remote/ remote/
COPY local/ local/
RUN --mount=type=secret,id=build_ca,required=false \
    if [ -s /run/secrets/build_ca ]; then export PIP_CERT=/run/secrets/build_ca; fi \
    && pip install --no-cache-dir --no-deps . \
    && python -m local --help >/dev/null

USER 10001:10001
WORKDIR /data
ENV RESULTS_ROOT=/data/results \
    PULL_INBOX=/data/inbox \
    STATE_DIR=/data/state \
    WANDB_DIR=/data/wandb \
    WANDB_CACHE_DIR=/data/wandb/.cache \
    WANDB_CONFIG_DIR=/data/wandb/.config \
    WANDB_DATA_DIR=/data/wandb/.data
HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 CMD ["python", "-m", "local", "health"]
ENTRYPOINT ["python", "-m", "local"]
CMD ["run"]
