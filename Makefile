# agent-otel: `make test` bootstraps everything it needs from scratch, `make demo` runs the demo.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Two installs into the one venv: `make demo` needs only the package (RUNTIME_STAMP); `make test` and the
# developer targets also need the test extra (STAMP), which includes everything the runtime install has.
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime

.PHONY: test lint typecheck bench bench-quick demo demo-collector deps test-deps clean collector

$(PY):
	$(PYTHON) -m venv $(VENV) || { \
	  [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && rm -rf $(VENV) && \
	  echo "python3 -m venv failed; installing Debian's python3-venv" && apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv && \
	  $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP) $(RUNTIME_STAMP)

# Debian packages installed when their commands are missing: $(1) the commands, $(2) the packages.
define apt_install
	@missing=""; for b in $(1); do command -v $$b >/dev/null || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's $(2) (missing:$$missing)"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(2); \
	  else \
	    echo "missing:$$missing. Install them as root with:"; \
	    echo "  apt-get install -y --no-install-recommends $(2)"; \
	    exit 1; \
	  fi; \
	fi
endef

# Prometheus, promtool, Alertmanager and amtool: what the demo and the tests run.
deps:
	$(call apt_install,prometheus promtool prometheus-alertmanager amtool,prometheus prometheus-alertmanager)

# The tests also open the HTML report in Chromium (tests/e2e/test_report_html_e2e.py): one apt run for all.
test-deps:
	$(call apt_install,prometheus promtool prometheus-alertmanager amtool chromium,\
	  prometheus prometheus-alertmanager chromium)

# agent-otel's own OpenTelemetry Collector (collector-config/), built with the local Go toolchain. Go's module
# and build caches (go env GOMODCACHE GOCACHE) make later builds fast; make rebuilds only when a source is newer.
GO ?= go
COLLECTOR := bin/otelcol-agent-otel
COLLECTOR_SRC := $(wildcard collector-config/*.go) collector-config/go.mod collector-config/go.sum

collector: $(COLLECTOR)

$(COLLECTOR): $(COLLECTOR_SRC)
	@command -v $(GO) >/dev/null || { echo "make collector needs Go >= 1.26 on PATH" \
	  "to build $(COLLECTOR); or run upstream otelcol-contrib with the same configs (README)"; exit 1; }
	cd collector-config && CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags="-s -w" -tags grpcnotrace \
	  -o ../$(COLLECTOR) .

# The venv, the Debian packages and the Collector are set up side by side (a cold Go build takes minutes).
test:
	@$(MAKE) --no-print-directory -j3 $(STAMP) test-deps collector
	$(VENV)/bin/ruff check src tests bench mixin
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n 2 --dist loadgroup

# The simulated fleet with a local Prometheus (shipped rules) and Alertmanager (shipped config); Ctrl-C stops it.
# Ports 9464, 9090 and 9093 unless busy (Debian's own prometheus services): then free ones, printed.
# DEMO_ARGS passes flags, e.g. make demo DEMO_ARGS="--rate 5 --seed 3".
demo: $(RUNTIME_STAMP) deps
	$(VENV)/bin/agent-otel demo --stack $(DEMO_ARGS)

# The same through our Collector (bin/otelcol-agent-otel, the shipped otelcol.yaml) between the fleet and Prometheus.
demo-collector: $(RUNTIME_STAMP) deps collector
	$(VENV)/bin/agent-otel demo --stack --collector bin/otelcol-agent-otel $(DEMO_ARGS)

# Not part of `make test`: ratios measured side by side, written to docs/performance.md.
bench: $(STAMP)
	$(PY) bench/run.py

# The headline rows (every kind, sync, full and tracing off, vs its exact SDK floor) in under a minute, before a
# commit; prints, writes nothing.
bench-quick: $(STAMP)
	$(PY) bench/run.py --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench mixin

# mypy --strict over src/agent_otel (settings in pyproject.toml); part of `make test`.
typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
