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

# A program of a third party's own, built only against the installed header
# and squire.pc, shared and then static (pkg-config --static), that calls
# every function squire.h declares: it pushes, runs the daemon (sq_main) and
# its handler takes each way out (ok + push from inside, retry, kill, discard,
# no database).
every=$src/test/fixtures/embed/every_api.c
# a library built with the sanitizers (scripts/test's second pass) needs a
# program built with them: its runtime must come first, and the static
# library's objects call into it
san=()
if nm -D "$tmp/prefix/lib/libsquire.so" | grep ' U __asan_init' >/dev/null; then
  san=("-fsanitize=address,undefined")
fi
# shellcheck disable=SC2046
cc "${san[@]}" -Wall -Werror -o "$tmp/every_shared" "$every" $(pkg-config "${pcflags[@]}" --cflags --libs squire) \
   -Wl,-rpath,"$tmp/prefix/lib"
# shellcheck disable=SC2046
cc "${san[@]}" -Wall -Werror -o "$tmp/every_static" "$every" $(pkg-config "${pcflags[@]}" --cflags squire) \
   -Wl,-Bstatic $(pkg-config "${pcflags[@]}" --static --libs-only-L --libs-only-other squire) -lsquire \
   -Wl,-Bdynamic $(pkg-config "${pcflags[@]}" --static --libs-only-l squire | sed 's/-lsquire//')
! ldd "$tmp/every_static" | grep libsquire >/dev/null || { echo "every_static: libsquire not linked in"; exit 1; }
rcli() { redis-cli -u "$REDIS_URL" "$@"; }
for kind in shared static; do
  rcli flushall >/dev/null
  "$tmp/every_$kind" push "$REDIS_URL" >/dev/null
  "$tmp/every_$kind" -c 2 > "$tmp/every.log" 2>&1 &
  squire_pid=$!
  for _ in $(seq 100); do [ "$(rcli llen queue:children)" = 1 ] && [ "$(rcli zcard retry)" = 2 ] &&
    [ "$(rcli zcard dead)" = 1 ] && break; sleep 0.05; done
  kill -TERM "$squire_pid"; wait "$squire_pid"; squire_pid=""
  got="children=$(rcli llen queue:children) retry=$(rcli zcard retry) dead=$(rcli zcard dead)"
  got="$got retry_classes=$(rcli zrange retry 0 -1 | grep -o '"error_class":"[^"]*"' | sort | tr '\n' ' ')"
  want='children=1 retry=2 dead=1 retry_classes="error_class":"Api::Retry" "error_class":"Squire::DatabaseUnavailable" '
  if [ "$got" != "$want" ] || ! grep -q 'api [0-9a-f]\{24\} ApiJob default argc=1 retry_count=-1 raw=1 payload=1 args=1 stopping=0 ud=ud what=0' "$tmp/every.log"; then
    echo "every_$kind: got $got"; echo "      want $want"; cat "$tmp/every.log"; exit 1
  fi
  echo "ok: a $kind program built with pkg-config called every squire.h function"
done
