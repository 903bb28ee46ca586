#!/bin/sh
# No call cycle between the library's files (issue 14): read from the
# compiled objects, an edge a -> b for every symbol a uses that b defines;
# tsort refuses a graph with a loop and names the files in it.
#   call_cycles_test.sh OBJECT...   (every object of lib/ and lib/daemon/)
set -eu
# ctest hands $<TARGET_OBJECTS:...> over as one ;-separated argument
# shellcheck disable=SC2046
set -- $(printf '%s\n' "$@" | tr ';' '\n')
[ "$#" -ge 20 ] || { echo "only $# objects given: wrong target?"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
name() { printf '%s\n' "$1" | sed 's#.*/lib/#lib/#; s#\.o$##'; }
for o in "$@"; do
    n=$(name "$o")
    nm --defined-only "$o" | awk -v n="$n" 'NF == 3 && $2 ~ /[TDBR]/ {print $3, n}' >>"$tmp/defs"
    nm -u "$o" | awk -v n="$n" '{print $NF, n}' >>"$tmp/uses"
    echo "$n $n" >>"$tmp/edges" # every file is a node, with or without edges
done
sort -k1,1 -o "$tmp/defs" "$tmp/defs"
sort -k1,1 -o "$tmp/uses" "$tmp/uses"
# symbol user definer -> "user definer" where they differ
join "$tmp/uses" "$tmp/defs" | awk '$2 != $3 {print $2, $3}' | sort -u >>"$tmp/edges"
if ! tsort "$tmp/edges" >/dev/null 2>"$tmp/err"; then
    echo "call cycle between files (each calls into the other, maybe through others):"
    sed -n 's/^tsort: //p' "$tmp/err" | grep -v 'input contains a loop'
    sed -n 's/^tsort: //p' "$tmp/err" | grep -v 'input contains a loop' >"$tmp/loop"
    echo "the calls that make it:"
    join "$tmp/uses" "$tmp/defs" | awk -v loop="$tmp/loop" '
        BEGIN { while ((getline f < loop) > 0) in_loop[f] = 1 }
        $2 != $3 && ($2 in in_loop) && ($3 in in_loop) {print "  " $2 " -> " $3 ": " $1}' | sort -u
    exit 1
fi
echo "no call cycle between the $# library files"
