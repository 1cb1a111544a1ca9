# fastvlm-hybrid server: multi-stage, CPU-only PyTorch, runs as uid 10001, home (models, cache, audit) in /data.
#   docker build -t fastvlm-hybrid .
#   docker run -p 127.0.0.1:8080:8080 -e FASTVLM_HYBRID_API_KEYS=change-me -v fvh:/data fastvlm-hybrid
# Build arguments, for mirrors and air-gapped registries (docs/server.md, "Docker"): PYTHON_IMAGE, NODE_IMAGE,
# TORCH_INDEX_URL. Smoke test of a built image: deploy/docker-smoke.sh IMAGE.
ARG PYTHON_IMAGE=python:3.11-slim
ARG NODE_IMAGE=node:20-slim

# The web UI's in-browser inference files (transformers.js, ONNX Runtime's wasm). onnxruntime-node's install
# script would download native binaries the browser never uses, hence --ignore-scripts.
FROM ${NODE_IMAGE} AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first and from the CPU index (PyPI's Linux wheels carry gigabytes of CUDA libraries). The pins it writes
# keep the install below from replacing these builds with PyPI's.
RUN pip install --index-url "$TORCH_INDEX_URL" "torch>=2.4,<3" "torchvision>=0.19" \
 && pip freeze | grep -iE '^(torch|torchvision)==' > /src/torch-pins.txt
# Only the dist folder of node_modules; vendor_web copies the three files the page loads into the installed package.
COPY --from=web /web/node_modules/@huggingface/transformers/dist /tmp/web/@huggingface/transformers/dist
COPY pyproject.toml README.md ./
COPY src ./src
COPY scripts/headless-opencv.sh /tmp/
RUN pip install -c /src/torch-pins.txt ".[local,gemini,server,video]" \
 && bash /tmp/headless-opencv.sh python \
 && python -c "import cv2, rapidocr_onnxruntime" \
 && python -m fastvlm_gemini_hybrid.server.vendor_web /tmp/web

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 app && mkdir /data && chown app /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH FASTVLM_HYBRID_HOME=/data HF_HOME=/data/huggingface PYTHONUNBUFFERED=1
USER app
EXPOSE 8080
# Probes the port the server was given: `docker run IMAGE --port 9000` appends to the entry point's arguments
# (the last --port wins), so the probe reads them from /proc/1/cmdline (also right under `docker run --init`).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request as u; a = open('/proc/1/cmdline').read().replace('--port=', '--port\0').split('\0'); p = [v for k, v in zip(a, a[1:]) if k == '--port'] or ['8080']; u.urlopen(f'http://127.0.0.1:{p[-1]}/healthz', timeout=4)"
# 0.0.0.0 inside the container only; publish the port deliberately, and set API keys.
ENTRYPOINT ["fastvlm-hybrid", "serve", "--host", "0.0.0.0", "--port", "8080"]
