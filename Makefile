# One set of commands, the same locally and in CI (.ci/run calls `make test`).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)

.PHONY: all deps system-deps test lint typecheck unit demo generate check-generated bench clean

all: test

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	# The runtime dependencies as wheels, for tests/package/test_wheel.py to install the built wheel offline.
	rm -rf $(VENV)/wheelhouse
	$(PY) -m pip download -q -d $(VENV)/wheelhouse -c constraints.txt $$($(PY) -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
	rm -f $(VENV)/.installed-*
	touch $@

deps: $(STAMP)

system-deps:
	./scripts/install-system-deps.sh

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/actionlint .github/workflows/*.yml

typecheck: deps
	$(VENV)/bin/mypy snat_exporter bench tests

# Regenerates everything that is generated from code (rules, dashboards, Kubernetes and Azure assets, docs tables)
# with the default mixin config: the same command a user runs with theirs.
generate: deps
	$(VENV)/bin/snat-exporter generate --out .

check-generated: generate
	git diff --exit-code -- README.md docs alerts deploy dashboards

unit: deps
	$(PY) -m pytest -q

test: system-deps deps lint typecheck
	$(PY) -m pytest -q

demo: deps
	$(VENV)/bin/snat-exporter demo

bench: deps
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
