#!/usr/bin/env bash
# Runs one command on a quiet machine while background rows train: every running row of
# runs/logs/*.pid (table1_*, faces_*, ... as start_row in session_common.sh records them) is paused
# with SIGSTOP, together with its process group, for the command's duration and resumed with
# SIGCONT when the command ends, fails or is interrupted. A paused row loses only the wall time of
# the pause: SIGSTOP / SIGCONT do not touch its state, its epoch simply takes longer (sessions.json
# shows it). For timings that must not share the cores (benchmarks, profiles, `.ci/run`).
#
#   bash tools/reproduce/with_rows_paused.sh python tools/benchmarks/benchmark_decode.py --rounds=2
#   SETTLE_SECONDS=30 bash tools/reproduce/with_rows_paused.sh bash .ci/run
#
# SETTLE_SECONDS (default 15) is waited after pausing, so that the rows' last instructions and
# cache traffic are gone; the 1-minute load average still decays for a minute or two after it
# (it is printed before and after the command: report it with the timing). The command's exit
# status is the script's.
set -uo pipefail
if [ $# -eq 0 ]; then
  echo "usage: with_rows_paused.sh COMMAND [ARGS...]: the command to run while the rows are paused" >&2
  exit 2
fi
cd "$(dirname "$0")/../.."
groups=()
for pid_file in runs/logs/*.pid; do
  [ -f "$pid_file" ] || continue
  pid=$(tr -d ' \n' < "$pid_file")
  group=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')
  # A row leads its own process group (start_row's setsid); a stale pid file whose number now
  # belongs to another process (this shell's group above all) is left alone.
  # (Never group 1 or below: `kill -- -1` would signal every process.)
  if [[ "$pid" =~ ^[0-9]+$ ]] && [ "$pid" -gt 1 ] && [ "$group" = "$pid" ] \
      && [ "$group" != "$(ps -o pgid= -p $$ | tr -d ' ')" ]; then
    groups+=("$group")
  fi
done
resume() {
  local group
  for group in "${groups[@]}"; do
    kill -CONT -- "-$group" 2>/dev/null || true
  done
  [ ${#groups[@]} -gt 0 ] && echo "with_rows_paused: resumed ${#groups[@]} row(s)" >&2
}
trap resume EXIT
trap 'exit 130' INT TERM
for group in "${groups[@]}"; do
  kill -STOP -- "-$group" 2>/dev/null || true
done
echo "with_rows_paused: paused ${#groups[@]} row(s); settling ${SETTLE_SECONDS:-15} s" >&2
sleep "${SETTLE_SECONDS:-15}"
echo "with_rows_paused: load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$@"
status=$?
echo "with_rows_paused: load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exit $status
