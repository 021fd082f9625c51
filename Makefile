# Two entry points (see README): `make book` and `make test`. Each sets up its own environment.
PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
# torch goes in first, so the requirements' lower bound is already met and pip never pulls a
# multi-GB CUDA build. Override on a GPU machine, e.g. `make book TORCH_SPEC=torch`.
TORCH_SPEC  ?= torch==2.13.0
MATHJAX_VER ?= 3.2.2
MATHJAX_DIR := _build/mathjax
# Run mode of the chapters during `make book`: quick (CPU settings) unless overridden.
BOOK_MODE   ?= quick
STAMP       := $(VENV)/.installed
# Notebooks nbval runs at once (pytest-xdist; each notebook stays in one kernel, in order).
NBVAL_WORKERS ?= 2

.PHONY: install book test lint format execute bench clean check-book colab colab-alone

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# MathJax is served from the book itself (no CDN): fetched once from the npm registry into
# _build/mathjax/mathjax/es5; _config.yml copies _build/mathjax into _build/html (html_extra_path),
# so every page loads _build/html/mathjax/es5/tex-mml-chtml.js through a relative path.
# The other combined bundles are never loaded and are dropped (components loaded on demand stay).
MATHJAX_UNUSED := tex-chtml.js tex-chtml-full.js tex-chtml-full-speech.js tex-svg.js \
                  tex-svg-full.js tex-mml-svg.js mml-chtml.js mml-svg.js node-main.js latest.js

$(MATHJAX_DIR)/mathjax/es5/tex-mml-chtml.js:
	rm -rf $(MATHJAX_DIR) && mkdir -p $(MATHJAX_DIR)/npm
	npm install --silent --no-audit --no-fund --prefix $(MATHJAX_DIR)/npm mathjax@$(MATHJAX_VER)
	mkdir -p $(MATHJAX_DIR)/mathjax
	cp -r $(MATHJAX_DIR)/npm/node_modules/mathjax/es5 $(MATHJAX_DIR)/mathjax/es5
	cd $(MATHJAX_DIR)/mathjax/es5 && rm -f $(MATHJAX_UNUSED)
	rm -rf $(MATHJAX_DIR)/npm

# Executes every chapter (quick mode unless BOOK_MODE=full) and fails on any warning.
book: $(STAMP) $(MATHJAX_DIR)/mathjax/es5/tex-mml-chtml.js colab
	rm -rf _build/html _build/.doctrees _build/.jupyter_cache _build/jupyter_execute
	LORA_THEORY_MODE=$(BOOK_MODE) $(BIN)/jupyter-book build . -W -n --keep-going

# Colab-ready copies of the chapters (MyST rendered as plain Markdown) in colab/book/; the
# launch buttons open them. tests/test_colab_copies.py fails when they are out of date.
colab:
	$(PYTHON) tools/colab.py

# A Colab-ready chapter alone in an empty folder, in a fresh venv, installing the package from a
# wheel built from this tree through its own install cell (needs the package index for torch).
colab-alone:
	PYTHON=$(PYTHON) TORCH_SPEC="$(TORCH_SPEC)" tools/colab_alone.sh $(CHAPTER)

# The built book in a real browser (headless Chromium, 1400 px and 420 px): fails on clipped
# display math, clipped code or output, raw TeX, missing images and broken in-page anchors.
# Needs `make book` first and a Chromium binary (Debian: apt-get install chromium).
check-book:
	test -d _build/html || { echo "check-book: run 'make book' first"; exit 1; }
	$(PYTHON) tools/check_book.py _build/html

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP) lint
	LORA_THEORY_MODE=quick $(BIN)/python -m pytest -q tests
	LORA_THEORY_MODE=quick $(BIN)/python -m pytest -q --nbval-lax -p no:randomly \
	  -n $(NBVAL_WORKERS) --dist loadscope book

# Re-execute every chapter in place (quick mode, CPU): refreshes the committed outputs.
execute: $(STAMP)
	for nb in book/*.ipynb; do \
	  (cd book && LORA_THEORY_MODE=quick ../$(BIN)/jupyter execute --inplace --timeout=600 \
	    "$$(basename $$nb)") || exit 1; done
	$(PYTHON) tools/colab.py

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python "$$b" || exit 1; done

clean:
	rm -rf _build
