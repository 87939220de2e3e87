#!/bin/bash
# Send lag at 25/50/75% of the generator's own closed-loop capacity against a
# bare server (`serve baseline`) on CPU 1, the generator on CPU 0 (issue 14's
# pacing benchmark). Needs a release build: cargo build --release.
#
#   scripts/send-lag.sh [REPEATS]     (default 5 runs per rate)
#
# Prints, per run, the send lag p99 and its two parts (connection wait, the
# generator's own lag), latency p50 against service time p50, and the
# generator's run-queue wait (time other tasks held its CPU while it could
# have run; at these rates it never idles, so that is all the time the
# machine took from it). Then, per rate, the median and range of the runs'
# send lag p99: single runs swing with the machine's own work (docs/load.md,
# "Send lag on this VM").
set -e
H=${HOSTLAB:-target/release/hostlab}
REPEATS=${1:-5}
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
  for r in $(seq $REPEATS); do
    $H load $url -r $rate -c 256 -d 5s --warmup 1s --cpus 0 --no-progress --json $out/r$f-$r.json > /dev/null
  done
  python3 - $out $f $rate $REPEATS <<'PY'
import json, statistics, sys
out, f, rate, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
print(f"{float(f)*100:.0f}% ({rate} req/s):")
p99s = []
for r in range(1, repeats + 1):
    j = json.load(open(f"{out}/r{f}-{r}.json"))
    g = j["generator"]
    p99s.append(j["send_lag_us"]["p99"])
    print(f"  run {r}: achieved {j['requests_per_sec']:.0f}; send lag p50/p99/max {j['send_lag_us']['p50']}/{j['send_lag_us']['p99']}/{j['send_lag_us']['max']} us"
          f" (connection wait p99 {j['connection_wait_us']['p99']}, generator's own p99 {j['generator_lag_us']['p99']});"
          f" latency p50 {j['latency_us']['p50']} / service p50 {j['service_time_us']['p50']} us;"
          f" generator's run-queue wait {g['run_queue_wait_percent'] * 50:.1f} ms of 5 s;"
          f" generator CPU {g['cpu_us_per_request']:.1f} us/req")
print(f"  send lag p99 over {repeats} runs: median {statistics.median(p99s):.0f} us (range {min(p99s)}-{max(p99s)})")
PY
done
