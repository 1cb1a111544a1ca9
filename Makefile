# Two commands do everything on a fresh machine:  `make run`  and  `make test`  (without make: README.md).
# The package needs Python >= 3.10: the first of these that has it, preferring 3.10-3.12 (the privacy gate's
# OCR package has no 3.13 build yet); `make PYTHON=/path/to/python3.x` chooses by hand.
PYTHON_CANDIDATES ?= python3 python3.12 python3.11 python3.10 python3.13 python3.14
ifndef PYTHON
PYTHON := $(or $(shell for below in '< 0x030D0000' ''; do for p in $(PYTHON_CANDIDATES); do \
  $$p -c "import sys; sys.exit(not 0x030A0000 <= sys.hexversion $$below)" >/dev/null 2>&1 && echo $$p && exit; \
  done; done),python3)
endif
PYTHON_HINT := install one (macOS: brew install python@3.12, or python.org; Debian/Ubuntu: apt-get install \
  python3.11 python3.11-venv) and run make again, or make PYTHON=/path/to/python3.x
VENV ?= .venv
PY := $(VENV)/bin/python
# What that Python runs on, as pyproject.toml's and constraints.txt's markers see it (darwin-arm64, linux-x86_64...).
PY_PLATFORM := $(shell $(PYTHON) -c "import sys; import platform; print(sys.platform + '-' + platform.machine())" 2>/dev/null)
ifeq ($(PY_PLATFORM),darwin-x86_64)
# Intel Macs: PyTorch's last macOS x86_64 build is 2.2 (the `local` extra needs >= 2.4) and MLX has none, so
# the local side there is an OpenAI-compatible server (FASTVLM_HYBRID_OPENAI_BASE_URL: Ollama, llama.cpp...).
EXTRAS ?= dev,gemini,server,video,medical,browser
else
EXTRAS ?= dev,local,gemini,server,video,medical,browser
endif
# Browser tests run when chromium is installed (CI installs it: .ci/install-browser.sh); slow ones need make test-all.
PYTEST_ARGS ?= -m "not slow"

.PHONY: install run ask test test-all lint bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c "import sys; sys.exit(sys.hexversion < 0x030A0000)" >/dev/null 2>&1 || { echo "fastvlm-gemini-hybrid \
	needs Python >= 3.10 ($(PYTHON): $$($(PYTHON) -c "import sys; print(sys.version.split()[0])" 2>/dev/null || echo not found)): $(PYTHON_HINT)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[$(EXTRAS)]'
	# MLX: Apple Silicon's backend (`auto` serves and pulls it there); Linux's CPU build too, so its tests run
	# there (CI). Intel Macs and Windows have no MLX build: skipped. Outside CI a failed MLX install (glibc < 2.35,
	# aarch64 without a C compiler for miniaudio) only warns: `auto` then uses PyTorch. mlx-vlm (and the OCR and
	# face detector packages) pull in the GUI build of OpenCV; put the headless build back so the stack stays headless.
ifneq ($(filter darwin-arm64 linux-%,$(PY_PLATFORM)),)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[mlx]' || { [ -z "$$CI" ] && \
	echo "warning: the mlx extra did not install (see above); the MLX backend and its tests are skipped" >&2; }
endif
	bash scripts/headless-opencv.sh $(PY)
	touch $@

install: $(VENV)/.installed

# The service and its web UI on http://127.0.0.1:8080. The local model is pulled first (once, with a
# progress bar; offline, the server still starts and /readyz says what is missing); with GEMINI_API_KEY
# set, auto mode can also answer from Gemini. `make ask` answers about the bundled sample image instead.
run: install
	bash scripts/vendor-web.sh || echo "in-browser inference unavailable (npm missing); the server API still works"
ifeq ($(PY_PLATFORM),darwin-x86_64)
	@echo "Intel Mac: no local model build here; set FASTVLM_HYBRID_OPENAI_BASE_URL (Ollama, llama.cpp...) or GEMINI_API_KEY" >&2
else
	-$(VENV)/bin/fastvlm-hybrid models pull $${FASTVLM_HYBRID_LOCAL_MODEL:-fastvlm-0.5b}
endif
	$(VENV)/bin/fastvlm-hybrid serve --host 127.0.0.1 --port $${PORT:-8080}

ask: install
	$(VENV)/bin/fastvlm-hybrid ask "Describe this image in two sentences." -a src/fastvlm_gemini_hybrid/assets/sample.jpg

test: install lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-all: install lint
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks examples

bench: install
	$(PY) benchmarks/router_bench.py
	$(PY) benchmarks/processor_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info src/*.egg-info
