# edgenode: every set-up step is here, so a fresh clone needs only `make demo` or `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp

.PHONY: install system filters test demo bench clean

install: $(STAMP)

# Debian packages of the real servers the tests start themselves (each test fixture starts
# its own instance on 127.0.0.1) and of the load generator.  Installed when missing; needs
# root or sudo.
DEB_PACKAGES := wrk

system:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml $(wildcard edgenode/wasm/native/*.c edgenode/wasm/native/*.h)
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

# Rebuild every .wasm from source (C via zig cc from the ziglang wheel, AssemblyScript via npm).
filters: install
	$(MAKE) -C filters ZIG_CC="$(abspath $(VPY)) -m ziglang cc"
	$(MAKE) -C filters/examples/assemblyscript

test: install system filters
	$(VPY) -m pytest -q

demo: install filters
	$(VENV)/bin/edgenode demo

clean:
	rm -rf $(VENV) filters/build
