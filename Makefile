# Make targets of the eval upload pipeline. `make help` lists them.
# Training machine: only python3 (>= 3.9) and dist/wandb-eval-remote.pyz (`make remote-zipapp`) are
# needed, not this Makefile. Local machine: python3 + Docker.

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
RESULTS_ROOT ?= ./results
OUTBOX ?= ./outbox
PACK_ARGS ?=
STATE_DIR ?= state/wandb_eval_uploader
# `make demo` works here; the compose demo (`make demo-compose`) keeps its keys in .demo/compose.
DEMO_WORKDIR ?= .demo/walkthrough
REPORT_DIR ?= report
REPORT_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv demo status report prepare-manifest remote-pack remote-zipapp lint typecheck layers vermin check test bench-remote bench-pull bench-upload

help: ## show the targets and what they do
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## create .venv with the local role and the dev tools

demo: $(VENV)/.installed ## the whole job on built-in sample data (W&B offline unless WANDB_API_KEY is set)
	$(VPY) -m local demo --workdir $(DEMO_WORKDIR)

# Until RESULTS_ROOT holds results of your own, `make status` shows the demo's (said on its first line).
status: $(VENV)/.installed ## per model: uploaded, last and best, waiting for eval, failures (the demo's until you have results)
	@if [ "$(origin RESULTS_ROOT)" = file ] && [ ! -e "$(RESULTS_ROOT)/.wandb_eval_manifest.json" ] \
		&& [ -e "$(DEMO_WORKDIR)/local/results/.wandb_eval_manifest.json" ]; then \
		echo "No results in $(RESULTS_ROOT) yet; showing the demo's ($(DEMO_WORKDIR)/local):"; \
		$(VPY) -m local status --results-root $(DEMO_WORKDIR)/local/results --state-dir $(DEMO_WORKDIR)/local/state; \
	else \
		$(VPY) -m local status --results-root $(RESULTS_ROOT) --state-dir $(STATE_DIR); \
	fi

report: $(VENV)/.installed ## best summary + checkpoint CSVs, charts and index.html of RESULTS_ROOT into REPORT_DIR (no W&B)
	$(VPY) -m local report --results-root $(RESULTS_ROOT) --output-dir $(REPORT_DIR) $(REPORT_ARGS)

# Training-machine targets run the native python3; USE_IMAGE=1 runs the remote image instead
# (for clusters with Docker but no suitable Python), as the calling user so files stay theirs.
REMOTE_IMAGE ?= wandb-eval-remote:latest
ifeq ($(USE_IMAGE),1)
REMOTE = docker run --rm --user "$$(id -u):$$(id -g)" -v "$(abspath $(RESULTS_ROOT)):/data/results" \
	-v "$(abspath $(OUTBOX)):/data/outbox" $(REMOTE_IMAGE)
REMOTE_RESULTS = /data/results
REMOTE_OUTBOX = /data/outbox
else
REMOTE = $(PYTHON) -m remote
REMOTE_RESULTS = $(RESULTS_ROOT)
REMOTE_OUTBOX = $(OUTBOX)
endif

prepare-manifest: ## (training machine) write RESULTS_ROOT/.wandb_eval_manifest.json (USE_IMAGE=1: in the image)
	$(REMOTE) prepare-manifest --results-root $(REMOTE_RESULTS) \
		--output-manifest $(REMOTE_RESULTS)/.wandb_eval_manifest.json

remote-pack: ## (training machine) refresh the manifest and publish a bundle into OUTBOX (USE_IMAGE=1: in the image)
	@mkdir -p $(OUTBOX)
	$(REMOTE) pack --results-root $(REMOTE_RESULTS) --outbox $(REMOTE_OUTBOX) $(PACK_ARGS)

# The remote role as one file (standard library zipapp): copy it to the training machine and run
# `python3 wandb-eval-remote.pyz pack ...` from any folder (Python >= 3.9, nothing to install).
ZIPAPP ?= dist/wandb-eval-remote.pyz
ZIPAPP_BUILD ?= build/remote-zipapp
remote-zipapp: ## build ZIPAPP (dist/wandb-eval-remote.pyz): the remote role as one file for the training machine
	rm -rf $(ZIPAPP_BUILD) && mkdir -p $(ZIPAPP_BUILD) $(dir $(ZIPAPP))
	cp -R remote $(ZIPAPP_BUILD)/remote
	rm -rf $(ZIPAPP_BUILD)/remote/demo && find $(ZIPAPP_BUILD) -name __pycache__ -prune -exec rm -rf {} +
	cp remote/__main__.py $(ZIPAPP_BUILD)/__main__.py
	$(PYTHON) -m zipapp $(ZIPAPP_BUILD) --python '/usr/bin/env python3' --compress --output $(ZIPAPP)
	@echo "wrote $(ZIPAPP); on the training machine: python3 $(notdir $(ZIPAPP)) pack --results-root ./results --outbox ./outbox"

lint: $(VENV)/.installed ## ruff on the whole tree
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check remote local

typecheck: $(VENV)/.installed ## mypy on remote/ and local/
	$(VENV)/bin/mypy

layers: $(VENV)/.installed ## import-linter: remote never imports local; local imports only remote.contract
	$(VENV)/bin/lint-imports

vermin: $(VENV)/.installed ## prove remote/ runs on Python 3.9 (standard library only)
	$(VENV)/bin/vermin --no-tips --violations --eval-annotations -t=3.9- remote

check: lint typecheck layers vermin ## all static checks

test: $(VENV)/.installed ## run the whole test suite
	$(VPY) -m pytest

bench-remote: $(VENV)/.installed ## benchmark prepare-manifest + pack (1,000 models x 100 checkpoints)
	$(VPY) bench/bench_remote_pack.py

bench-pull: $(VENV)/.installed ## benchmark pull vs OpenSSH sftp (200 MB over loopback; needs openssh-server)
	$(VPY) bench/bench_pull.py

# The commit before the upload workers (issue 11): its figures are measured again beside ours.
UPLOAD_BASELINE ?= eb1662a

bench-upload: $(VENV)/.installed ## benchmark the uploader against UPLOAD_BASELINE and the original (about 45 min on 2 cores)
	$(VPY) bench/bench_upload.py backfill --variants ckpt_step --baseline $(UPLOAD_BASELINE)
	$(VPY) bench/bench_upload.py backfill --variants ckpt_step,epoch --baseline $(UPLOAD_BASELINE) --repeats 1
	$(VPY) bench/bench_upload.py backfill --models 64 --checkpoints 10 --variants ckpt_step,epoch --baseline $(UPLOAD_BASELINE) --original 1
	$(VPY) bench/bench_upload.py backfill --workers 1,2,3,4 --repeats 1
	$(VPY) bench/bench_upload.py idle --baseline $(UPLOAD_BASELINE)
	$(VPY) bench/bench_table.py --rows 100 --passes 10
	$(VPY) bench/bench_table.py --rows 1000 --passes 10
	$(VPY) bench/bench_upload.py collection --repeats 3

# Containers: engine, base image, images, compose service and demo (see docker/README.md).
# `-include`: a copy of this Makefile without docker/ (a training machine) still works.
-include docker/containers.mk
