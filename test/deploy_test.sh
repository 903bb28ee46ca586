#!/usr/bin/env bash
# Deployment as users run it (issue 6):
#  1. Procfile and Procfile.dev parse the way foreman, honcho and Heroku read
#     them ("name: command", one per line).
#  2. Procfile.dev's redis line starts a Redis (on a free port instead of 6379).
#  3. Procfile's worker line runs as written, through a shell, from an app
#     directory holding config/sidekiq.yml and build/libjobs.so, with squire on
#     PATH and Heroku's environment (REDIS_URL, DYNO): it runs a job, shows up
#     as worker.1, logs without timestamps, and on TERM to its process group (as
#     Heroku and foreman send it) pushes its running job back and exits 0.
#  4. Procfile.dev's worker line does the same with a local environment.
#  5. systemd-analyze verify accepts packaging/systemd/squire.service (with
#     ExecStart pointed at the built binary), when systemd-analyze is installed.
# As root, the worker lines run as nobody (squire refuses root, as on a dyno
# nothing runs as root).
#   deploy_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$(cd "$1" && pwd) build=$(cd "$2" && pwd)
tmp=$(mktemp -d /tmp/squire-deploy.XXXXXX)
chmod 755 "$tmp"
redis_pid="" worker_pid=""
cleanup() {
  if [ -n "$worker_pid" ]; then kill -9 -- "-$worker_pid" 2>/dev/null || true; fi
  if [ -n "$redis_pid" ]; then { kill -9 "$redis_pid"; wait "$redis_pid"; } 2>/dev/null || true; fi
  if [ -n "${KEEP_TMP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Whatever launched the test must not leak systemd's or Heroku's variables in.
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID JOURNAL_STREAM CREDENTIALS_DIRECTORY \
      REDIS_PROVIDER REDIS_URL DYNO RAILS_MAX_THREADS APP_ENV RAILS_ENV RACK_ENV

# --- 1. Procfiles -----------------------------------------------------------
# procfile_cmd FILE NAME: the command of process type NAME, after checking that
# every line of FILE is "name: command" (the format foreman, honcho and Heroku
# accept: /^([A-Za-z0-9_-]+):\s*(.+)$/) and that no name appears twice.
procfile_cmd() {
  local file=$1 want=$2 line name cmd found="" n=0
  local -A seen=()
  [ -f "$file" ] || fail "$file is missing"
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    [ -z "${line//[[:space:]]/}" ] && continue
    [[ $line =~ ^([A-Za-z0-9_-]+):[[:space:]]*(.+)$ ]] ||
      fail "$file:$n: not a 'name: command' line: $line"
    name=${BASH_REMATCH[1]} cmd=${BASH_REMATCH[2]}
    [ -z "${seen[$name]:-}" ] || fail "$file:$n: $name defined twice"
    seen[$name]=1
    [ "$name" = "$want" ] && found=$cmd
  done < "$file"
  [ -n "$found" ] || fail "$file has no '$want:' line"
  printf '%s\n' "$found"
}
worker_cmd=$(procfile_cmd "$src/Procfile" worker)
dev_redis_cmd=$(procfile_cmd "$src/Procfile.dev" redis)
dev_worker_cmd=$(procfile_cmd "$src/Procfile.dev" worker)
[[ $worker_cmd == squire\ * ]] || fail "Procfile worker does not run squire: $worker_cmd"
[[ $dev_worker_cmd == squire\ * ]] || fail "Procfile.dev worker does not run squire: $dev_worker_cmd"
[[ $dev_redis_cmd == *"--port 6379"* ]] || fail "Procfile.dev redis: expected --port 6379: $dev_redis_cmd"
echo "ok: Procfile (worker) and Procfile.dev (redis, worker) parse as name: command"

# --- the app directory and PATH, as on a dyno -------------------------------
mkdir -p "$tmp/bin" "$tmp/app/config" "$tmp/app/build" "$tmp/redis"
ln -s "$build/squire" "$tmp/bin/squire"
ln -s "$build/libjobs.so" "$tmp/app/build/libjobs.so"
cat > "$tmp/app/config/sidekiq.yml" <<'EOF'
:concurrency: 2
:timeout: 5
:queues:
  - default
EOF
chmod -R a+rX "$tmp"
export PATH="$tmp/bin:$PATH"
squirectl=$build/squirectl

# --- 2. Redis from Procfile.dev, on a free loopback port --------------------
# The line as written, through a shell as foreman runs it; only the port differs.
# shellcheck source=test/redis_port.sh
. "$src/test/redis_port.sh"
start_redis "$tmp/redis.log" bash -c "cd '$tmp/app' && TMPDIR='$tmp/redis' exec ${dev_redis_cmd/--port 6379/--port PORT}" ||
  { cat "$tmp/redis.log"; fail "redis from Procfile.dev did not start"; }
[ "$(redis-cli -u "$REDIS_URL" config get appendonly | tail -1)" = yes ] || fail "Procfile.dev redis: appendonly is off"
echo "ok: Procfile.dev's redis line runs (appendonly yes, port $port)"

# run_line NAME CMD: run CMD from the app directory through bash, in its own
# process group, as nobody when we are root. Sets worker_pid.
run_line() {
  local name=$1 cmd=$2
  local -a as_user=()
  if [ "$(id -u)" = 0 ]; then
    command -v setpriv >/dev/null || fail "running as root and setpriv is missing"
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  fi
  (cd "$tmp/app" && exec setsid "${as_user[@]}" bash -c "$cmd") > "$tmp/$name.log" 2>&1 &
  worker_pid=$!
}
# wait_log NAME TEXT: up to 10 s for TEXT in NAME's log.
wait_log() {
  for _ in $(seq 600); do grep -qF -- "$2" "$tmp/$1.log" && return 0; sleep 0.05; done
  cat "$tmp/$1.log" >&2
  fail "$1: no '$2' in the log"
}
# stop_line NAME: TERM to the process group (Heroku and foreman signal every
# process), then up to 15 s for exit; the exit status must be 0.
stop_line() {
  local name=$1 rc=0
  kill -TERM -- "-$worker_pid"
  for _ in $(seq 600); do kill -0 "$worker_pid" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$worker_pid" 2>/dev/null && { cat "$tmp/$name.log" >&2; fail "$name: still running 15 s after TERM"; }
  wait "$worker_pid" || rc=$?
  worker_pid=""
  [ "$rc" = 0 ] || { cat "$tmp/$name.log" >&2; fail "$name: exit status $rc after TERM, expected 0"; }
}
queue_len() { redis-cli -u "$REDIS_URL" llen queue:default; }

# --- 3. Procfile's worker line, with Heroku's environment -------------------
DYNO=worker.1 run_line procfile "$worker_cmd"
# A slow job first (it is still running at TERM), then a quick one.
"$squirectl" push SleepyJob '[60]' >/dev/null
"$squirectl" push HardJob '["procfile", 3]' >/dev/null
wait_log procfile "hard work for procfile x3"
[ "$(cat "/proc/$worker_pid/comm")" = squire ] || fail "the worker line's process is not squire"
# Both jobs were fetched: SleepyJob is running.
for _ in $(seq 600); do [ "$(queue_len)" = 0 ] && break; sleep 0.05; done
[ "$(queue_len)" = 0 ] || fail "procfile: SleepyJob was not fetched"
"$squirectl" processes | grep -q "worker\.1:" || { "$squirectl" processes; fail "no worker.1 process in squirectl processes"; }
# On Heroku the log router stamps each line: squire's own lines have no time.
first=$(head -n 1 "$tmp/procfile.log")
[[ $first =~ ^pid=[0-9]+\  ]] || fail "with DYNO set, log lines should start with pid=, got: $first"
# It read config/sidekiq.yml (-C) and uses $DYNO as its host name.
grep -q "identity=worker\.1:.* concurrency=2 " "$tmp/procfile.log" ||
  fail "procfile: the start-up line lacks identity=worker.1:... concurrency=2: $first"
stop_line procfile
[ "$(queue_len)" = 1 ] || { cat "$tmp/procfile.log" >&2; fail "the running SleepyJob was not pushed back at TERM"; }
echo "ok: Procfile's worker line ran a job as worker.1 (no timestamps), exited 0 on TERM, job in flight pushed back"
redis-cli -u "$REDIS_URL" del queue:default >/dev/null

# --- 4. Procfile.dev's worker line ------------------------------------------
run_line dev "$dev_worker_cmd"
"$squirectl" push HardJob '["dev", 4]' >/dev/null
wait_log dev "hard work for dev x4"
# Without -C it finds config/sidekiq.yml in the current directory; without
# DYNO its lines carry timestamps.
first=$(head -n 1 "$tmp/dev.log")
[[ $first =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T.*\ concurrency=2\  ]] ||
  fail "dev: expected a timestamped start-up line with concurrency=2, got: $first"
stop_line dev
echo "ok: Procfile.dev's worker line ran a job and exited 0 on TERM"

# --- 5. the systemd unit ----------------------------------------------------
unit=$src/packaging/systemd/squire.service
[ -f "$unit" ] || fail "$unit is missing"
grep -q '^ExecStart=/usr/local/bin/squire ' "$unit" || fail "$unit: ExecStart is not /usr/local/bin/squire ..."
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$tmp/unit"
  sed "s#^ExecStart=/usr/local/bin/squire #ExecStart=$build/squire #" "$unit" > "$tmp/unit/squire.service"
  out=$(cd "$tmp/unit" && systemd-analyze verify ./squire.service 2>&1) ||
    { printf '%s\n' "$out"; fail "systemd-analyze verify rejected squire.service"; }
  # verify exits 0 after warnings such as an unknown directive or a bad
  # value: any line about our unit fails the test; lines about the host's
  # other units (dependencies) are only shown.
  [ -z "$out" ] || printf '%s\n' "$out"
  if grep -q "squire\.service" <<<"$out"; then fail "systemd-analyze verify complained about squire.service"; fi
  echo "ok: systemd-analyze verify accepts squire.service ($(systemd-analyze --version | head -n 1))"
else
  echo "skipped: systemd-analyze not installed"
fi
