#!/usr/bin/env bash
# Runs the already built restore bench on a bigger machine (the `device`
# tool's 16-core host), with 4 GiB included, and writes its output to
# "$OUT/restore.txt". Nothing is compiled here.
#
#   scripts/device-restore.sh [path/to/restore-bench-binary]
#
# Without an argument, the newest target/release/deps/restore-* executable
# is used (built here with `cargo bench --bench restore --no-run`; carry
# that file to the device). Stores go to a temporary directory under
# target/ on the repository's disk, removed at the end; the whole run is
# cut off after about 6 minutes.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:?OUT must name the folder the output goes to}"
bin="${1:-}"
if [[ -z $bin ]]; then
  bin=$(find "$repo/target/release/deps" -maxdepth 1 -type f -name 'restore-*' -executable \
    -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n1 | cut -d' ' -f2-)
fi
[[ -n $bin && -x $bin ]] || { echo "no restore bench binary (build: cargo bench --bench restore --no-run)" >&2; exit 2; }

# The device holds no git repository: pass the commit measured along.
export CKPT_BENCH_COMMIT="${CKPT_BENCH_COMMIT:-$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
dir="$repo/target/restore-device"
mkdir -p "$dir" "$out"
{
  echo "binary: $bin"
  echo "started: $(date -u +%FT%TZ) on $(hostname), nproc $(nproc)"
  df -h "$dir" | tail -n1
} >"$out/restore.txt"
status=0
# SIGTERM at 6 min, SIGKILL 20 s later; the tables printed so far are kept.
timeout --kill-after=20 360 "$bin" --big --sizes 256,1024,4096 --dir "$dir" \
  >>"$out/restore.txt" 2>&1 || status=$?
echo "exit status: $status (124: cut off by the 6 min limit)" >>"$out/restore.txt"
rm -rf "$dir"
exit "$status"
