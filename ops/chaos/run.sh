#!/usr/bin/env bash
#
# ops/chaos/run.sh - Kiln's chaos suite. See ops/chaos/README.md.
#
#     ops/chaos/run.sh                  # the full run: 200 builds under kill -9, and the rest
#     ops/chaos/run.sh --short          # the short form ops/test.sh runs (debug binaries)
#     ops/chaos/run.sh [--short] [--seed N] [kills redis postgres partition cancel]
#
# Starts a private PostgreSQL and Redis (append-only file, fsync every second) on free ports
# under target/kiln-chaos/<pid> (stopped and removed on exit; the scenarios' process logs are
# kept in target/kiln-chaos-logs), builds kiln-api, kiln-builder and kiln-chaos
# (release for the full run, debug for --short, which reuses the test build), and runs
# kiln-chaos, which restarts those services itself through ops/lib.sh.
#
# Exit status: kiln-chaos's (0 every invariant held, 1 one did not), 2 for a bad argument.
set -euo pipefail

# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ROOT="$(kiln_root)"
cd "$ROOT"
STARTED=$SECONDS

profile=release
for arg in "$@"; do
    case $arg in
    --short) profile=debug ;;
    -h | --help)
        sed -n '3,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    esac
done

# --- Tools ------------------------------------------------------------------
ensure_postgres
ensure_redis
ensure_pnpm
ensure_bwrap
command -v node >/dev/null 2>&1 || kiln_die "node is missing (ensure_pnpm installs it with npm)"

# --- The binaries -------------------------------------------------------------
build=(cargo build -p kiln-api -p kiln-builder -p kiln-chaos)
[[ $profile == release ]] && build+=(--release)
kiln_log "building: ${build[*]}"
"${build[@]}"
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/$profile"
[[ -x $BIN_DIR/kiln-chaos ]] || kiln_die "cargo build did not produce $BIN_DIR/kiln-chaos"

# --- Service folder (and the leftovers of earlier runs that were killed) --------
BASE="$ROOT/target/kiln-chaos"
LOGS="$ROOT/target/kiln-chaos-logs"
reap_service_dirs "$BASE"
SERVICES_DIR="$(make_service_dir "$BASE" kiln-chaos-services)"

# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
    local status=$?
    set +e
    if [[ -n ${CHAOS_PID:-} ]] && kill -0 "$CHAOS_PID" 2>/dev/null; then
        kill -TERM "$CHAOS_PID" 2>/dev/null
        wait "$CHAOS_PID" 2>/dev/null
    fi
    if [[ -n ${KILN_CHAOS_TMP:-} && -d $KILN_CHAOS_TMP ]]; then
        rm -rf "$LOGS"
        mkdir -p "$LOGS"
        (cd "$KILN_CHAOS_TMP" && find . -path '*/logs/*.log' -exec cp --parents {} "$LOGS/" \;)
        kiln_log "the scenarios' process logs are in $LOGS"
    fi
    stop_redis "$SERVICES_DIR/redis"
    stop_postgres "$SERVICES_DIR/postgres" --immediate
    rm -rf "$SERVICES_DIR"
    [[ -n ${KILN_CHAOS_TMP:-} ]] && rm -rf "$KILN_CHAOS_TMP"
    kiln_log "whole chaos run: $((SECONDS - STARTED)) s"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Services -----------------------------------------------------------------
read -r PG_PORT REDIS_PORT < <(free_port 2)
start_postgres "$SERVICES_DIR/postgres" "$PG_PORT"
kiln_log "postgres started on 127.0.0.1:$PG_PORT"
start_redis "$SERVICES_DIR/redis" "$REDIS_PORT" --durable
kiln_log "redis    started on 127.0.0.1:$REDIS_PORT (appendonly yes, appendfsync everysec)"

export KILN_CHAOS_DATABASE_URL="postgres://kiln@127.0.0.1:$PG_PORT/postgres"
export KILN_CHAOS_PG_DIR="$SERVICES_DIR/postgres" KILN_CHAOS_PG_PORT="$PG_PORT"
export KILN_CHAOS_REDIS_DIR="$SERVICES_DIR/redis" KILN_CHAOS_REDIS_PORT="$REDIS_PORT"
export KILN_CHAOS_BIN_DIR="$BIN_DIR"
export KILN_CHAOS_LIB_SH="$KILN_OPS_DIR/lib.sh"
KILN_CHAOS_PNPM_STORE="$(kiln_build_dir chaos-pnpm-store)"
# Removed on exit (the builds' workspaces are in it: a folder builds can reach).
KILN_CHAOS_TMP="$(kiln_build_dir "chaos-tmp-$$")"
export KILN_CHAOS_PNPM_STORE KILN_CHAOS_TMP

kiln_log "running: kiln-chaos $* (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
# In the background plus `wait`, so that a SIGTERM is handled right away.
"$BIN_DIR/kiln-chaos" "$@" &
CHAOS_PID=$!
status=0
wait "$CHAOS_PID" || status=$?
CHAOS_PID=""
exit "$status"
