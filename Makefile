# edgenode: every set-up step is here, so a fresh clone needs only `make demo` or `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp

.PHONY: install filters test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

# Rebuild every .wasm from source (C via zig cc from the ziglang wheel, AssemblyScript via npm).
filters: install
	$(MAKE) -C filters ZIG_CC="$(abspath $(VPY)) -m ziglang cc"
	$(MAKE) -C filters/examples/assemblyscript

test: install filters
	$(VPY) -m pytest -q

demo: install filters
	$(VENV)/bin/edgenode demo

clean:
	rm -rf $(VENV) filters/build
