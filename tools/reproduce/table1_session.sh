#!/usr/bin/env bash
# One session's share of Table 1 at the paper's protocol (200 epochs, mixed bfloat16, TensorFlow) on
# a 2-core CPU: mnist_crvae and mnist_vae as two background processes, one thread each, niced, each
# stopping at the first epoch end after MINUTES (default 120) or on SIGTERM. A stopped row keeps its
# full state (Adam's moments) in reproductions/table1/ROW/backup/ on this machine (not committed) and
# writes its light state there: resume_weights.npz (float16, about 30 MB) + resume.json, which a
# replaced machine resumes from, and a progress NLL (k=500 on the first 200 validation images: an
# indicator, not a result). A finished row is scored (k=5000) and joins docs/table1_200.json.
#
#   bash tools/reproduce/table1_session.sh 120           # returns at once; logs in runs/logs/table1_*.log
#   kill -TERM $(cat runs/logs/table1_*.pid)    # optional: stop both earlier, at their epoch ends
#
# CODE_DIR (default: this checkout) is the checkout the processes import; point it at a separate
# worktree of a fixed commit when the checkout will change under the running rows. While they run,
# never `git stash`, `git checkout` or `git reset` reproductions/table1/: Keras' CSVLogger keeps
# history.csv open, and a replaced file loses every later epoch's line (2026-12-05, session 3).
set -euo pipefail
minutes=${1:-120}
cd "$(dirname "$0")/../.."
repo=$PWD
code=${CODE_DIR:-$repo}
mkdir -p runs/logs
source tools/reproduce/session_common.sh
refuse_while_running table1_session.sh reproduce_table1
# The rows not finished yet (no result.json): one thread each while both train or score, both
# cores for the last one.
rows=""
for row in mnist_crvae mnist_vae; do
  if [ -f "reproductions/table1/$row/result.json" ]; then
    rm -f "runs/logs/table1_$row.pid"  # the stop command below must not signal a stale pid
  else
    rows="$rows $row"
  fi
done
if [ -z "$rows" ]; then
  echo "Both Table 1 rows are finished (reproductions/table1/*/result.json)."
  exit 0
fi
set -- $rows
export ROW_THREADS=$(( $# == 1 ? 2 : 1 ))
for row in $rows; do
  # The final score (k=5000 on 2,000 images) is kept 100 images at a time and resumes across
  # sessions; its float32 check pairs 200 of them (docs/reproduction.md).
  start_row "$repo" "$code" "table1_$row" \
    python tools/reproduce/reproduce_table1.py --presets="$row" --epochs=200 \
      --threads="$ROW_THREADS" --set=precision=bfloat16 --light_state_dtype=float16 \
      --progress_images=200 --progress_samples=500 --num_valid=2000 \
      --float32_check_images=200 \
      --stop_after_minutes="$minutes" --output_dir="$repo/reproductions/table1"
done
echo "To stop both before $minutes minutes (at their epoch ends, light state written):" \
  'kill -TERM $(cat runs/logs/table1_*.pid)'
