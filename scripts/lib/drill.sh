# The common part of scripts/canary-drill.sh and scripts/delivery-drill.sh; sourced, not run,
# from the repository root with the drill's arguments: `source scripts/lib/drill.sh "$@"`.
#
# Checks the demo store and the tools, and sets: demo, store, model, refit, python, prom, work
# (a temporary folder, removed at exit) and pids (killed at exit). Defines port (a free loopback
# port), drill_versions (the champion and the newest other version), wait_for_model,
# start_prometheus and wait_for_prometheus.

demo="${1:-refit-demo}"
store="$demo/store"
model="credit-default"
refit=.venv/bin/refit
python=.venv/bin/python
[ -x "$refit" ] || { echo "run ./dev demo first (no .venv/bin/refit)" >&2; exit 2; }
[ -d "$store/models/$model" ] || { echo "no demo store at $store: run ./dev demo first" >&2; exit 2; }
prom="$(command -v prometheus || echo /usr/bin/prometheus)"
[ -x "$prom" ] || { echo "Prometheus is needed: apt-get install prometheus" >&2; exit 2; }

work="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Prints "CHAMPION OTHER": the live version and the newest one that is not the champion.
drill_versions() {
  "$python" - "$store" "$model" <<'PY'
import sys
from refit.registry import ModelRegistry
reg = ModelRegistry(sys.argv[1], sys.argv[2])
live = reg.get_alias("champion")
print(live, max(v for v in reg.list_version_numbers() if v != live))
PY
}

# Waits until the model server on port $1 answers, and saves its V2 model metadata (the inputs
# the drills' traffic is built from) to $work/model.json; shows the server's log if it does not.
wait_for_model() {
  "$python" - "http://127.0.0.1:$1" "$model" "$work/model.json" <<'PY' \
    || { tail -n 30 "$work/serve.log" >&2; return 1; }
import json, sys, time, urllib.request
base, name, out = sys.argv[1:4]
for _ in range(600):  # about 2 minutes: a busy machine imports the server slowly
    try:
        meta = json.load(urllib.request.urlopen(f"{base}/v2/models/{name}", timeout=5))
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit(f"the model server at {base} did not answer")
with open(out, "w") as f:
    json.dump(meta, f)
PY
}

# A real Prometheus on 127.0.0.1:$2 scraping the model server on 127.0.0.1:$1 every second.
start_prometheus() {
  cat > "$work/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: refit-serve-model
    static_configs: [{targets: ["127.0.0.1:$1"]}]
YML
  "$prom" --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/tsdb" \
    --web.listen-address "127.0.0.1:$2" > "$work/prometheus.log" 2>&1 &
  pids+=($!)
}

# Waits until Prometheus on port $1 is ready, then for a few scrapes of the champion's traffic
# (the canary is compared with it).
wait_for_prometheus() {
  for _ in $(seq 60); do
    "$python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$1/-/ready', timeout=1)" \
      > /dev/null 2>&1 && break
    sleep 0.5
  done
  sleep 5
}
