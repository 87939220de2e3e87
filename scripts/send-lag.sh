#!/bin/bash
# Send lag at 25/50/75% of the generator's own closed-loop capacity against a
# bare server (`serve baseline`) on CPU 1, the generator on CPU 0 (issue 14's
# pacing benchmark). Needs a release build: cargo build --release.
# Prints, per rate, the send lag and its two parts (connection wait, the
# generator's own lag) in µs, and latency p50 against service time p50.
set -e
H=${HOSTLAB:-target/release/hostlab}
out=$(mktemp -d)
taskset -c 1 $H serve baseline --listen 127.0.0.1:0 > $out/ready 2>$out/err &
srv=$!
trap 'kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf $out' EXIT
for i in $(seq 50); do grep -q 'hostlab ready' $out/ready 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*url=\([^ ]*\).*/\1/p' $out/ready)/ping
$H load $url -c 64 -d 5s --warmup 1s --cpus 0 --no-progress --json $out/closed.json > /dev/null
cap=$(python3 -c "import json;print(json.load(open('$out/closed.json'))['requests_per_sec'])")
echo "closed loop: $cap req/s"
for f in 0.25 0.5 0.75; do
  rate=$(python3 -c "print(int($cap*$f))")
  $H load $url -r $rate -c 256 -d 5s --warmup 1s --cpus 0 --no-progress --json $out/r$f.json > /dev/null
  python3 - $out/r$f.json $f $rate <<'PY'
import json,sys
j=json.load(open(sys.argv[1]))
g=lambda k: j.get(k) or {}
lat=j.get('latency_us') or j.get('latency') or {}
print(f"{float(sys.argv[2])*100:.0f}% ({sys.argv[3]} req/s): achieved {j['requests_per_sec']:.0f}; send_lag_us {g('send_lag_us')}; connection_wait {g('connection_wait_us')}; generator_lag {g('generator_lag_us')}; latency p50 {lat.get('p50')}; service p50 {(j.get('service_time_us') or {}).get('p50')}; gen cpu us/req {j['generator'].get('cpu_us_per_request')}")
PY
done
