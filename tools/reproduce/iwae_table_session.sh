#!/usr/bin/env bash
# One session's share of the IWAE table at the paper's full schedule (3,280 epochs per row), on a
# 2-core CPU: two background processes (one per core, JAX backend, one thread each, niced), each
# training its rows in order and stopping at the first epoch end after MINUTES (default 120). A row
# that stops leaves its light state in reproductions/iwae_table/ROW/ (commit it; the next session
# resumes from it); a finished row is scored (k=5000 NLL on the 10,000 validation images, about 10
# minutes) and joins docs/iwae_table_3280.json. The slots pair a cheap row with an expensive one so
# both cores stay busy about equally long (docs/reproduction.md, "The paper's schedule").
#
#   bash tools/reproduce/iwae_table_session.sh 120      # returns at once; logs in runs/logs/iwae_slot*.log
#   kill -TERM $(cat runs/logs/iwae_slot*.pid)   # optional: stop both earlier, at their epoch ends
#   # ... MINUTES later (+ the progress NLL, about a minute):
#   git add reproductions/iwae_table docs/iwae_table_3280.json && git commit -m "IWAE table: ..."
set -euo pipefail
minutes=${1:-120}
cd "$(dirname "$0")/../.."
# The checkout itself, whether or not the package is installed (a fresh machine, a clone).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p runs/logs
source tools/reproduce/session_common.sh
refuse_while_running iwae_table_session.sh reproduce_iwae_table
slot=0
for rows in mnist_mlp_vae,mnist_mlp_iwae_2layer mnist_mlp_vae_2layer,mnist_mlp_iwae; do
  slot=$((slot + 1))
  KERAS_BACKEND=jax TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 setsid nohup nice -n 8 \
    python tools/reproduce/reproduce_iwae_table.py --presets="$rows" --epochs=3280 --threads=1 \
      --validation_every=20 --stop_after_minutes="$minutes" \
      --output_dir=reproductions/iwae_table --results_json=docs/iwae_table_3280.json \
      > "runs/logs/iwae_slot$slot.log" 2>&1 &
  echo $! > "runs/logs/iwae_slot$slot.pid"
  favour_rows $!
  echo "slot $slot: $rows (pid $!, log runs/logs/iwae_slot$slot.log)"
done
echo "To stop both before $minutes minutes (at their epoch ends, light state written):" \
  'kill -TERM $(cat runs/logs/iwae_slot*.pid)'
