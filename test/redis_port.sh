# Sourced by the shell tests: start a Redis on a free loopback port.
#
#   start_redis LOG CMD...   runs CMD (a redis-server command line in which
#                            PORT stands for the port) in the background until
#                            it answers PING; sets port, redis_pid, REDIS_URL.
#
# Ports come from 20000-32767, below the kernel's ephemeral range, so the
# harness's suites (which take ephemeral ports) never pick the same one. A
# Redis that dies at start (another test took the port between the check and
# its bind) is started again on another port; a slow start on a loaded
# machine is waited for up to 30 s.
start_redis() {
  local log=$1; shift
  local attempt i
  for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 12768))
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
    "${@//PORT/$port}" > "$log" 2>&1 &
    redis_pid=$!
    REDIS_URL="redis://127.0.0.1:$port/0"
    export REDIS_URL
    for i in $(seq 600); do
      redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 && return 0
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -9 "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
    echo "redis did not start on port $port (attempt $attempt):" >&2
    tail -5 "$log" >&2
  done
  return 1
}
