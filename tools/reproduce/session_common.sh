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
