#!/usr/bin/env bash
# quietly.sh LOG WHAT COMMAND...: run COMMAND with its output appended to LOG and say one line,
# WHAT and where the output went. On a terminal the line shows, in place, the last line the
# command wrote (cargo's "Compiling ..."), so a long build is seen to move. On a failure: the
# log's last lines, and the command's exit code.
set -uo pipefail
log=$1 what=$2
shift 2
mkdir -p "$(dirname "$log")"
printf '\n== %s: %s\n' "$what" "$*" >>"$log"
first=$(wc -l <"$log")  # this step's output starts after this line
if [ -t 1 ]; then
    "$@" >>"$log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        last=$(tail -n 1 "$log" | tr -d '\r' | cut -c1-60)
        printf '\r\033[K%s (output: %s) %s' "$what" "$log" "$last"
        sleep 1  # the refresh rate of the line, not a wait for anything
    done
    wait "$pid"
    status=$?
    printf '\r\033[K%s (output: %s)\n' "$what" "$log"
else
    printf '%s (output: %s)\n' "$what" "$log"
    "$@" >>"$log" 2>&1
    status=$?
fi
if [ "$status" -ne 0 ]; then
    tail -n +"$((first + 1))" "$log" | tail -n 30
    echo "failed: $what; the whole output is in $log"
fi
exit "$status"
