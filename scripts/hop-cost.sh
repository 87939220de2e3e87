#!/usr/bin/env bash
# Hop cost per request, as issue 16's table was made: the server side pinned
# to one CPU, wrk pinned to another, 64 keep-alive connections, and per
# request:
#   core_us  the server CPU's busy time from /proc/stat (user + nice + system
#            + irq + softirq): every process on that CPU plus the kernel's
#            work. Exact only when the server CPU runs nothing else.
#   proc_us  the CPU time of the model's own processes (every thread of the
#            server, its children and nginx, from /proc/PID/task/*/schedstat,
#            in ns): robust on a busy machine, but misses loopback receive
#            work the kernel charges to the sender or runs in ksoftirqd.
#
# usage: scripts/hop-cost.sh [-b BINARY] [-d SECONDS] [-p PATH] [-s CPU] [-c CPU] MODEL...
#   MODEL: any `hostlab serve` model, or `nginx` (nginx, 1 worker, keep-alive
#   upstream, in front of `serve app`), or `nginx-baseline` (the same nginx in
#   front of `serve baseline`, /ping only). For a PATH under /books, 100
#   books are added first.
#   Prints one line per model: model path req_s core_us proc_us.
# Needs wrk, curl, taskset (and nginx for `nginx`). Loopback only; every
# process it starts is stopped on exit.
set -euo pipefail

bin=target/release/hostlab
seconds=10
path=/ping
server_cpu=1
client_cpu=0
conns=64
while getopts b:d:p:s:c: opt; do
  case $opt in
    b) bin=$OPTARG ;;
    d) seconds=$OPTARG ;;
    p) path=$OPTARG ;;
    s) server_cpu=$OPTARG ;;
    c) client_cpu=$OPTARG ;;
    *) echo "usage: $0 [-b BINARY] [-d SECONDS] [-p PATH] [-s CPU] [-c CPU] MODEL..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "name at least one model (baseline, edge, proxy, nginx, ...)" >&2; exit 2; }
for tool in wrk curl taskset; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (scripts/install-peers.sh)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "$bin is not an executable; build it with cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  pids=()
}
trap 'cleanup; rm -rf "$work"' EXIT

# `hostlab serve MODEL` on the server CPU; sets $url.
start_server() {
  local model=$1 out=$work/$1.out
  local flags=()
  case $model in
    proxy | inprocess | split) flags=(--start-mode always-running --idle-timeout 0) ;;
  esac
  taskset -c "$server_cpu" "$bin" serve "$model" --listen 127.0.0.1:0 "${flags[@]}" >"$out" 2>"$work/$model.err" &
  pids+=($!)
  for _ in $(seq 300); do
    url=$(grep -o 'url=[^ ]*' "$out" 2>/dev/null | head -1 | cut -d= -f2) || true
    [ -n "$url" ] && return 0
    sleep 0.1
  done
  echo "$model printed no ready line within 30 s: $(cat "$work/$model.err")" >&2
  exit 1
}

# nginx (1 worker, keep-alive upstream) in front of the app at $url; sets $url.
start_nginx() {
  local dir=$work/nginx port
  mkdir -p "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  upstream app { server ${url#http://}; keepalive 128; }
  server {
    listen 127.0.0.1:$port;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
  taskset -c "$server_cpu" nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" &
  pids+=($!)
  url=http://127.0.0.1:$port
  for _ in $(seq 100); do curl -sf "$url/ping" >/dev/null && return 0; sleep 0.1; done
  echo "nginx did not answer: $(cat "$dir/error.log")" >&2
  exit 1
}

# Every process of the tree under each started pid.
tree() {
  local queue=("${pids[@]}") all=() p
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}; queue=("${queue[@]:1}")
    all+=("$p")
    # shellcheck disable=SC2207
    queue+=($(pgrep -P "$p" || true))
  done
  echo "${all[@]}"
}

# Sum of on-CPU ns of every thread of the given processes.
proc_ns() {
  local sum=0 p f v
  for p in "$@"; do
    for f in /proc/"$p"/task/*/schedstat; do
      read -r v _ <"$f" 2>/dev/null || continue
      sum=$((sum + v))
    done
  done
  echo "$sum"
}

# Busy jiffies of the server CPU (user nice system irq softirq).
core_ticks() {
  awk -v cpu="cpu$server_cpu" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

run_wrk() {
  taskset -c "$client_cpu" wrk -t1 -c"$conns" -d"$1"s --latency "$url$path"
}

hz=$(getconf CLK_TCK)
for model in "$@"; do
  case $model in
    nginx) start_server app; start_nginx ;;
    nginx-baseline) start_server baseline; start_nginx ;;
    *) start_server "$model" ;;
  esac
  if [ "${path#/books}" != "$path" ]; then
    for i in $(seq 100); do
      curl -sf -o /dev/null -H 'content-type: application/json' \
        -d "{\"title\":\"Book $i\",\"author\":\"Author $i\",\"year\":1999}" "$url/books"
    done
  fi
  run_wrk 2 >/dev/null # warm-up
  procs=$(tree)
  # shellcheck disable=SC2086
  ns0=$(proc_ns $procs); t0=$(core_ticks)
  out=$(run_wrk "$seconds")
  # shellcheck disable=SC2086
  ns1=$(proc_ns $procs); t1=$(core_ticks)
  requests=$(awk '/requests in/ { print $1 }' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
  [ -z "$errors" ] || echo "$model: $errors" >&2
  awk -v m="$model" -v p="$path" -v n="$requests" -v s="$seconds" -v hz="$hz" \
    -v ticks=$((t1 - t0)) -v ns=$((ns1 - ns0)) \
    'BEGIN { printf "%-10s %-6s %8.0f req/s  core %6.2f us/req  proc %6.2f us/req\n", m, p, n / s, ticks * 1e6 / hz / n, ns / 1e3 / n }'
  cleanup
done
