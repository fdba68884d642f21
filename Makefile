# The two commands the README leads with. Each sets itself up on a fresh machine:
# it creates .venv/ when missing and installs requirements.txt into it.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: quickstart test

# uv installs the same pins as pip in about a third of the time (torch's CUDA wheels are ~3 GB to
# unpack); pip takes over when uv cannot (no PyPI, only a pip-configured mirror). --compile-bytecode
# as pip does: without .pyc files every test subprocess spends 2 s more importing torch.
$(STAMP): requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	( $(PY) -m pip install --quiet uv==0.13.9 \
		&& $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements.txt ) \
		|| $(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

quickstart: $(STAMP)
	$(PY) scripts/quickstart.py

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -n 2 --dist loadgroup --durations=15
