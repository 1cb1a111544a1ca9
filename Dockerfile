# fastvlm-hybrid server: multi-stage, CPU torch, non-root. Build: docker build -t fastvlm-hybrid .
# Run:   docker run -p 8080:8080 -e FASTVLM_HYBRID_API_KEYS=change-me -v fvh:/data fastvlm-hybrid
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.4,<3" "torchvision>=0.19"
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[local,gemini,server,video]"

FROM node:20-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 app && mkdir /data && chown app /data
COPY --from=build /opt/venv /opt/venv
COPY --from=web /web/node_modules /tmp/node_modules
RUN /opt/venv/bin/python -m fastvlm_gemini_hybrid.server.vendor_web /tmp/node_modules && rm -rf /tmp/node_modules
ENV PATH=/opt/venv/bin:$PATH FASTVLM_HYBRID_HOME=/data PYTHONUNBUFFERED=1
USER app
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"
# 0.0.0.0 inside the container only; publish the port deliberately, and set API keys.
ENTRYPOINT ["fastvlm-hybrid", "serve", "--host", "0.0.0.0", "--port", "8080"]
