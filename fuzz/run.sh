#!/usr/bin/env bash
# Run each fuzz target for FUZZ_SECONDS (default 600) from its seeds; print libFuzzer's
# figures. A crash leaves its input under .fuzz/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SECONDS_EACH=${FUZZ_SECONDS:-600}
status=0
for target in ${FUZZ_TARGETS:-intake_body flow_file}; do
    work=.fuzz/$target
    mkdir -p "$work/corpus"
    echo "== fuzz/$target.py for ${SECONDS_EACH}s"
    if "$PY" "fuzz/$target.py" "$work/corpus" "fuzz/seeds/$target" \
        -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=2048 \
        -dict="fuzz/$target.dict" -artifact_prefix="$work/" -print_final_stats=1 \
        >"$work/log" 2>&1; then
        grep -E "^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)" \
            "$work/log" || true
        echo "   crashes: 0 (corpus: $(find "$work/corpus" -type f | wc -l) inputs)"
    else
        status=1
        tail -40 "$work/log"
        echo "   CRASH: see $work/ (log and the crash-* input)"
    fi
done
exit $status
