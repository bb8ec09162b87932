# Every target installs what it needs itself: `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_PKG_DIR := /usr/share/datasets/fashion-mnist
# Pins every install (no unpinned torch can pull a multi-GB CUDA build).
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: setup data prometheus sshd systemd-analyze chromium test demo bench bench-paper lint clean proto

setup: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[torch,dev,ray]'
	touch $@

# The Debian package dataset-fashion-mnist, unless $$EDGE_AGENT_DATA points elsewhere.
data:
	@if [ -z "$$EDGE_AGENT_DATA" ] && [ ! -f $(DATA_PKG_DIR)/train-images-idx3-ubyte.gz ]; then \
		echo "installing Debian package dataset-fashion-mnist"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	fi

# The Debian package prometheus: tests/agent/test_operator_view.py starts a real server to scrape agents.
prometheus:
	@if ! command -v prometheus >/dev/null; then \
		echo "installing Debian package prometheus"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus; \
	fi

# The Debian package openssh-server: tests/cli/test_flash_command.py flashes boards behind a real sshd on 127.0.0.1.
sshd:
	@if [ ! -x /usr/sbin/sshd ]; then \
		echo "installing Debian package openssh-server"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends openssh-server; \
	fi

# The Debian package systemd: tests/deploy/test_unit.py checks the agent's unit with systemd-analyze.
systemd-analyze:
	@if ! command -v systemd-analyze >/dev/null; then \
		echo "installing Debian package systemd"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends systemd; \
	fi

# The Debian package chromium: tests/cli/test_dashboard_command.py opens the dashboard's page in it, headless, over the
# DevTools protocol (no chromium-driver needed).
chromium:
	@if ! command -v chromium >/dev/null; then \
		echo "installing Debian package chromium"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; \
	fi

# Two workers, a test file each at a time (module fixtures start their fleets once), each with one BLAS thread as
# the agents it starts have: with two threads each, spinning BLAS threads on 2 cores made one test 105 s, not 17 s.
test: setup prometheus sshd systemd-analyze chromium
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile

lint: setup
	$(VENV)/bin/ruff check edge_agent tests bench
	$(VENV)/bin/mypy

demo: setup
	$(VENV)/bin/edge-agent demo --setting edge --out runs/demo

# The link bench (README, Benchmarks): 8 real agents per fleet on the edge setting, SPARK, DFedAvg and NTK-DFL at
# 1 and 10 Mbit/s with 20 ms latency, each fleet at most 30 minutes; report.md, plots, summary.json in runs/bench-link.
bench: setup
	$(VENV)/bin/edge-agent bench link --setting edge --algorithms spark,dfedavg,ntk-dfl --rate 1mbit,10mbit \
		--latency 20ms --time-budget 30m --out runs/bench-link

# The simulator's benchmark of the published 300-client setting.
bench-paper: setup
	$(PY) bench/bench_paper.py

# Regenerates the committed gRPC stubs in edge_agent/v1 (tests/transport/test_proto_stubs.py fails when stale).
proto: $(VENV)/.installed
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/edge_agent/v1/agent.proto

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache
