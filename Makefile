# replaywire: `make help` lists the targets.
#
# A fresh clone needs Python >= 3.11 and the Rust toolchain (cargo), then
# `make run` or `make test`. Each target installs what it needs: Python
# packages into .venv/, npm packages into js/node_modules/, and from the
# machine (tools/prereqs.sh: on Debian as root with apt-get, elsewhere it
# names what to install) Node.js and npm for both, and Chromium, PostgreSQL's
# server binaries and redis-server for `make test`. Finished steps leave
# stamp files in .venv/, so running a target again skips what is done.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --no-print-directory

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=

# CI must build exactly what Cargo.lock says; locally cargo may update it.
CARGO_LOCKED := $(if $(filter true 1,$(CI)),--locked,)
PIP_QUIET := $(if $(filter true 1,$(CI)),--progress-bar off,--quiet)

export PIP_DISABLE_PIP_VERSION_CHECK := 1

RUST_SOURCES := $(shell find rust -type f 2>/dev/null) Cargo.toml $(wildcard Cargo.lock)
# The benchmarks' load generator: a crate of its own, outside the extension's build.
LOADGEN := --manifest-path benches/loadgen/Cargo.toml
# The Rust benchmark peer: a crate of its own too; the suite builds it when it runs
# it, so CI only checks its formatting (a cold release build is ~40 s of CPU).
PEER_RS := --manifest-path benches/peers/rust-tungstenite/Cargo.toml
# The extension is built into python/replaywire/; if it is gone (git clean,
# make clean) the build stamp no longer counts.
CORE_SO := $(wildcard python/replaywire/_core.*.so)

STAMP_DEPS := $(VENV)/.stamp-deps
STAMP_DEV := $(VENV)/.stamp-build-dev

# `make test` runs the Python suite once, against the release wheel installed
# into a venv of its own (as users get it), not against the source tree.
WHEEL_VENV ?= .venv-wheel
STAMP_WHEEL := $(WHEEL_VENV)/.stamp-wheel
PY_SOURCES := $(shell find python/replaywire -type f -not -name '_core.*' -not -path '*/static/*' -not -path '*/__pycache__/*' 2>/dev/null)

# The browser assets (js/, built with esbuild into python/replaywire/static/,
# which the wheel ships). npm writes node_modules/.package-lock.json on every
# install, so it stamps `npm ci`; the built index.html (written last) stamps
# the build: both are redone only when their inputs change.
NPM_QUIET := --no-audit --no-fund $(if $(filter true 1,$(CI)),--loglevel=warn,)
JS_LOCK := js/package-lock.json
JS_MANIFESTS := js/package.json js/tracker/package.json js/viewer/package.json
JS_SOURCES := js/build.mjs $(shell find js/tracker/src js/viewer/src -type f 2>/dev/null)
STAMP_NPM := js/node_modules/.package-lock.json
STATIC_INDEX := python/replaywire/static/index.html

# Prints the requirements of the project and of the extras named in argv,
# following self-references (dev -> replaywire[test]), without installing the
# project itself: maturin develop does that.
define REQUIREMENTS_PY
import re, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
optional = project.get("optional-dependencies", {})
requirements, todo, seen = list(project.get("dependencies", [])), sys.argv[1:], set()
while todo:
    extra = todo.pop()
    if extra in seen:
        continue
    seen.add(extra)
    for req in optional[extra]:
        own = re.match(r"\s*" + re.escape(project["name"]) + r"\s*\[([^]]*)\]", req)
        if own:
            todo += [e.strip() for e in own.group(1).split(",")]
        else:
            requirements.append(req)
print("\n".join(dict.fromkeys(requirements)))
endef
export REQUIREMENTS_PY

.PHONY: help
help: ## Show this list
	@echo "usage: make TARGET [ARGS=...]"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: $(PYTHON) is older than Python 3.11; run make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP_DEPS): pyproject.toml | $(PY)
	$(PY) -c "$$REQUIREMENTS_PY" test dev > $(VENV)/requirements-dev.txt
	$(PY) -m pip install $(PIP_QUIET) -r $(VENV)/requirements-dev.txt
	@touch $@

.PHONY: venv
venv: $(STAMP_DEPS) ## Create .venv with the runtime, test and dev dependencies (not the project)

$(STAMP_DEV): $(RUST_SOURCES) pyproject.toml $(STAMP_DEPS) $(if $(CORE_SO),,FORCE)
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --release $(CARGO_LOCKED)
	@touch $@

$(STAMP_NPM): $(JS_LOCK) $(JS_MANIFESTS)
	@tools/prereqs.sh run
	cd js && npm ci $(NPM_QUIET)
	@touch $@

$(STATIC_INDEX): $(STAMP_NPM) $(JS_SOURCES)
	cd js && node build.mjs

