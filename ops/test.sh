#!/usr/bin/env bash
#
# ops/test.sh - run Kiln's whole test suite on a fresh machine.
#
# Installs what is missing (redis, pnpm, Garage), starts a private PostgreSQL,
# Redis and Garage on free ports under target/kiln-test-services/<pid>,
# exports their addresses as KILN_TEST_* variables, runs
#
#     cargo test --workspace "$@"
#
# and stops the services and removes their directory on exit. With no arguments
# it then checks deploy/ (ops/deploy-check.sh: systemd-analyze verify, nginx -t;
# KILN_DEPLOY_CHECK=off skips it), runs the chaos suite's short form (ops/chaos/run.sh --short, on
# services of its own; KILN_CHAOS=off skips it) and the fuzz targets' short form
# (ops/fuzz.sh --short, 20 s a target; KILN_FUZZ=off skips it). The exit status
# is cargo's, or the first of the chaos and fuzz runs' that failed when cargo
# passed. Extra arguments go to cargo test, e.g.
#
#     ops/test.sh -- --nocapture          # whole workspace
#     ops/test.sh -p kiln-api some_test   # one package: --workspace is dropped,
#                                         # since cargo would ignore -p with it
#
set -euo pipefail

# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(kiln_root)"
cd "$ROOT"

# --- Tools ------------------------------------------------------------------
ensure_postgres
ensure_redis
ensure_pnpm
ensure_bwrap
ensure_garage
ensure_openapi_tools

# --- Service folder (and the leftovers of earlier runs that were killed) --------
SERVICES_BASE="$ROOT/target/kiln-test-services"
reap_service_dirs "$SERVICES_BASE"
SERVICES_DIR="$(make_service_dir "$SERVICES_BASE" kiln-test-services)"

# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
    local status=$?
    # Don't let a failing stop hide cargo's status.
    set +e
    # Interrupted while the tests run: stop cargo and the test binaries first.
    if [[ -n ${CARGO_PID:-} ]] && kill -0 "$CARGO_PID" 2>/dev/null; then
        pkill -TERM -P "$CARGO_PID" 2>/dev/null
        kill -TERM "$CARGO_PID" 2>/dev/null
        wait "$CARGO_PID" 2>/dev/null
    fi
    # A short form running: its script stops what it started.
    if [[ -n ${SHORT_PID:-} ]] && kill -0 "$SHORT_PID" 2>/dev/null; then
        kill -TERM "$SHORT_PID" 2>/dev/null
        wait "$SHORT_PID" 2>/dev/null
    fi
    stop_garage "$SERVICES_DIR/garage"
    stop_redis "$SERVICES_DIR/redis"
    stop_postgres "$SERVICES_DIR/postgres" --immediate
    rm -rf "$SERVICES_DIR"
    exit "$status"
}
trap cleanup EXIT
# Turn Ctrl-C / kill into a normal exit so the EXIT trap stops the services.
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Services -----------------------------------------------------------------
read -r PG_PORT REDIS_PORT S3_PORT GARAGE_RPC_PORT < <(free_port 4)

start_postgres "$SERVICES_DIR/postgres" "$PG_PORT"
kiln_log "postgres  started on 127.0.0.1:$PG_PORT (user kiln, trust auth, fsync off)"

start_redis "$SERVICES_DIR/redis" "$REDIS_PORT"
kiln_log "redis     started on 127.0.0.1:$REDIS_PORT (no persistence)"

start_garage "$SERVICES_DIR/garage" "$S3_PORT" "$GARAGE_RPC_PORT"
kiln_log "garage    started on 127.0.0.1:$S3_PORT (S3, bucket $KILN_GARAGE_BUCKET, region auto; rpc $GARAGE_RPC_PORT)"

# --- Environment for the tests -----------------------------------------------
# Admin URL: tests create (and drop) their own databases.
export KILN_TEST_DATABASE_URL="postgres://kiln@127.0.0.1:$PG_PORT/postgres"
export KILN_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export KILN_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
export KILN_TEST_S3_BUCKET="$KILN_GARAGE_BUCKET"
export KILN_TEST_S3_REGION="auto"
export KILN_TEST_S3_ACCESS_KEY="$KILN_GARAGE_ACCESS_KEY"
export KILN_TEST_S3_SECRET_KEY="$KILN_GARAGE_SECRET_KEY"
# Shared across runs so pnpm installs in tests stay warm.
KILN_TEST_PNPM_STORE="$(kiln_build_dir test-pnpm-store)"
export KILN_TEST_PNPM_STORE

# --- Tests --------------------------------------------------------------------
# `cargo test --workspace -p X` tests every package, so when the caller picks
# packages with -p/--package, leave --workspace out.
scope=(--workspace)
for arg in "$@"; do
    [[ $arg == -- ]] && break
    case $arg in
    -p | -p?* | --package | --package=*)
        scope=()
        break
        ;;
    esac
done

kiln_log "running: cargo test ${scope[*]} $*"
# In the background plus `wait`, so that a SIGTERM is handled right away
# (bash defers traps until a foreground command finishes).
cargo test "${scope[@]}" "$@" &
CARGO_PID=$!
status=0
wait "$CARGO_PID" || status=$?
CARGO_PID=""

# --- Chaos and fuzzing (short forms) ------------------------------------------------
# A whole-suite run (no arguments) also runs the chaos suite's short form, on services of its
# own (ops/chaos/README.md), and every fuzz target for 20 s (fuzz/README.md; the targets' first
# build takes several minutes); a subset such as `ops/test.sh -p kiln-api x` stays quick. The
# status is cargo's unless cargo passed and one of these failed. KILN_CHAOS=off and KILN_FUZZ=off
# skip them.
short_form() {
    kiln_log "running: ${*#"$KILN_OPS_DIR/"}"
    "$@" &
    SHORT_PID=$!
    local result=0
    wait "$SHORT_PID" || result=$?
    SHORT_PID=""
    if ((status == 0)); then
        status=$result
    fi
}
# deploy/'s units and nginx configuration, checked (ops/deploy-check.sh; a few seconds).
if (($# == 0)) && [[ ${KILN_DEPLOY_CHECK:-on} != off ]]; then
    short_form "$KILN_OPS_DIR/deploy-check.sh"
fi
if (($# == 0)) && [[ ${KILN_CHAOS:-on} != off ]]; then
    short_form "$KILN_OPS_DIR/chaos/run.sh" --short
fi
if (($# == 0)) && [[ ${KILN_FUZZ:-on} != off ]]; then
    # The fuzz targets build apart (their own target folder, about 3 GB). On a machine short of
    # disk, the debug build the tests and chaos runs used goes first: it is no longer needed,
    # and a full disk would fail the run.
    free_kb=$(df -Pk "$ROOT/target" | awk 'NR == 2 { print $4 }')
    kiln_log "disk: $((free_kb / 1024 / 1024)) GB free before the fuzz build"
    if ((free_kb < ${KILN_FUZZ_MIN_FREE_GB:-8} * 1024 * 1024)); then
        kiln_log "less than ${KILN_FUZZ_MIN_FREE_GB:-8} GB free: removing target/debug first"
        rm -rf "$ROOT/target/debug"
    fi
    short_form "$KILN_OPS_DIR/fuzz.sh" --short
fi
exit "$status"
