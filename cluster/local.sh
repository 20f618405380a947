#!/usr/bin/env bash
# Tiny end-to-end run on CPU through the cluster path: a private Ray head on 127.0.0.1 with
# token auth, every stage sent with `rayswap submit`, outputs on local disk. A few minutes
# on a laptop. Stops only the head it started (never `ray stop`, which stops every Ray).
#
#   bash cluster/local.sh [WORKDIR]          # needs: pip install -e '.[cluster]'
#
# The same commands work against a real cluster: point RAY_API_SERVER_ADDRESS at its Jobs
# API (a tunnel or port-forward to 8265) and use s3:// URIs instead of local paths.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(realpath -m "${1:-$(mktemp -d /tmp/rayswap-local-XXXXXX)}")
mkdir -p "$WORK"
# Every port of this head is chosen here (BASE..BASE+8), so it runs beside any other Ray
# on the machine; keep BASE outside Ray's worker port range 10002-19999.
BASE=${RAYSWAP_PORT_BASE:-46390}
GCS_PORT=$BASE
DASHBOARD_PORT=$((BASE + 1))
export RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_MODE=token
export RAY_API_SERVER_ADDRESS="http://127.0.0.1:${DASHBOARD_PORT}"
[ -n "${RAY_AUTH_TOKEN:-}" ] || ray get-auth-token --generate >/dev/null  # ~/.ray/auth_token

echo "local: [1/6] head on 127.0.0.1 (GCS :${GCS_PORT}, Jobs API :${DASHBOARD_PORT}), logs in ${WORK}"
setsid ray start --head --block --num-cpus=4 --port="${GCS_PORT}" \
    --dashboard-host=127.0.0.1 --dashboard-port="${DASHBOARD_PORT}" \
    --ray-client-server-port=$((BASE + 2)) --dashboard-agent-listen-port=$((BASE + 3)) \
    --dashboard-agent-grpc-port=$((BASE + 4)) --runtime-env-agent-port=$((BASE + 5)) \
    --metrics-export-port=$((BASE + 6)) --node-manager-port=$((BASE + 7)) \
    --object-manager-port=$((BASE + 8)) \
    --temp-dir="${WORK}/ray" --disable-usage-stats >"${WORK}/head.log" 2>&1 &
HEAD_PID=$!
stop_head() { kill -TERM -- "-${HEAD_PID}" 2>/dev/null || true; wait "${HEAD_PID}" 2>/dev/null || true; }
trap stop_head EXIT
for _ in $(seq 120); do rayswap jobs >/dev/null 2>&1 && break; sleep 1; done
rayswap jobs >/dev/null

echo "local: [2/6] sample clips"
python -c "from ops.samples import make_sample_clips; make_sample_clips('${WORK}/clips', frames=48, size=256)"

echo "local: [3/6] extract a and b"
for id in a b; do
    rayswap submit -- extract "${WORK}/clips/sample_${id}.mp4" --out "${WORK}/extract" \
        --identity "${id}" --size 128 --workers 2
done

echo "local: [4/6] train (2 DDP workers on CPU)"
rayswap submit -- train --a "${WORK}/extract/faces/a" --b "${WORK}/extract/faces/b" \
    --out "${WORK}/train" --workers 2 --resolution 64 --batch-size 8 --steps 40 \
    --save-every 20 --model original --width 16 --latent-dim 128

echo "local: [5/6] render a2b"
rayswap submit -- render "${WORK}/train" "${WORK}/clips/sample_a.mp4" --out "${WORK}/render" \
    --direction a2b --workers 1

echo "local: [6/6] jobs and results"
rayswap jobs
ls -l "${WORK}/render"
