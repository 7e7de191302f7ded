# Two commands matter: `make run` (the product on SQLite with the demo data) and `make test`.
# Everything is installed into .venv from this repository's own requirement files.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run demo-reset test lint format setup setup-dev chromium dovecot clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

# A development checkout gets a local .env (DEBUG on) so manage.py works without exporting
# anything; production sets its own environment and has no .env.
.env:
	cp .env.example .env

setup: $(VENV)/.runtime .env

setup-dev: $(VENV)/.dev .env

# Development settings: DEBUG on, SQLite in the project folder unless DATABASE_URL says otherwise.
# The demo data goes into an empty CRM only: a second run keeps everything the user changed.
run: export DEBUG ?= true
run: setup
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py crm_load_demo
	$(BIN)/python manage.py crm_recompute_scores
	$(BIN)/python manage.py crm_create_admin
	@echo "The back office is at http://$(HOST):$(PORT)/admin/"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# Deletes every CRM record (users stay) and loads the demo data again, after asking.
demo-reset: export DEBUG ?= true
demo-reset: setup
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py crm_load_demo --reset
	$(BIN)/python manage.py crm_recompute_scores

# Browser tests need Debian's Chromium; install it when missing and we are allowed to.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Chromium for the browser tests (apt-get install chromium)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "Chromium is missing: run 'sudo apt-get install chromium' or the browser tests are skipped"; \
		fi; \
	fi

# The inbound email tests read a real IMAP server: Debian's dovecot, started by a fixture in a temporary folder.
dovecot:
	@if ! command -v dovecot >/dev/null && [ ! -x /usr/sbin/dovecot ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing dovecot for the IMAP tests (apt-get install dovecot-imapd)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null; \
		else \
			echo "dovecot is missing: run 'sudo apt-get install dovecot-imapd' or the IMAP tests are skipped"; \
		fi; \
	fi

test: setup-dev chromium dovecot
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=true $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

format: setup-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
