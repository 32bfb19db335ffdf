#!/usr/bin/env bash
# The first command as a new user meets it: seconds from `make run` in a fresh clone, with empty
# package caches, to the first image answered by the README's first example.
#
#   bench/first_run.sh [REPOSITORY [BRANCH]]     (default: this checkout's committed HEAD)
#
# Prints when each step of `make run` began, then the total, and the CPU seconds every process of
# the run had used by then (a shared machine stretches the wall time; CPU time it stretches less).
# The clone is made in a temporary folder, served on a free port, stopped with Ctrl-C's signal
# and deleted afterwards.
set -uo pipefail
repository=${1:-$(cd "$(dirname "$0")/.." && pwd)}
work=$(mktemp -d "${TMPDIR:-/tmp}/digits-first-run-XXXXXX")
trap 'rm -rf "$work"' EXIT
git clone --quiet ${2:+--branch "$2"} "$repository" "$work/digits" || exit 1
cd "$work/digits" || exit 1
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PORT=$port PIP_CACHE_DIR=$work/pip-cache UV_CACHE_DIR=$work/uv-cache
# A new user's shell lets Python keep the bytecode it compiles; with PYTHONDONTWRITEBYTECODE every
# process would compile every module it imports on every start, which is another measurement.
unset PYTHONDONTWRITEBYTECODE

# CPU seconds of process $1 and all its descendants (the service's processes start sessions of
# their own), with the children each has waited for (pip, uv and the like, once they are done).
cpu_seconds() {
  for stat in /proc/[0-9]*/stat; do cat "$stat" 2>/dev/null; done | awk -v root="$1" -v hz="$(getconf CLK_TCK)" '
    { pid = $1; sub(/^.*\) /, ""); parent[pid] = $2; ticks[pid] = $12 + $13 + $14 + $15 }
    END {
      for (pid in parent) {
        for (up = pid; up != root && up > 1; up = parent[up]) {}
        if (up == root) total += ticks[pid]
      }
      printf "%.1f", total / hz
    }'
}

start=$(date +%s.%N)
# Each line make prints, stamped with when it came; setsid: one session to measure and stop.
setsid bash -c 'make run 2>&1 | while IFS= read -r line; do echo "$(date +%s.%N) $line"; done' >"$work/run.log" &
session=$!
label="" installed_cpu=""
while [ -z "$label" ] && kill -0 "$session" 2>/dev/null; do
  if [ -z "$installed_cpu" ] && grep -q " -m stack" "$work/run.log"; then installed_cpu=$(cpu_seconds "$session"); fi
  label=$(curl -s -F image=@docs/examples/seven.png "http://127.0.0.1:$port/api/v1/predictions?wait=10" |
    grep -o '"label": *[0-9]*' | head -1)
  [ -n "$label" ] || sleep 0.25
done
end=$(date +%s.%N)
cpu=$(cpu_seconds "$session")

awk -v start="$start" '/^[0-9.]+ (python3|\.venv|touch|Redis|Digits is running)/ {
  line = substr($0, index($0, " ") + 1); printf "%6.1f s  %s\n", $1 - start, substr(line, 1, 100) }' "$work/run.log"
if [ -n "$label" ]; then
  awk -v start="$start" -v end="$end" -v label="$label" -v cpu="$cpu" -v installed="${installed_cpu:-?}" 'BEGIN {
    printf "%6.1f s  first image answered (%s); CPU used by then %s s, %s s of it before the service started\n",
      end - start, label, cpu, installed }'
else
  echo "make run stopped before answering:"; tail -20 "$work/run.log"
fi
kill -INT -- -"$session" 2>/dev/null
wait "$session" 2>/dev/null
[ -n "$label" ]