.PHONY: js
js: $(STATIC_INDEX) ## Build the tracker and viewer assets (npm ci + esbuild; skipped when unchanged)

.PHONY: test-js
test-js: $(STAMP_NPM) ## Run the JavaScript unit tests (node --test)
	cd js && npm test --silent

.PHONY: build-dev
build-dev: js $(STAMP_DEV) ## Build the browser assets and the extension (release); install the package into .venv, editable

.PHONY: build-prod
build-prod: js $(STAMP_DEPS) ## Build the browser assets, then the release wheel into dist/
	rm -f dist/replaywire-*.whl
	$(VENV)/bin/maturin build --release $(CARGO_LOCKED) --interpreter $(PY) --out dist

# The wheel of build-prod, installed with its test extra into $(WHEEL_VENV).
$(STAMP_WHEEL): $(RUST_SOURCES) $(PY_SOURCES) pyproject.toml $(STATIC_INDEX) $(STAMP_DEPS)
	$(MAKE) build-prod
	@[ -x $(WHEEL_VENV)/bin/python ] || $(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/pip install $(PIP_QUIET) "$$(ls dist/replaywire-*.whl)[test]"
	$(WHEEL_VENV)/bin/pip install $(PIP_QUIET) --force-reinstall --no-deps dist/replaywire-*.whl
	@touch $@

.PHONY: wheel-venv
wheel-venv: $(STAMP_WHEEL) ## Build the release wheel and install it (with the test extra) into .venv-wheel

.PHONY: run
run: build-dev ## Run a server with the default configuration (make run ARGS="--port 9000")
	$(VENV)/bin/replaywire serve $(ARGS)

.PHONY: prereqs
prereqs: ## Check what make test needs from the machine (Node.js, Chromium, PostgreSQL, redis-server); on Debian as root, install it
	@tools/prereqs.sh test

.PHONY: test
test: prereqs build-dev $(STAMP_WHEEL) ## Run the Rust and JavaScript tests, then the Python tests against the installed wheel (PYTEST_ARGS=...)
	cargo test $(CARGO_LOCKED)
	cargo test $(CARGO_LOCKED) $(LOADGEN)
	cd js && npm test --silent
	@rc=0; $(WHEEL_VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then \
	  echo "make test: pytest collected no tests (exit 5); a run that tests nothing fails" >&2; \
	fi; \
	exit $$rc

.PHONY: lint
lint: build-dev ## cargo fmt and clippy, ruff, mypy, and the _core.pyi stubs against the build
	cargo fmt --all --check $(if $(filter true 1,$(CI)),-- --color=never,)
	PYO3_PYTHON=$(abspath $(PY)) cargo clippy --all-targets --all-features $(CARGO_LOCKED) -- -D warnings
	cargo fmt $(LOADGEN) --check $(if $(filter true 1,$(CI)),-- --color=never,)
	cargo clippy $(LOADGEN) --all-targets $(CARGO_LOCKED) -- -D warnings
	cargo fmt $(PEER_RS) --check $(if $(filter true 1,$(CI)),-- --color=never,)
	# The fuzz targets build outside `cargo test` (they include the harnesses it runs).
	cargo clippy --manifest-path fuzz/Cargo.toml --bins -- -D warnings
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest replaywire._core

.PHONY: conformance
conformance: build-dev ## Autobahn|Testsuite: all 517 cases on both WebSocket codecs (~25 min); HTML report in autobahn-report/
	$(PY) tests/conformance/autobahn.py --all --outdir autobahn-report

.PHONY: loadgen
loadgen: ## Build the Rust load generator and discard sink (benches/loadgen/, release)
	cargo build --release $(CARGO_LOCKED) $(LOADGEN)

.PHONY: bench
bench: build-dev ## Rust decode throughput, then the end-to-end ingest load (BENCH_ARGS=...)
	cargo test --release $(CARGO_LOCKED) --test ws_throughput -- --ignored --nocapture
	$(PY) benches/ingest_load.py $(BENCH_ARGS)

.PHONY: bench-suite
bench-suite: build-dev ## The benchmark suite: results folder with JSON, tables, plots (BENCH_ARGS=...)
	$(PY) -m benches $(BENCH_ARGS)

.PHONY: clean
clean: ## Remove build outputs and caches (keeps .venv)
	rm -rf target benches/loadgen/target benches/peers/rust-tungstenite/target dist python/replaywire/_core.*.so $(STAMP_DEV) $(STAMP_WHEEL)
	rm -rf python/replaywire/static js/tracker/dist tests/artifacts
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find $(wildcard python tests benches) -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: distclean
distclean: clean ## clean, and remove .venv and js/node_modules too
	rm -rf $(VENV) $(WHEEL_VENV) js/node_modules

.PHONY: FORCE
FORCE:
