#!/usr/bin/env bash
#
# ops/fuzz.sh - fuzz Kiln's parsers of untrusted input (fuzz/, cargo-fuzz + libFuzzer).
#
#     ops/fuzz.sh --short               # every target for 20 s (what ops/test.sh runs)
#     ops/fuzz.sh 3600                  # every target for an hour
#     ops/fuzz.sh 600 signature queries # some targets for ten minutes each
#
# Installs cargo-fuzz when missing (`cargo install cargo-fuzz --locked`), builds the targets
# once, then runs each for the given time on the stable toolchain: cargo-fuzz passes rustc
# flags that stable accepts only with RUSTC_BOOTSTRAP=1, set here for its builds alone. Each
# target starts from its committed seeds (fuzz/seeds/<target>, never written) and the corpus of
# earlier runs (fuzz/target/corpus/<target>, kept). Prints a table: executions, executions per
# second, corpus size and the result. A crash, panic, failed assertion or time-out leaves its
# input in fuzz/artifacts/<target>/ and makes the exit status 1 (2 for a bad argument).
#
# KILN_FUZZ_SANITIZER=address builds with AddressSanitizer (slower; the code is safe Rust, so
# the default is none).
set -euo pipefail

# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(kiln_root)"
FUZZ="$ROOT/fuzz"

secs=""
targets=()
for arg in "$@"; do
    case $arg in
    --short) secs=20 ;;
    -h | --help)
        sed -n '3,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    [0-9]*) secs=$arg ;;
    -*)
        echo "ops/fuzz.sh: unknown option $arg (see --help)" >&2
        exit 2
        ;;
    *) targets+=("$arg") ;;
    esac
done
if [[ -z $secs ]]; then
    echo "ops/fuzz.sh: say how long: --short (20 s a target) or SECONDS (see --help)" >&2
    exit 2
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    kiln_log "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi

cd "$FUZZ"
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo fuzz list)
fi
sanitizer=${KILN_FUZZ_SANITIZER:-none}

# cargo-fuzz asks rustc for -Z flags (sanitizers, coverage options); stable rustc takes them
# only with RUSTC_BOOTSTRAP=1. Scoped to these commands: nothing else is built with it.
fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }

kiln_log "building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)"
started=$SECONDS
fuzz build --sanitizer "$sanitizer" "${targets[@]:0:1}" >/dev/null
for t in "${targets[@]:1}"; do
    fuzz build --sanitizer "$sanitizer" "$t" >/dev/null
done
kiln_log "built in $((SECONDS - started)) s"

# Interrupted: stop the running target (cargo-fuzz and the fuzzer it started, one process group).
RUN_PID=""
stop_run() {
    if [[ -n $RUN_PID ]]; then
        kill -TERM -- "-$RUN_PID" 2>/dev/null || true
    fi
}
trap 'stop_run; exit 143' TERM
trap 'stop_run; exit 130' INT

logs="$FUZZ/target/fuzz-logs"
mkdir -p "$logs"
status=0
rows=()
for t in "${targets[@]}"; do
    corpus="$FUZZ/target/corpus/$t"
    mkdir -p "$corpus" "$FUZZ/artifacts/$t"
    kiln_log "fuzzing $t for $secs s"
    result=ok
    # libFuzzer: the first corpus folder takes new inputs; the seeds are only read. In the
    # background plus `wait`, so that a SIGTERM (ops/test.sh interrupted) stops it at once; in a
    # session of its own, so that the fuzzer cargo-fuzz starts is stopped with it.
    RUSTC_BOOTSTRAP=1 setsid cargo fuzz run --sanitizer "$sanitizer" "$t" "$corpus" "$FUZZ/seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 \
        -artifact_prefix="$FUZZ/artifacts/$t/" >"$logs/$t.log" 2>&1 &
    RUN_PID=$!
    if ! wait "$RUN_PID"; then
        result=FAILED
        status=1
        grep -E "panicked|ERROR: libFuzzer|SUMMARY|Test unit written|assert" "$logs/$t.log" | head -20 >&2 || true
    fi
    runs=$(awk '/stat::number_of_executed_units:/ {s += $2} END {print s + 0}' "$logs/$t.log")
    rate=$(awk '/stat::average_exec_per_sec:/ {s += $2} END {print s + 0}' "$logs/$t.log")
    inputs=$(find "$corpus" -type f | wc -l)
    rows+=("$(printf '%-18s %6s %12s %10s %8s  %s' "$t" "$secs" "$runs" "$rate" "$inputs" "$result")")
done

printf '\n%-18s %6s %12s %10s %8s  %s\n' target secs executions "exec/s" corpus result
printf '%s\n' "${rows[@]}"
if ((status != 0)); then
    echo "ops/fuzz.sh: a target failed; its input is in fuzz/artifacts/<target>/, its log in fuzz/target/fuzz-logs/" >&2
fi
exit "$status"
