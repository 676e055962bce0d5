# Every target sets up .venv on first use and reuses it afterwards.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BOOK_FLAGS := -W -n --keep-going

.PHONY: venv book test release grade bench lab clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

## make book: build the HTML book into _build/html (strict; executed notebooks are cached)
book: $(STAMP)
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)

## make test: the whole test suite (units, notebooks, release sync, lessons, strict book build)
## on two pytest-xdist workers beside the book build (a notebook's cells, the JupyterLab flow
## and one page's browser checks each stay on one worker: see tests/conftest.py)
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
## chapter's built page (the book is built first; its executed chapters are cached)
bench: book
	$(BIN)/python -m reglab.bench

## make lab: open JupyterLab on the course
lab: $(STAMP)
	$(BIN)/jupyter lab

clean:
	rm -rf _build
