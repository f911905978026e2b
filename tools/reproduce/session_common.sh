# Sourced by the session scripts (table1_session.sh, iwae_table_session.sh).
#
# refuse_while_running NAME SCRIPT: exits 2 while any process runs SCRIPT (two processes training
# the same row would overwrite each other's state). It looks at the running processes themselves
# (`pgrep -f`), not only at the recorded pid files, which a crash or a wrapper process can leave
# wrong.
refuse_while_running() {
  local name=$1 script=$2 pids
  pids=$(pgrep -f "python[0-9.]* .*$script" || true)
  if [ -n "$pids" ]; then
    echo "$name: $script is still running (pid $(echo $pids | tr ' ' ',')); stop it first" \
      "(kill -TERM $(echo $pids)) or wait for it." >&2
    exit 2
  fi
}

# favour_rows PID...: the kernel's autogroup scheduler (`/proc/sys/kernel/sched_autogroup_enabled`,
# on by default) shares the CPU fairly between sessions whatever their nice values, so a row
# niced to 8 got half a core while helpers' tests niced to 15 ran in other sessions (a crVAE
# epoch took 1,756 s instead of ~330 s). The rows are started in a session of their own
# (`setsid`) and that session's autogroup is given nice -10 (root) or left alone (otherwise);
# inside it the rows keep their nice 8, and other work uses the cores the rows leave.
favour_rows() {
  local pid tries
  for pid in "$@"; do
    # Wait (up to 10 s) until setsid has made the process a session leader and nohup and nice
    # have exec'd python: before that, the autogroup is still the caller's.
    for tries in $(seq 100); do
      if [ "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid" ] && \
          ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -Eq '^(setsid|nohup|nice) '; then
        break
      fi
      sleep 0.1
    done
    if [ -w "/proc/$pid/autogroup" ]; then
      echo -10 > "/proc/$pid/autogroup" 2>/dev/null || true
    fi
  done
}

# start_row REPO CODE NAME COMMAND...: runs COMMAND (a python training script) from the checkout
# CODE as a background process on TensorFlow with ROW_THREADS threads (default 1; the command's own
# --threads should say the same), in a session of its own (setsid),
# niced to 8 and favoured (favour_rows); output appended to REPO/runs/logs/NAME.log, its pid in
# REPO/runs/logs/NAME.pid (the process itself: nohup and nice exec it, and the `cd` happens
# apart from the backgrounded command, so $! is the training process).
start_row() {
  local repo=$1 code=$2 name=$3
  shift 3
  (cd "$code"; PYTHONPATH="$code${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=tensorflow \
    TF_CPP_MIN_LOG_LEVEL=2 TF_NUM_INTRAOP_THREADS=${ROW_THREADS:-1} TF_NUM_INTEROP_THREADS=1 setsid nohup nice -n 8 \
    "$@" >> "$repo/runs/logs/$name.log" 2>&1 &
   echo $! > "$repo/runs/logs/$name.pid")
  favour_rows "$(cat "$repo/runs/logs/$name.pid")"
  echo "$name: pid $(cat "$repo/runs/logs/$name.pid"), log runs/logs/$name.log"
}
