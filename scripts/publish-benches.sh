#!/bin/sh
# Keep the figures of the last `cargo bench` as a result set: criterion's
# estimates (time per iteration, with confidence intervals) of every bench,
# and next to them the command, commit, CPU, kernel and rustc that produced
# them. Usage, on a quiet machine:
#   cargo bench && scripts/publish-benches.sh results/benches/$(date -u +%Y%m%dT%H%M%SZ)
set -eu
out=${1:?usage: scripts/publish-benches.sh OUT_DIR (after cargo bench)}
criterion=${CARGO_TARGET_DIR:-target}/criterion
[ -d "$criterion" ] || { echo "no $criterion: run cargo bench first" >&2; exit 1; }
mkdir -p "$out"
# Each bench's latest estimates, at the same relative path.
(cd "$criterion" && find . -path '*/new/estimates.json') | while read -r f; do
    mkdir -p "$out/$(dirname "$f")"
    cp "$criterion/$f" "$out/$f"
done
{
    echo "# Bench figures"
    echo
    echo "- command: cargo bench (then scripts/publish-benches.sh $out)"
    echo "- commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) online"
    echo "- kernel: $(uname -r)"
    echo "- rustc: $(rustc --version 2>/dev/null || echo unknown)"
    echo "- published: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "Each \`*/new/estimates.json\` is criterion's own file: \`mean.point_estimate\`"
    echo "is the time per iteration in nanoseconds, with its confidence interval."
} > "$out/README.md"
echo "wrote $out"
