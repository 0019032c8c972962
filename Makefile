# Two commands: `make run` (set up + run the engine on SQLite and the simulated PBX) and `make test`.
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
SYSSTAMP  := var/.system-packages

.PHONY: run test bench setup system-packages clean-db

# The API docs' two large bundles (over 1 MiB each) are not in git: they are fetched, byte for byte the versions
# VENDORED.md names, from the npm registry at setup (callcenter/web/static/apidocs/, ignored by git).
APIDOCS   := callcenter/web/static/apidocs
$(APIDOCS)/swagger-ui-bundle.js $(APIDOCS)/redoc.standalone.js:
	tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent swagger-ui-dist@5.35.0 redoc@2.5.4 >/dev/null \
	  && tar -xzf swagger-ui-dist-5.35.0.tgz package/swagger-ui-bundle.js \
	  && tar -xzf redoc-2.5.4.tgz package/bundles/redoc.standalone.js) \
	  && cp $$tmp/package/swagger-ui-bundle.js $$tmp/package/bundles/redoc.standalone.js $(APIDOCS)/ && rm -rf $$tmp

# The agent screen's softphone (issue 18): JsSIP from the npm registry, at the versions below (its three
# dependencies pinned too), bundled for the browser by esbuild into one script (callcenter/web/static/softphone/,
# ignored by git; see VENDORED.md there).
SOFTPHONE := callcenter/web/static/softphone
JSSIP_PKGS := jssip@3.13.8 debug@4.4.3 ms@2.1.3 events@3.3.0 sdp-transform@2.15.0 esbuild@0.28.2
$(SOFTPHONE)/jssip.min.js:
	tmp=$$(mktemp -d) && (cd $$tmp && npm install --silent --no-audit --no-fund --no-save --prefix . $(JSSIP_PKGS) >/dev/null \
	  && ./node_modules/.bin/esbuild node_modules/jssip/lib/JsSIP.js --bundle --minify --format=iife \
	     --global-name=JsSIP --platform=browser --log-level=warning --outfile=jssip.min.js) \
	  && cp $$tmp/jssip.min.js $(SOFTPHONE)/ && cp $$tmp/node_modules/jssip/LICENSE.md $(SOFTPHONE)/LICENSE.jssip \
	  && rm -rf $$tmp

$(STAMP): pyproject.toml setup.py $(APIDOCS)/swagger-ui-bundle.js $(APIDOCS)/redoc.standalone.js $(SOFTPHONE)/jssip.min.js
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Debian packages the engine and its tests use: chromium (browser tests), espeak-ng + sox (IVR prompts).
system-packages: $(SYSSTAMP)
$(SYSSTAMP):
	@mkdir -p var
	@if ! command -v chromium >/dev/null || ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium espeak-ng sox fonts-wqy-microhei >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium espeak-ng sox fonts-wqy-microhei >/dev/null; fi; \
	fi
	touch $(SYSSTAMP)

run: $(STAMP)
	$(BIN)/callcenter run

# Two test workers (pytest-xdist; each its own PostgreSQL database): the machine has two cores and many tests
# wait on sockets, processes and the browser. `make test PYTEST_ARGS=tests/unit` runs a part in one process.
PYTEST_ARGS ?= -n 2

test: $(STAMP) system-packages
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/callcenter bench all

clean-db:
	rm -f var/callcenter.db var/callcenter.db-wal var/callcenter.db-shm var/bank.db var/bank.db-wal var/bank.db-shm
