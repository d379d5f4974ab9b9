# Two set-up commands: `make demo` (mine the bundled sample with the offline model) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1

.PHONY: demo test venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: the local CPU wheel. An unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/hardneg mine examples/scifact-sample --model minilm --workdir demo-run/.cache --out demo-run/mined
	$(BIN)/hardneg export demo-run/mined --format colbert --out demo-run/colbert
	@head -n 3 demo-run/colbert/triples.train.colbert.jsonl
	@echo "an example training row, as text (query -> positive -> negative):"
	@$(BIN)/hardneg export demo-run/mined --format triplets --no-shuffle --out - | head -n 1 | \
		$(BIN)/python -c "import json,sys; r=json.loads(sys.stdin.readline()); print('\n'.join(f'  {k}: {r[k][:100]}' for k in ('query','positive','negative')))"
	@echo "next: $(BIN)/hardneg report demo-run/mined   (HTML report: scores, ranks, filters, a sample)"

# Lint, types, then every test (a bare `pytest` skips the `slow` ones: kill/resume, subprocess runs).
test: $(STAMP)
	$(BIN)/ruff check hardneg tests scripts
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q -m "slow or not slow"

clean:
	rm -rf demo-run .pytest_cache
