#!/usr/bin/env bash
# Install the optional peers hostlab compares against: nginx (peer proxy),
# wrk and oha (load generators for cross-checks), hyperfine. None of them is
# needed by `cargo test` or `hostlab run`; missing peers are skipped.
set -euo pipefail
if command -v apt-get >/dev/null; then
  apt-get update
  apt-get install -y nginx-light wrk hyperfine
else
  echo "apt-get not found: install nginx, wrk and hyperfine with your package manager" >&2
fi
if ! command -v oha >/dev/null; then
  cargo install --locked oha || echo "oha did not install; cross-checks with oha are skipped" >&2
fi
