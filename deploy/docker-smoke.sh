#!/usr/bin/env bash
# Smoke test of a built fastvlm-hybrid image: deploy/docker-smoke.sh IMAGE
#   docker build -t fastvlm-hybrid . && deploy/docker-smoke.sh fastvlm-hybrid
# Starts the image with a fresh named volume on /data, no API keys, no Gemini key and no local model, then checks:
# --help prints usage; the process runs as uid 10001; /data is writable; torch and the extras import; /healthz is
# 200; /readyz answers JSON (503: nothing can answer yet); / serves the UI; the vendored transformers.js and ONNX
# Runtime files are served; Docker's HEALTHCHECK turns healthy.
# Needs docker and curl. Environment:
#   SMOKE_PORT=18080       host port to use (the server is started with --port SMOKE_PORT)
#   SMOKE_NETWORK=host     use the host's network instead of publishing the port (daemons without a bridge)
#   SMOKE_TIMEOUT=180      seconds to wait for the server and for the health status
set -euo pipefail

IMAGE=${1:?usage: deploy/docker-smoke.sh IMAGE}
PORT=${SMOKE_PORT:-18080}
TIMEOUT=${SMOKE_TIMEOUT:-180}
NAME=fvh-smoke-$$
VOLUME=fvh-smoke-$$
BASE=http://127.0.0.1:$PORT
failures=0

ok() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
cleanup() {
  local rc=$?
  if { [ "$rc" -ne 0 ] || [ "$failures" -gt 0 ]; } && docker container inspect "$NAME" >/dev/null 2>&1; then
    echo "--- container log (last 40 lines)"
    docker logs --tail 40 "$NAME" 2>&1 || true
  fi
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  docker volume rm "$VOLUME" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# status URL: the HTTP status code (000 when nothing answers)
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$1" || true; }

# 1. Static facts about the image.
user=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
entry=$(docker image inspect -f '{{join .Config.Entrypoint " "}}' "$IMAGE")
health=$(docker image inspect -f '{{if .Config.Healthcheck}}{{join .Config.Healthcheck.Test " "}}{{end}}' "$IMAGE")
[ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ] && ok "image user is $user" || fail "image user is '${user:-root}'"
case "$entry" in
  "fastvlm-hybrid serve"*) ok "entry point: $entry" ;;
  *) fail "entry point is '$entry', expected fastvlm-hybrid serve ..." ;;
esac
[ -n "$health" ] && ok "image has a HEALTHCHECK" || fail "image has no HEALTHCHECK"

# 2. Arguments after the image name reach `fastvlm-hybrid serve`.
if help=$(docker run --rm "$IMAGE" --help 2>&1) && grep -q 'usage: fastvlm-hybrid serve' <<<"$help" \
    && grep -q -- '--port' <<<"$help"; then
  ok "docker run IMAGE --help prints serve's usage"
else
  fail "docker run IMAGE --help: $(head -3 <<<"$help")"
fi

# 3. Start the server.
docker volume create "$VOLUME" >/dev/null
if [ "${SMOKE_NETWORK:-}" = host ]; then net=(--network host); else net=(-p "127.0.0.1:$PORT:$PORT"); fi
docker run -d --name "$NAME" "${net[@]}" -v "$VOLUME:/data" "$IMAGE" --port "$PORT" >/dev/null
deadline=$((SECONDS + TIMEOUT))
until [ "$(status "$BASE/healthz")" = 200 ]; do
  if [ "$(docker inspect -f '{{.State.Running}}' "$NAME")" != true ]; then
    fail "container exited: $(docker inspect -f '{{.State.ExitCode}}' "$NAME")"; exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then fail "GET /healthz not 200 after ${TIMEOUT}s"; exit 1; fi
  sleep 2
done
ok "GET /healthz 200 (after ${SECONDS}s)"

uid=$(docker exec "$NAME" sh -c "awk '/^Uid:/ {print \$2}' /proc/1/status")
[ "$uid" = 10001 ] && ok "server process runs as uid $uid" || fail "server process runs as uid '$uid', expected 10001"
if docker exec "$NAME" sh -c 'touch /data/.smoke && rm /data/.smoke'; then ok "/data is writable"; else fail "/data is not writable"; fi

if versions=$(docker exec "$NAME" python -c 'import av, cv2, google.genai, torch, torchvision, transformers
print(f"torch {torch.__version__} (cuda {torch.version.cuda}), torchvision {torchvision.__version__}, "
      f"transformers {transformers.__version__}")' 2>&1); then
  ok "local, video and gemini extras import: $versions"
else
  fail "imports: $(tail -1 <<<"$versions")"
fi

# 4. Readiness: no model and no Gemini key, so 503 with each backend's state as JSON.
body_file=$(mktemp)
code=$(curl -s -o "$body_file" -w '%{http_code}' --max-time 30 "$BASE/readyz" || true)
body=$(cat "$body_file"); rm -f "$body_file"
if docker exec -i "$NAME" python -c 'import json, sys; d = json.load(sys.stdin); assert "ready" in d and "backends" in d' \
    <<<"$body" 2>/dev/null; then
  ok "GET /readyz $code with JSON: $(head -c 300 <<<"$body")"
  [ "$code" = 200 ] || [ "$code" = 503 ] || fail "GET /readyz status $code, expected 200 or 503"
else
  fail "GET /readyz $code, body not the expected JSON: $(head -c 300 <<<"$body")"
fi

# 5. The web UI and the files its in-browser inference loads.
if page=$(curl -sf --max-time 10 "$BASE/") && grep -qi '<html' <<<"$page"; then ok "GET / serves the UI page"; else fail "GET / does not serve the UI"; fi
for file in transformers.min.js ort-wasm-simd-threaded.jsep.mjs ort-wasm-simd-threaded.jsep.wasm; do
  code=$(status "$BASE/ui/vendor/$file")
  [ "$code" = 200 ] && ok "GET /ui/vendor/$file 200" || fail "GET /ui/vendor/$file $code"
done
if missing=$(docker exec "$NAME" python -c 'from fastvlm_gemini_hybrid.server.vendor_web import missing; print(missing())') \
    && [ "$missing" = "[]" ]; then
  ok "vendor_web.missing() is empty inside the image"
else
  fail "vendored files missing inside the image: $missing"
fi

# 6. Docker's own health status (the first probe runs one interval after the start).
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$NAME")" = healthy ]; do
  if [ "$SECONDS" -ge "$((deadline + 60))" ]; then
    fail "health status $(docker inspect -f '{{.State.Health.Status}} {{json .State.Health.Log}}' "$NAME")"
    break
  fi
  sleep 3
done
[ "$(docker inspect -f '{{.State.Health.Status}}' "$NAME")" = healthy ] && ok "docker health status: healthy"

if [ "$failures" -gt 0 ]; then echo "$failures check(s) failed"; exit 1; fi
echo "all checks passed"
