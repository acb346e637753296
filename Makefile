# Every target creates .venv and installs the project (editable) when it is missing.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: train test test-slow lint install clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --upgrade-strategy only-if-needed -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(PY) -m neuroenc $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check neuroenc tests
	$(PY) -m mypy

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

clean:
	rm -rf outputs multirun lightning_logs wandb .cache
