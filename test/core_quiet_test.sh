#!/bin/sh
# The library core (lib/*.c, lib/*.h; the daemon in lib/daemon/ is not core)
# never logs, prints or exits: it returns errors and hands news to its
# caller's reporter (lib/common.h). This proves it by reading the code with
# comments and string literals taken out, so a message that merely says
# "stdout" does not count, and a call in any spelling does.
set -eu
src=${1:?usage: core_quiet_test.sh SOURCE_DIR}
calls='(printf|fprintf|vprintf|vfprintf|dprintf|vdprintf|puts|fputs|putchar|fputc|putc|fwrite|perror|psignal|exit|_exit|_Exit|quick_exit|abort|syslog|vsyslog|err|errx|verr|warn|warnx|vwarn|sq_log[a-z_]*)[[:space:]]*\('
names='(stdout|stderr|STDOUT_FILENO|STDERR_FILENO)'
heads='#[[:space:]]*include[[:space:]]*[<"](log\.h|syslog\.h|err\.h)[>"]'
status=0
found=0
for f in "$src"/lib/*.c "$src"/lib/*.h; do
    found=$((found + 1))
    # strip /* */ and // comments, then string and character literals
    hits=$(perl -0777 -pe 's{/\*.*?\*/}{(my $x = $&) =~ s/[^\n]//g; $x}gse; s{//[^\n]*}{}g; s{"(?:\\.|[^"\\\n])*"}{""}g; s{'"'"'(?:\\.|[^'"'"'\\\n])*'"'"'}{0}g' "$f" |
           grep -nE "(^|[^A-Za-z0-9_.>])$calls|(^|[^A-Za-z0-9_])$names([^A-Za-z0-9_]|$)" || true)
    inc=$(grep -nE "$heads" "$f" || true)
    if [ -n "$hits$inc" ]; then
        echo "$f: logs, prints or exits (the core returns errors; report through sq_report_fn):"
        printf '%s\n' "$hits" "$inc" | sed '/^$/d; s/^/  line /'
        status=1
    fi
done
if [ "$found" -lt 10 ]; then
    echo "only $found core files found under $src/lib: wrong source dir?"
    exit 1
fi
[ "$status" -eq 0 ] && echo "core quiet: $found files, no log, print or exit call"
exit "$status"
