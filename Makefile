# Transformers from Scratch. `make book` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Test workers: one per core, at most four (each holds a PyTorch and a Jupyter kernel or two).
JOBS   ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: help book test lab exercises grade bench lint clean

help:
	@echo "make book       build the book into _build/html (sets up $(VENV) first)"
	@echo "make test       run the whole test suite, book build and grading included"
	@echo "make lab        JupyterLab on your copies of the exercises (workspace/)"
	@echo "make exercises  rebuild exercises/source and exercises/release from the templates"
	@echo "make grade SUBMISSIONS=path/ ASSIGNMENT=01_tokenization   grade a class"
	@echo "make bench      run the benchmarks"

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo
	@echo "The book is ready: open _build/html/index.html in a browser."

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(JOBS)

# Learners work on copies in $(WORKSPACE) (never overwritten), so updates to the course and
# their own answers do not collide. The folder is an option (`jupyter lab workspace` would be
# read as JupyterLab's `workspace` sub-command). LAB_ARGS passes more options to JupyterLab.
# As root (a container, a cloud notebook) JupyterLab refuses to start without --allow-root.
WORKSPACE ?= workspace
LAB_ARGS  ?=
lab: $(STAMP)
	@mkdir -p "$(WORKSPACE)"
	@for nb in exercises/release/*/*.ipynb; do cp -n "$$nb" "$(WORKSPACE)/"; done
	$(VENV)/bin/jupyter lab --notebook-dir="$(WORKSPACE)" \
		$$( [ $$(id -u) -eq 0 ] && echo --allow-root ) $(LAB_ARGS)

exercises: $(STAMP)
	$(PY) -m course build-exercises

grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" -a -n "$(ASSIGNMENT)" || \
		{ echo "usage: make grade SUBMISSIONS=folder-or-zip ASSIGNMENT=01_tokenization"; exit 2; }
	$(PY) -m course grade "$(SUBMISSIONS)" --assignment "$(ASSIGNMENT)"

bench: $(STAMP)
	$(PY) -m course bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf _build
