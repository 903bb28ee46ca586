#!/bin/sh
# The library core's compiled objects call nothing that logs, prints, aborts
# or exits, and nothing of the daemon's. core_quiet_test.sh reads the source;
# this reads what the compiler made of it, so a macro, an alias, a function
# pointer, assert(), a write to fd 2 or a daemon header cannot hide a call.
#   core_symbols_test.sh OBJECT...   (the core's objects: lib/*.c, not lib/daemon/)
set -eu
# ctest hands $<TARGET_OBJECTS:...> over as one ;-separated argument
# shellcheck disable=SC2046
set -- $(printf '%s\n' "$@" | tr ';' '\n')
[ "$#" -ge 10 ] || { echo "only $# core objects given: wrong target?"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# libc and libpthread calls that print, log, abort, end or replace the process
# (with glibc's _FORTIFY_SOURCE and _unlocked twins, and __overflow, which
# putc's inline calls), and the standard streams
deny='^(__)?(v?f?printf|v?dprintf|puts|fputs|putchar|fputc|putc|fwrite|putw|fputws|fputwc|putwc|putwchar|v?fwprintf|v?wprintf|perror|psignal|psiginfo|exit|_exit|_Exit|quick_exit|abort|raise|kill|tgkill|pthread_kill|pthread_exit|write|writev|pwrite|send|assert_fail|assert_perror_fail|assert|syslog|vsyslog|openlog|err|errx|verr|verrx|warn|warnx|vwarn|vwarnx|error|error_at_line|backtrace_symbols_fd|stdout|stderr|_IO_2_1_stdout_|_IO_2_1_stderr_|herror|overflow|execl|execle|execlp|execv|execve|execvp|execvpe|fexecve|system|popen)(_chk|_unlocked)?$'
status=0
: >"$tmp/defined"
for o in "$@"; do
    nm --defined-only "$o" | awk 'NF == 3 {print $3}' >>"$tmp/defined"
done
sort -u -o "$tmp/defined" "$tmp/defined"
for o in "$@"; do
    nm -u "$o" | awk '{print $NF}' | sed 's/@.*//' | sort -u >"$tmp/undef"
    bad=$(grep -E "$deny" "$tmp/undef" || true)
    # sq_* names the core uses must be the core's own (not the daemon's log,
    # runtime or manager)
    foreign=$(grep -E '^sq_' "$tmp/undef" | comm -23 - "$tmp/defined" || true)
    if [ -n "$bad$foreign" ]; then
        echo "$(basename "$o"): calls what the core must not (the core returns errors; report through sq_report_fn):"
        printf '%s\n' "$bad" "$foreign" | sed '/^$/d; s/^/  /'
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "core objects: $# files, no print, log, abort or exit symbol, no daemon symbol"
exit "$status"
