#!/usr/bin/env bash
# A canary drill on one machine, after `./dev demo`: the model server, a real Prometheus, traffic,
# and two rollouts of the same version: one with injected errors (rolled back), one healthy
# (promoted). Everything stops when the script ends.
#
# Usage:  scripts/canary-drill.sh [DEMO_DIR]     (default: refit-demo, as `./dev demo` writes it)
# Needs:  .venv (./dev demo made it) and Debian's prometheus (apt-get install prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/drill.sh
source scripts/lib/drill.sh "$@"

# The version to roll out: the newest one that is not the champion.
read -r champion canary < <(drill_versions)
echo "champion: v$champion; canary under test: v$canary (the drill changes this store)"

serve_port="$(port)"; prom_port="$(port)"
"$refit" serve-model --store "$store" --model "$model" --port "$serve_port" --seed 1 \
  --fault "$canary:error_rate=0.3" > "$work/serve.log" 2>&1 &
pids+=($!)
start_prometheus "$serve_port" "$prom_port"

# Traffic: one request every 10 ms, built from the model's own V2 metadata.
wait_for_model "$serve_port"
"$python" - "http://127.0.0.1:$serve_port" "$model" "$work/model.json" \
  > "$work/load.log" 2>&1 <<'EOF' &
import json, sys, time, urllib.request
base, name = sys.argv[1], sys.argv[2]
with open(sys.argv[3]) as f:
    meta = json.load(f)
body = json.dumps({"inputs": [
    {"name": t["name"], "shape": [1], "datatype": t["datatype"],
     "data": ["north" if t["datatype"] == "BYTES" else 0.5]} for t in meta["inputs"]
]}).encode()
while True:
    req = urllib.request.Request(f"{base}/v2/models/{name}/infer", body,
                                 {"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=5).read()
    except OSError:  # 5xx from the faulty canary, or the server restarting
        pass
    time.sleep(0.01)
EOF
pids+=($!)

wait_for_prometheus "$prom_port"

plan="$work/plan.json"
cat > "$plan" <<EOF
{"steps": [20, 50, 100], "interval_seconds": 8, "failures_allowed": 0, "deadline_seconds": 120,
 "prometheus_url": "http://127.0.0.1:$prom_port", "query_preset": "local",
 "checks": [
   {"name": "errors", "kind": "error_rate", "max_value": 0.05, "max_increase": 0.02},
   {"name": "p99", "kind": "latency", "quantile": 0.99, "max_value": 1.0},
   {"name": "errors-sprt", "kind": "sequential_error_rate", "min_requests": 30}]}
EOF
options="{\"server_url\": \"http://127.0.0.1:$serve_port\"}"

echo; echo "== 1. v$canary with 30% injected errors: expect a rollback at the first analysis"
"$refit" rollout "$canary" --store "$store" --model "$model" --plan "$plan" --options "$options" \
  || echo "(exit $?: rolled back)"

echo "== 2. the same version, healthy: restart the server without the fault, expect promotion"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
"$refit" serve-model --store "$store" --model "$model" --port "$serve_port" --seed 1 \
  > "$work/serve2.log" 2>&1 &
pids[0]=$!
sleep 6
"$refit" rollout "$canary" --store "$store" --model "$model" --plan "$plan" --options "$options"
echo; echo "The audit log has every step and check: $store/models/$model/audit.jsonl"
