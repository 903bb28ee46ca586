#!/bin/sh
# No call or include cycle between the library's modules (issue 14; a
# module is x.c with its x.h): an edge a -> b for every symbol a's object
# uses that b's defines, and for every #include "b.h" in a.c or a.h; tsort
# refuses a graph with a loop and names the modules in it.
#   call_cycles_test.sh SOURCE_DIR OBJECT...   (every object of lib/ and lib/daemon/)
set -eu
src=${1:?usage: call_cycles_test.sh SOURCE_DIR OBJECT...}
shift
# ctest hands $<TARGET_OBJECTS:...> over as one ;-separated argument
# shellcheck disable=SC2046
set -- $(printf '%s\n' "$@" | tr ';' '\n')
[ "$#" -ge 20 ] || { echo "only $# objects given: wrong target?"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
name() { printf '%s\n' "$1" | sed 's#.*/lib/#lib/#; s#\.c\.o$##'; }
for o in "$@"; do
    n=$(name "$o")
    nm --defined-only "$o" | awk -v n="$n" 'NF == 3 && $2 ~ /[TDBR]/ {print $3, n}' >>"$tmp/defs"
    nm -u "$o" | awk -v n="$n" '{print $NF, n}' >>"$tmp/uses"
    echo "$n $n" >>"$tmp/edges" # every file is a node, with or without edges
done
sort -k1,1 -o "$tmp/defs" "$tmp/defs"
sort -k1,1 -o "$tmp/uses" "$tmp/uses"
# symbol user definer -> "user definer" where they differ
join "$tmp/uses" "$tmp/defs" | awk '$2 != $3 {print $2, $3, "calls"}' | sort -u >"$tmp/calls"
# includes, resolved as the build does: beside the file, then lib/, lib/daemon/
for f in "$src"/lib/*.[ch] "$src"/lib/daemon/*.[ch] "$src"/lib/daemon/fetch/*.[ch]; do
    from=$(printf '%s\n' "$f" | sed "s#^$src/##; s#\.[ch]\$##")
    # a header with no .c of its own (config_internal.h) is part of the
    # module that includes it: its includes are not a module's
    [ -f "$src/$from.c" ] || continue
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
        for dir in "$(dirname "$f")" "$src/lib" "$src/lib/daemon"; do
            if [ -f "$dir/$inc" ]; then
                to=$(cd "$(dirname "$dir/$inc")" && pwd)/$(basename "$inc" .h)
                to=${to#"$(cd "$src" && pwd)"/}
                [ "$to" != "$from" ] && echo "$from $to includes"
                break
            fi
        done
    done
done | sort -u >"$tmp/includes"
cat "$tmp/calls" "$tmp/includes" | awk '{print $1, $2}' >>"$tmp/edges"
if ! tsort "$tmp/edges" >/dev/null 2>"$tmp/err"; then
    echo "cycle between modules (each calls or includes the other, maybe through others):"
    sed -n 's/^tsort: //p' "$tmp/err" | grep -v 'input contains a loop'
    sed -n 's/^tsort: //p' "$tmp/err" | grep -v 'input contains a loop' >"$tmp/loop"
    echo "the calls and includes that make it:"
    join "$tmp/uses" "$tmp/defs" | awk '$2 != $3 {print $2, $3, "calls " $1}' |
        cat - "$tmp/includes" | awk -v loop="$tmp/loop" '
        BEGIN { while ((getline f < loop) > 0) in_loop[f] = 1 }
        ($1 in in_loop) && ($2 in in_loop) {print "  " $1 " -> " $2 ": " $3 " " $4}' | sort -u
    exit 1
fi
echo "no call or include cycle between the $# library modules"
