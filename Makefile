# Every target creates .venv and installs the project (editable) when it is missing.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: train test test-slow lint install clean gpu-check

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --upgrade-strategy only-if-needed -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(PY) -m neuroenc $(ARGS)

# python -m neuroenc.bench gpu (docs/speed.md, "One command on a lent GPU"): <= 8 minutes on an H200.
# On a machine whose python3 already holds the packages (a lent GPU, offline), `make gpu-check PY=python3`
# runs it with that Python, without making .venv.
gpu-check: $(if $(filter $(PY),.venv/bin/python),$(STAMP))
	$(PY) -m neuroenc.bench gpu $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check neuroenc tests
	$(PY) -m mypy

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

clean:
	rm -rf outputs multirun lightning_logs wandb .cache
