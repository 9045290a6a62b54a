# Two commands do everything on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install run test lint format lock clean

# Installs exactly the versions in requirements-dev.lock, each checked against its hash.
$(VENV)/.installed: requirements-dev.lock
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	touch $@

install: $(VENV)/.installed

## make run: sandbox + migrations + demo world + worker + beat + web on http://127.0.0.1:8000
run: install
	$(BIN)/python -m scripts.devrun

## make test: the whole suite (real worker processes, the moto sandbox server, a real browser)
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make lint: the gates CI runs before the suite
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python manage.py makemigrations --check --dry-run

## make lock: after editing requirements*.txt, pin every package (with hashes) again
LOCK := $(BIN)/uv pip compile --universal --generate-hashes --python-version 3.11 --quiet --custom-compile-command "make lock"
lock: install
	$(LOCK) requirements-dev.txt -o requirements-dev.lock
	$(LOCK) requirements.txt -c requirements-dev.lock -o requirements.lock

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var .pytest_cache
