# Two commands: `make run` (set up + run the engine on SQLite and the simulated PBX) and `make test`.
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
SYSSTAMP  := var/.system-packages

.PHONY: run test bench setup system-packages clean-db

$(STAMP): pyproject.toml setup.py
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

test: $(STAMP) system-packages
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/callcenter bench all

clean-db:
	rm -f var/callcenter.db var/callcenter.db-wal var/callcenter.db-shm var/bank.db var/bank.db-wal var/bank.db-shm
