#!/bin/sh
# libsquire.so exports exactly what include/squire.h declares (SQ_API), and
# nothing of the library's inside: every other symbol is hidden.
set -eu
header=${1:?usage: exports_test.sh SQUIRE_H LIBSQUIRE_SO}
lib=${2:?usage: exports_test.sh SQUIRE_H LIBSQUIRE_SO}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -n 's/^SQ_API [^(]*[ *]\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p' "$header" | sort -u >"$tmp/declared"
# names in the implementation's space (a sanitizer's __asan_*, __odr_*) are
# the toolchain's, not ours
nm -D --defined-only "$lib" | awk '{print $NF}' | grep -v '^__' | sort -u >"$tmp/exported"
n=$(wc -l <"$tmp/declared")
if [ "$n" -lt 20 ]; then
    echo "only $n SQ_API declarations read from $header: is the export macro still used?"
    exit 1
fi
if ! cmp -s "$tmp/declared" "$tmp/exported"; then
    echo "exported by $lib but not declared in squire.h (>), or declared but not exported (<):"
    diff "$tmp/declared" "$tmp/exported" | grep '^[<>]' || true
    exit 1
fi
echo "$lib exports the $n functions squire.h declares, and nothing else"
