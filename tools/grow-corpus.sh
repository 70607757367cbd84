#!/bin/sh
# Grows the checked-in fuzzing corpus: runs every target given for SECONDS
# (make fuzz), then keeps in tests/fuzz/corpus/NAME only the inputs that add
# coverage (libFuzzer's -merge=1 minimises the set).
# Usage: tools/grow-corpus.sh SECONDS build/fuzz/fuzz_*
set -e
secs=$1
shift
tools/run-fuzz.sh "$secs" "$@"
for t in "$@"; do
    name=$(basename "$t")
    keep=tests/fuzz/corpus/$name
    mkdir -p "$keep"
    "$t" -merge=1 -max_len=65536 "$keep" "build/fuzz/corpus-$name" > "build/fuzz/$name.merge.log" 2>&1
    echo "corpus $name: $(ls "$keep" | wc -l) inputs kept"
done
