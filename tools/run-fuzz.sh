#!/bin/sh
# Runs every libFuzzer target given for SECONDS each, on a corpus kept under
# build/fuzz/corpus-NAME, seeded from tests/fuzz/seeds-NAME (hand-written
# inputs, crash regressions) and tests/fuzz/corpus/NAME (grown by long runs,
# see tools/grow-corpus.sh) when present.
set -e
secs=$1
shift
fail=0
for t in "$@"; do
    name=$(basename "$t")
    corpus=build/fuzz/corpus-$name
    mkdir -p "$corpus"
    seeds=tests/fuzz/seeds-${name#fuzz_}
    [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
    grown=tests/fuzz/corpus/$name
    [ -d "$grown" ] && cp -n "$grown"/* "$corpus"/ 2>/dev/null || true
    if "$t" -max_total_time="$secs" -max_len=65536 -timeout=10 -print_final_stats=1 \
        "$corpus" > "build/fuzz/$name.log" 2>&1; then
        runs=$(awk '/stat::number_of_executed_units/ {print $2}' "build/fuzz/$name.log")
        echo "fuzz $name: ${secs}s, $runs runs, no crash"
    else
        echo "fuzz $name: FAILED, see build/fuzz/$name.log"
        tail -40 "build/fuzz/$name.log"
        fail=1
    fi
done
exit $fail
