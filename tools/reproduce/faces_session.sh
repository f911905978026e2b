#!/usr/bin/env bash
# One session's share of the face comparison run (issue 26): celeba_crvae_gan and celeba_vae_gan,
# same width, data, budget and seed, as two background processes, one thread each, niced, each
# stopping at the first epoch end after MINUTES (default 180), on SIGTERM, or once its run has
# trained BUDGET_HOURS machine-hours in all (default 7; wall x threads over every session). Each run
# folder reproductions/faces/PRESET/ keeps its full state on the machine (backup/, both players' Adam
# moments; git-ignored), and, to commit, its light state (resume_weights.npz in float16 and
# resume.json, written when a stretch stops: a replaced machine resumes from it), scores.json
# (sample FID, held-out reconstruction FID and MSE, machine-hours every SCORE_EVERY epochs),
# sessions.json and grids/; run the script again in the next session to resume. Trains on faces 0..8499 of
# celeba64_train.npz, scored on faces 8500..9499 (tools/reproduce/face_run.py).
#
#   bash tools/reproduce/faces_session.sh 180 --set=precision=bfloat16   # returns at once
#   kill -TERM $(cat runs/logs/faces_*.pid)   # optional: stop both earlier, at their epoch ends
#
# Extra arguments go to both runs (the width the budget study chose, e.g. --set=base_channels=16
# --set=discriminator_channels=32; keep them the same in every session: the GAN job refuses a
# run folder trained with other settings). The Table 1 rows come first: the script refuses to
# start while they run unless FORCE=1. CODE_DIR (default: this checkout) is the checkout the
# processes import, as in table1_session.sh.
set -euo pipefail
minutes=${1:-180}
shift || true
cd "$(dirname "$0")/../.."
repo=$PWD
code=${CODE_DIR:-$repo}
mkdir -p runs/logs
source tools/reproduce/session_common.sh
refuse_while_running faces_session.sh face_run.py
if [ "${FORCE:-0}" != 1 ]; then
  refuse_while_running "faces_session.sh (the Table 1 rows come first; FORCE=1 overrides)" \
    reproduce_table1
fi
for preset in celeba_crvae_gan celeba_vae_gan; do
  start_row "$repo" "$code" "faces_$preset" \
    python tools/reproduce/face_run.py --preset="$preset" --threads=1 \
      --budget_hours="${BUDGET_HOURS:-7}" --score_every="${SCORE_EVERY:-5}" \
      --stop_after_minutes="$minutes" --output_dir="$repo/reproductions/faces/$preset" "$@"
done
echo "To stop both before $minutes minutes (at their epoch ends):" \
  'kill -TERM $(cat runs/logs/faces_*.pid)'
