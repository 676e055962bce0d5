# Every target sets up .venv on first use and reuses it afterwards.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NBG := .venv-nbgrader
NBG_STAMP := $(NBG)/.installed
NBG_PINS = $(shell grep -E '^(numpy|matplotlib|tensorflow-cpu|keras)==' requirements.txt)
BOOK_FLAGS := -W -n --keep-going

.PHONY: venv book test release grade bench nbgrader-venv lab clean

venv: $(STAMP)

# uv installs the pinned requirements in about 25 s on 2 cores, where pip took about 80 s
# (it downloads and unpacks in parallel); it is itself pinned and installed by pip. Unlike
# pip, uv compiles no bytecode unless asked: with PYTHONDONTWRITEBYTECODE set (as on the CI
# machine) every process then compiled TensorFlow from source, 14 s of CPU per import
# instead of 8.
UV_VERSION := 0.13.9
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/python -m uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.txt
	touch $(STAMP)

## make book: build the HTML book into _build/html (strict; executed notebooks are cached,
## and the chapters missing from the cache are executed two at a time first: reglab.book_cache)
book: $(STAMP)
	$(BIN)/python -m reglab.book_cache .
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)

## make test: the whole test suite (units, notebooks, release sync, lessons, strict book build)
## on two pytest-xdist workers beside the book build (a test module, a notebook's cells and
## one page's browser checks each stay on one worker: see work_unit in tests/conftest.py)
TEST_FLAGS := -n 2
test: $(STAMP)
	$(BIN)/python -m pytest $(TEST_FLAGS)

## make release: regenerate exercises/ from solutions/
release: $(STAMP)
	$(BIN)/reglab release

## make grade SOURCE=solutions/01-overfitting.ipynb SUBMISSIONS=submissions/ OUT=grades/
grade: $(STAMP)
	$(BIN)/reglab grade $(SOURCE) $(SUBMISSIONS) --out $(OUT)

## make bench: time each chapter and exercise solution against its budget, and weigh each
## chapter's built page (the book is built first; its executed chapters are cached); then
## grade a generated class of every exercise with 1 and 2 workers, and the same submissions
## of exercises 01 and 04 with real nbgrader (.venv-nbgrader) beside ours
## (BENCH_PER_KIND=4: submissions per kind right/wrong/blank/unreadable; 2 for TensorFlow ones)
BENCH_PER_KIND ?= 4
bench: book $(NBG_STAMP)
	$(BIN)/python -m reglab.bench all . $(BENCH_PER_KIND)

## make nbgrader-venv: real nbgrader 0.9.6 in its own venv (its pins conflict with ours), with
## the course's computing stack at our pins and reglab (its kernels import reglab)
nbgrader-venv: $(NBG_STAMP)

$(NBG_STAMP): requirements.txt pyproject.toml
	test -x $(NBG)/bin/python || $(PYTHON) -m venv $(NBG)
	$(NBG)/bin/python -m pip install --quiet --upgrade pip
	$(NBG)/bin/python -m pip install --quiet nbgrader==0.9.6 $(NBG_PINS) -e .
	$(NBG)/bin/python -m ipykernel install --sys-prefix --name python3
	touch $(NBG_STAMP)

## make lab: open JupyterLab on the course
lab: $(STAMP)
	$(BIN)/jupyter lab

clean:
	rm -rf _build
