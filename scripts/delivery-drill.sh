#!/usr/bin/env bash
# Shadow -> canary -> A/B on one machine, after `./dev demo`: the model server with a feedback
# file, a real Prometheus scraping it, a stream of requests with ids whose "conversions" are
# posted back as feedback events, and two rollouts of the newest non-champion version:
#   1. a shadow held to no score difference at all (max_score_shift 0, which two different
#      models never meet): the shadow stage stops it early, before any traffic moves;
#   2. usual ceilings: the shadow passes, a 20% canary step passes, and the A/B test on the
#      planted uplift (the challenger's units convert at 30% against 10%) promotes it.
# Everything stops when the script ends. The drill changes the demo's champion.
#
# Usage:  scripts/delivery-drill.sh [DEMO_DIR]   (default: refit-demo, as `./dev demo` writes it)
# Needs:  .venv (./dev demo made it) and Debian's prometheus (apt-get install prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/drill.sh
source scripts/lib/drill.sh "$@"

read -r champion challenger < <(drill_versions)
echo "champion: v$champion; challenger: v$challenger (the drill changes this store)"

serve_port="$(port)"; prom_port="$(port)"; feedback="$work/feedback.jsonl"
# feedback moves promotions: the server takes it only with a secret, which the load sends
export REFIT_FEEDBACK_TOKEN="drill-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
"$refit" serve-model --store "$store" --model "$model" --port "$serve_port" --seed 1 \
  --feedback-file "$feedback" > "$work/serve.log" 2>&1 &
pids+=($!)
start_prometheus "$serve_port" "$prom_port"

# Traffic: requests with ids built from the model's V2 metadata, varied inputs; each answer's
# unit "converts" at 10%, or 30% when the challenger served it, and is posted as feedback.
wait_for_model "$serve_port"
"$python" - "http://127.0.0.1:$serve_port" "$model" "$challenger" "$work/model.json" \
  > "$work/load.log" 2>&1 <<'PY' &
import json, os, random, sys, time, urllib.request
base, name, challenger = sys.argv[1], sys.argv[2], sys.argv[3]
with open(sys.argv[4]) as f:
    meta = json.load(f)
rng = random.Random(7)
def post(path, body):
    req = urllib.request.Request(f"{base}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json", "Authorization":
                                  "Bearer " + os.environ["REFIT_FEEDBACK_TOKEN"]})
    return json.load(urllib.request.urlopen(req, timeout=5))
unit = 0
while True:
    unit += 1
    inputs = [{"name": t["name"], "shape": [1], "datatype": t["datatype"],
               "data": [rng.choice(["north", "south", "east", "west"])
                        if t["datatype"] == "BYTES" else rng.gauss(0.5, 1.0)]}
              for t in meta["inputs"]]
    try:
        answer = post(f"/v2/models/{name}/infer", {"id": f"u{unit}", "inputs": inputs})
        rate = 0.30 if answer["model_version"] == challenger else 0.10
        post(f"/v2/models/{name}/feedback",
             {"id": answer["id"], "value": int(random.Random(answer["id"]).random() < rate)})
    except OSError:
        pass
    time.sleep(0.005)
PY
pids+=($!)

wait_for_prometheus "$prom_port"

plan() {  # $1: the shadow's max_score_shift
  cat <<JSON
{"steps": [20, 100], "interval_seconds": 6, "failures_allowed": 0, "deadline_seconds": 240,
 "prometheus_url": "http://127.0.0.1:$prom_port", "query_preset": "local",
 "checks": [
   {"name": "errors", "kind": "error_rate", "max_value": 0.05},
   {"name": "p99", "kind": "latency", "quantile": 0.99, "max_value": 1.0}],
 "shadow": {"analyses": 2, "min_pairs": 50, "max_disagreement": 0.5, "max_score_shift": $1,
            "max_latency_ratio": 5.0},
 "ab_test": {"metric": "proportion", "baseline_rate": 0.10, "mde": 0.10, "percent": 50,
             "method": "sequential", "on_inconclusive": "keep", "feedback_path": "$feedback"}}
JSON
}
options="{\"server_url\": \"http://127.0.0.1:$serve_port\"}"

echo; echo "== 1. a shadow held to no score difference: expect a stop before any traffic moves"
plan 0 > "$work/strict.json"
"$refit" rollout "$challenger" --store "$store" --model "$model" --plan "$work/strict.json" \
  --options "$options" || echo "(exit $?: stopped by the shadow stage)"

echo; echo "== 2. shadow -> 20% canary -> A/B on the planted uplift: expect promotion"
plan 1.0 > "$work/plan.json"
"$refit" rollout "$challenger" --store "$store" --model "$model" --plan "$work/plan.json" \
  --options "$options"
echo; echo "The audit log has every stage, check and the A/B result: $store/models/$model/audit.jsonl"
