# edgenode: every set-up step is here, so a fresh clone needs only `make demo` or `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp

.PHONY: install system filters functions cache-tests test demo bench clean

install: $(STAMP)

# Debian packages of the real servers the tests start themselves (each test fixture starts
# its own instance on 127.0.0.1) and of the load generator.  Installed when missing; needs
# root or sudo.  The WAF filter's regex first pass (filters/waf/rxset) is Rust, built offline
# with Debian's rustc, its wasm32 standard library and Debian's packaged `regex`,
# `aho-corasick` and `memchr` crates (the `perf` feature's literal search; not pulled in
# by librust-regex-dev without recommends).
DEB_PACKAGES := wrk redis-server modsecurity-crs docker-registry rustc cargo libstd-rust-dev-wasm32 librust-regex-dev librust-aho-corasick-dev librust-memchr-dev

system:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  echo "installing Debian packages:$$missing"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# the C extensions are compiled by the install: their sources count too
$(STAMP): pyproject.toml setup.py $(wildcard edgenode/*/*.c edgenode/*/*.h edgenode/*/native/*.c edgenode/*/native/*.h)
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test,functions]'
	touch $@

# Rebuild every .wasm from source (C via zig cc from the ziglang wheel, AssemblyScript via npm).
filters: install system
	$(MAKE) -C filters ZIG_CC="$(abspath $(VPY)) -m ziglang cc"
	$(MAKE) -C filters/examples/assemblyscript

# The npm toolchain for JavaScript functions (componentize-js, jco; pinned in its
# package-lock.json), then the example functions the default config serves (skipped
# when up to date; each build also fills the compiled-component cache).
FN_TOOLCHAIN := edgenode/functions/toolchain
FN_EXAMPLES  := edgenode/functions/examples

$(FN_TOOLCHAIN)/node_modules/.package-lock.json: $(FN_TOOLCHAIN)/package.json $(FN_TOOLCHAIN)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	cd $(FN_TOOLCHAIN) && npm ci --no-audit --no-fund

functions: install $(FN_TOOLCHAIN)/node_modules/.package-lock.json
	$(VENV)/bin/edgenode function build $(FN_EXAMPLES)/hello-js
	$(VENV)/bin/edgenode function build $(FN_EXAMPLES)/hello-py
	$(VENV)/bin/edgenode function build $(FN_EXAMPLES)/hello-c

# The http-tests/cache-tests suite (../shared/cache-tests, read-only) copied to build/ with its
# npm dependencies, for tests/conformance/test_cache_tests_suite.py (see docs/conformance.md).
SHARED      ?= ../shared
CACHE_TESTS := build/cache-tests

cache-tests: $(CACHE_TESTS)/.installed

$(CACHE_TESTS)/.installed: $(wildcard $(SHARED)/cache-tests/cache-tests/package.json)
	@command -v npm >/dev/null || { echo "npm not found: install Node.js and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	@test -f $(SHARED)/cache-tests/cache-tests/package.json || { echo "$(SHARED)/cache-tests not found" >&2; exit 1; }
	rm -rf $(CACHE_TESTS) && mkdir -p build && cp -r $(SHARED)/cache-tests $(CACHE_TESTS)
	cd $(CACHE_TESTS)/cache-tests && npm install --omit=dev --no-audit --no-fund --loglevel=error
	touch $@

test: install system filters functions cache-tests
	$(VPY) -m pytest -q

demo: install filters functions
	$(VENV)/bin/edgenode demo

clean:
	rm -rf $(VENV) filters/build $(CACHE_TESTS) $(FN_EXAMPLES)/build $(FN_TOOLCHAIN)/node_modules
