#!/bin/bash
# Generator efficiency against wrk (issue 14): closed loop, 64 connections,
# against `hostlab serve baseline` on CPU 1, each generator on CPU 0, in
# interleaved pairs (hostlab, then wrk) so both meet the same machine.
# CPU per request is the generator process's user + system time (getrusage
# of the child, its whole run) over the requests it completed, the same for
# both tools. Needs a release build (cargo build --release) and wrk.
# Usage: scripts/gen-cost.sh [PAIRS] [DURATION_S]   (defaults 5 and 4)
set -e
H=${HOSTLAB:-target/release/hostlab}
pairs=${1:-5}
secs=${2:-4}
command -v wrk > /dev/null || { echo "wrk is not installed (apt-get install -y wrk)"; exit 1; }
out=$(mktemp -d)
taskset -c 1 $H serve baseline --listen 127.0.0.1:0 > $out/ready 2>$out/err &
srv=$!
trap 'kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf $out' EXIT
for i in $(seq 50); do grep -q 'hostlab ready' $out/ready 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*url=\([^ ]*\).*/\1/p' $out/ready)/ping
python3 - "$H" "$url" "$pairs" "$secs" "$out" <<'PY'
import json, re, resource, statistics, subprocess, sys
h, url, pairs, secs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]

def timed(cmd):
    """Runs cmd; its stdout and the CPU seconds it used (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return text, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

def hostlab():
    js = f"{out}/h.json"
    _, cpu = timed(["taskset", "-c", "0", h, "load", url, "-c", "64", "-d", f"{secs}s",
                    "--cpus", "0", "--no-progress", "--json", js])
    j = json.load(open(js))
    return j["requests_per_sec"], cpu * 1e6 / j["requests"]["total"]

def wrk():
    text, cpu = timed(["taskset", "-c", "0", "wrk", "-t1", "-c64", f"-d{secs}s", url])
    done = int(re.search(r"(\d+) requests in", text).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    return rps, cpu * 1e6 / done

rows = []
print("pair | hostlab req/s | hostlab CPU us/req | wrk req/s | wrk CPU us/req")
for i in range(1, pairs + 1):
    a, b = hostlab(), wrk()
    rows.append((a, b))
    print(f"{i} | {a[0]:.0f} | {a[1]:.2f} | {b[0]:.0f} | {b[1]:.2f}")
med = lambda xs: statistics.median(xs)
rng = lambda xs: f"{min(xs):.2f}-{max(xs):.2f}"
rate = [a[0] / b[0] for a, b in rows]
cost = [a[1] / b[1] for a, b in rows]
print(f"hostlab / wrk req/s: median {med(rate):.3f} (range {rng(rate)})")
print(f"hostlab / wrk CPU us per request: median {med(cost):.3f} (range {rng(cost)})")
PY
