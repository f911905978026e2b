#!/usr/bin/env bash
# One session's share of every long run (tools/reproduce/long_runs.txt: Table 1, the face pilots,
# the studies of issues 28-30), both cores busy: `run_queue.py` with two workers of one thread
# each, started in the background in a session of its own, niced and favoured like the rows of
# table1_session.sh (session_common.sh), stopping every entry at its first epoch (or score part)
# end after MINUTES (default 130), or on SIGTERM. A worker that finishes its entry takes the next
# one at once, so no core idles while the other's row still scores.
#
#   bash tools/reproduce/long_runs_session.sh 130     # returns at once; log runs/logs/queue.log
#   kill -TERM $(cat runs/logs/long_runs.pid)         # optional: stop every entry at its epoch end
#
# The code comes from CODE_DIR (default: a fresh `git worktree` of HEAD in ../wt-long-runs): entries
# that start mid-session (the next one when a worker frees) then run the committed code, whatever
# the checkout holds by then; they run, and write, in this checkout. A CODE_DIR must sit beside
# this checkout (the tools find ../shared/data from their own folder). Refuses while the rows of
# table1_session.sh or faces_session.sh, another queue, or anything running from the worktree (an
# entry a killed queue left behind) are running. QUEUE (default tools/reproduce/long_runs.txt)
# names another queue file; WORKERS and THREADS (default 2 and 1) another split of the cores, e.g.
# WORKERS=1 THREADS=2 to give one row both cores (a row near its end, while little else is queued).
set -euo pipefail
minutes=${1:-130}
cd "$(dirname "$0")/../.."
repo=$PWD
mkdir -p runs/logs
source tools/reproduce/session_common.sh
refuse_while_running long_runs_session.sh run_queue.py
refuse_while_running long_runs_session.sh reproduce_table1
refuse_while_running long_runs_session.sh face_run.py
code=${CODE_DIR:-}
if [ -z "$code" ]; then
  code=$(cd .. && pwd)/wt-long-runs
  refuse_while_running long_runs_session.sh "$code"  # never delete the code of a running entry
  git worktree remove --force "$code" 2>/dev/null || true
  git worktree prune
  git worktree add --detach "$code" HEAD > /dev/null
fi
(PYTHONPATH="$code${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 \
   setsid nohup nice -n 8 python "$code/tools/reproduce/run_queue.py" \
     --queue="${QUEUE:-tools/reproduce/long_runs.txt}" --workers="${WORKERS:-2}" --threads="${THREADS:-1}" --nice=0 \
     --code_dir="$code" --minutes="$minutes" >> runs/logs/long_runs.log 2>&1 &
 echo $! > runs/logs/long_runs.pid)
favour_rows "$(cat runs/logs/long_runs.pid)"
sleep 2
if ! kill -0 "$(cat runs/logs/long_runs.pid)" 2>/dev/null; then  # e.g. a usage error (status 2)
  echo "long runs: the queue ended at once; the end of runs/logs/long_runs.log:" >&2
  tail -n 3 runs/logs/long_runs.log >&2
  exit 1
fi
echo "long runs: queue pid $(cat runs/logs/long_runs.pid) (code $code), log runs/logs/queue.log;" \
  'stop every entry at its epoch end: kill -TERM $(cat runs/logs/long_runs.pid)'
