# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install migrate lint bench package e2e-deps e2e demo clean fuzz

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/qabot db upgrade

run: migrate
	$(BIN)/qabot serve

test: install e2e-deps
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The hostile-input fuzz test at 20,000 requests per database (make test runs 2,000);
# set TEST_DATABASE_URL for the PostgreSQL half.
fuzz: install
	QABOT_FUZZ_EXAMPLES=20000 $(BIN)/python -m pytest -q tests/test_fuzz.py $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check bot cards flows store scheduler qa qabot reports bench scripts tests

clean:
	rm -rf $(VENV) *.egg-info

# The Teams app zip (dist/qabot-teams-app.zip); needs MicrosoftAppId, QABOT_PUBLIC_HOSTNAME,
# QABOT_DEVELOPER_URL, QABOT_PRIVACY_URL and QABOT_TERMS_URL (see docs/deploy.md).
package: install
	$(BIN)/python scripts/package.py

# Every benchmark (about 10 minutes); writes bench/RESULTS.md. See bench/README.md.
bench: install
	$(BIN)/python -m bench.run

e2e-deps:
	bash scripts/e2e-deps.sh

# A sample council in the Agents Playground on a fresh database (see the README's quick
# start). Offline once `make e2e-deps` has run; says what to install when node is missing.
DEMO_PORT ?= 3978
DEMO_UI_PORT ?= 56150
demo: install
	$(BIN)/python scripts/demo.py --port $(DEMO_PORT) --ui-port $(DEMO_UI_PORT)

e2e: install e2e-deps
	$(BIN)/python -m pytest -q -m e2e $(PYTEST_ARGS)
