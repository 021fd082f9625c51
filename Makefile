# Two entry points (see README): `make book` and `make test`. Each sets up its own environment.
PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
# torch goes in first, so the requirements' lower bound is already met and pip never pulls a
# multi-GB CUDA build. Override on a GPU machine, e.g. `make book TORCH_SPEC=torch`.
TORCH_SPEC  ?= torch==2.13.0
MATHJAX_VER ?= 3.2.2
MATHJAX_DIR := _build/mathjax
STAMP       := $(VENV)/.installed

.PHONY: install book test lint format execute bench clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# MathJax is served from the book itself (no CDN): fetched once from the npm registry.
$(MATHJAX_DIR)/mathjax/es5/tex-mml-chtml.js:
	rm -rf $(MATHJAX_DIR) && mkdir -p $(MATHJAX_DIR)/npm
	npm install --silent --no-audit --no-fund --prefix $(MATHJAX_DIR)/npm mathjax@$(MATHJAX_VER)
	mkdir -p $(MATHJAX_DIR)/mathjax
	cp -r $(MATHJAX_DIR)/npm/node_modules/mathjax/es5 $(MATHJAX_DIR)/mathjax/es5
	rm -rf $(MATHJAX_DIR)/npm

book: $(STAMP) $(MATHJAX_DIR)/mathjax/es5/tex-mml-chtml.js
	rm -rf _build/html _build/.jupyter_cache
	$(BIN)/jupyter-book build . -W -n --keep-going

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP) lint
	LORA_THEORY_MODE=quick $(BIN)/python -m pytest -q tests
	LORA_THEORY_MODE=quick $(BIN)/python -m pytest -q --nbval-lax -p no:randomly book

# Re-execute every chapter in place (quick mode, CPU): refreshes the committed outputs.
execute: $(STAMP)
	for nb in book/*.ipynb; do \
	  LORA_THEORY_MODE=quick $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=600 "$$nb" || exit 1; done

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python "$$b" || exit 1; done

clean:
	rm -rf _build
