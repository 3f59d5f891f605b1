# Remote role (training machine): standard-library Python only. Copies nothing but remote/.
#   docker build -f docker/remote.Dockerfile -t wandb-eval-remote .
#   docker run --rm -v "$PWD/results:/data/results" -v "$PWD/outbox:/data/outbox" wandb-eval-remote pack
# Stage `demo` (compose profile demo) adds an OpenSSH server serving generated sample results.
FROM python:3.11-slim AS remote-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app
# uid/gid 10001: a fixed non-root id, so files it writes into mounted directories are predictable.
RUN groupadd --gid 10001 eval \
    && useradd --uid 10001 --gid eval --create-home --shell /bin/sh eval \
    && mkdir -p /data/results /data/outbox \
    && chown -R eval:eval /data
COPY --chown=root:root remote/ /app/remote/
# ./results and ./outbox (the CLI defaults) resolve to the mounted /data/results and /data/outbox.
WORKDIR /data

# The demo remote: the same image plus sshd (key-only, run by the non-root user on an unprivileged
# port), sample results, and `python -m remote pack` every DEMO_PACK_INTERVAL_SECONDS.
FROM remote-base AS demo
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-server=1:9.2* \
    && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_*
COPY docker/remote-demo-entrypoint.sh /usr/local/bin/remote-demo
USER 10001:10001
ENV DEMO_SSH_PORT=2222 \
    DEMO_PACK_INTERVAL_SECONDS=20
# Healthy once sshd runs and the first bundle is published (no probe connection: sshd would log each).
HEALTHCHECK --interval=5s --timeout=5s --start-period=10s --retries=3 \
    CMD ["sh", "-c", "kill -0 \"$(cat /home/eval/sshd/sshd.pid)\" && test -s /data/outbox/index.json"]
ENTRYPOINT ["/usr/local/bin/remote-demo"]

# The shipped remote image (default target).
FROM remote-base AS remote
USER 10001:10001
ENTRYPOINT ["python", "-m", "remote"]
CMD ["--help"]
