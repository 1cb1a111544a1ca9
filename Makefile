# Two commands do everything on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,local,gemini,server,video,medical,browser
# Browser tests run when chromium is installed (CI installs it: .ci/install-browser.sh); slow ones need make test-all.
PYTEST_ARGS ?= -m "not slow"

.PHONY: install run ask test test-all lint bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[$(EXTRAS)]'
	# MLX runs on Linux's CPU build too, so its tests run everywhere. mlx-vlm (and the OCR and face
	# detector packages) pull in the GUI build of OpenCV; put the headless build back so the stack stays headless.
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[mlx]'
	bash scripts/headless-opencv.sh $(PY)
	touch $@

install: $(VENV)/.installed

# The service and its web UI on http://127.0.0.1:8080. The local model is pulled first (once, with a
# progress bar; offline, the server still starts and /readyz says what is missing); with GEMINI_API_KEY
# set, auto mode can also answer from Gemini. `make ask` answers about the bundled sample image instead.
run: install
	bash scripts/vendor-web.sh || echo "in-browser inference unavailable (npm missing); the server API still works"
	-$(VENV)/bin/fastvlm-hybrid models pull $${FASTVLM_HYBRID_LOCAL_MODEL:-fastvlm-0.5b}
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
