#!/bin/sh
# Runs one libFuzzer target for a few seconds from its seed corpus and reports a result line.
f=$1; secs=${2:-20}
name=$(basename "$f")
corpus=${BUILD:-build}/corpus/$name
mkdir -p "$corpus"
[ -d "tests/fuzz/corpus/$name" ] && cp -n tests/fuzz/corpus/$name/* "$corpus"/ 2>/dev/null
if "$f" -max_total_time="$secs" -rss_limit_mb=2048 "$corpus" ; then
    echo "# plinth-result: 1 passed, 0 failed"
else
    echo "# plinth-result: 0 passed, 1 failed"; exit 1
fi
