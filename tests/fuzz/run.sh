#!/usr/bin/env bash
# run.sh BUILD SECONDS JOBS TARGET...: runs each libFuzzer target (built by make fuzz into
# BUILD/bin/fuzz_<target>) for SECONDS, JOBS targets at a time, then prints one table row a
# target: executions, their rate, the corpus it grew, coverage, and crashes found.
# Exit status 1 when any target crashed (the inputs are in BUILD/crashes/).
set -u
B=$1 LIMIT=$2 JOBS=$3
shift 3
mkdir -p "$B/corpus" "$B/crashes" "$B/logs"
rm -rf "$B/seeds"
"$B/bin/fuzz_seeds" "$B/seeds" || { echo "run.sh: writing the seeds failed" >&2; exit 1; }

one() {   # target
    local t=$1
    mkdir -p "$B/corpus/$t" "$B/seeds/$t"
    local t0=$SECONDS
    # -malloc_limit_mb: one allocation over 512 MB from an input of a few KB is a finding
    # (every length read from a file is bounded before allocating); -timeout: 10 s an input.
    "$B/bin/fuzz_$t" -max_total_time="$LIMIT" -malloc_limit_mb=512 -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 -artifact_prefix="$B/crashes/$t-" \
        "$B/corpus/$t" "$B/seeds/$t" "tests/fuzz/corpus/$t" > "$B/logs/$t.log" 2>&1
    echo "$?" > "$B/logs/$t.rc"
    echo $((SECONDS - t0)) > "$B/logs/$t.seconds"
}
export -f one
export B LIMIT
printf '%s\n' "$@" | xargs -P "$JOBS" -I{} bash -c 'one {}'

failed=0
printf '| target | seconds | executions | exec/s | corpus | coverage | crashes |\n'
printf '|---|---|---|---|---|---|---|\n'
for t in "$@"; do
    log="$B/logs/$t.log"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corpus=$(find "$B/corpus/$t" -type f | wc -l)
    crashes=$(find "$B/crashes" -name "$t-*" -type f | wc -l)
    [ "$(cat "$B/logs/$t.rc")" = 0 ] || failed=1
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$(cat "$B/logs/$t.seconds")" "${execs:-?}" \
        "${rate:-?}" "$corpus" "${cov:-?}" "$crashes"
done
[ $failed = 0 ] || echo "run.sh: a target failed; see $B/logs/ and $B/crashes/" >&2
exit $failed
