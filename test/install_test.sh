#!/usr/bin/env bash
# Install squire into a temp prefix, build a handler plugin the way a user
# would (cc -shared -fPIC ... $(pkg-config --cflags --libs squire)), and run
# the installed daemon with it against a real redis-server.
#   install_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
# squire refuses root unless told; sandboxes and CI run as root.
[ "$(id -u)" -ne 0 ] || export SQUIRE_ALLOW_ROOT=1
src=$1 build=$2
tmp=$(mktemp -d /tmp/squire-install.XXXXXX)
redis_pid="" squire_pid=""
cleanup() {
  [ -n "$squire_pid" ] && kill -9 "$squire_pid" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill -9 "$redis_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(dirname "$(find "$tmp/prefix" -name squire.pc)")
export PKG_CONFIG_PATH=$pc
# a relocated install: point the .pc at where it actually is
pcflags=(--define-variable=prefix="$tmp/prefix")
# shellcheck disable=SC2046
cc -shared -fPIC -Wall -Werror -o "$tmp/libjobs.so" "$src/examples/jobs.c" \
   $(pkg-config "${pcflags[@]}" --cflags --libs squire) -lz
echo "ok: plugin built with pkg-config (squire $(pkg-config --modversion squire))"

# shellcheck source=test/redis_port.sh
. "$src/test/redis_port.sh"
start_redis "$tmp/redis.log" "${SQ_REDIS_SERVER:-redis-server}" --bind 127.0.0.1 --port PORT \
  --dir "$tmp" --save '' || exit 1

"$tmp/prefix/bin/squire" -r "$tmp/libjobs.so" -c 2 > "$tmp/squire.log" 2>&1 &
squire_pid=$!
"$tmp/prefix/bin/squirectl" push HardJob '["installed", 7]' >/dev/null
for _ in $(seq 600); do grep -q "hard work for installed x7" "$tmp/squire.log" && break; sleep 0.05; done
grep -q "hard work for installed x7" "$tmp/squire.log" || { cat "$tmp/squire.log"; exit 1; }
kill -TERM "$squire_pid"; wait "$squire_pid"; squire_pid=""
echo "ok: installed squire ran the plugin's HardJob and exited 0"
