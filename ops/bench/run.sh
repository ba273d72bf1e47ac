#!/usr/bin/env bash
#
# ops/bench/run.sh - Kiln's benchmark. See ops/bench/README.md.
#
#     ops/bench/run.sh                     # every part
#     ops/bench/run.sh admission           # one part, or several:
#                                          #   admission overhead warm noop packages rollback events
#                                          #   dispatch scaleout reclaim ratelimit maintain storage
#                                          #   diagnostics (alone: no service started)
#     ops/bench/run.sh frameworks          # the framework matrix (never part of `all`):
#                                          #   KILN_BENCH_FRAMEWORKS=vite-vue,angular selects projects,
#                                          #   KILN_BENCH_FRAMEWORK_RUNS=1+3 cold+warm runs a side
#
# Starts a private PostgreSQL and Redis on free ports under
# target/kiln-bench/<pid> (stopped and removed on exit), builds the release
# binaries of kiln-bench (which runs the Kiln API and, for most parts, the
# builder in-process) and kiln-builder (the daemon processes of dispatch,
# scaleout and reclaim) and kiln-ops (the maintenance part), installs the
# BullMQ side's npm packages into ops/bench/node on first use, and runs the
# parts. Everything listens on 127.0.0.1 only. The pnpm store is shared across runs
# ($KILN_TOOLS/bench-pnpm-store), so only the very first run downloads the
# example's dependencies.
#
# Exit status: kiln-bench's (0 measured, 1 not measured, 3 a target missed with
# KILN_BENCH_STRICT=1), 2 for a bad argument.
set -euo pipefail

# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ROOT="$(kiln_root)"
BENCH_DIR="$ROOT/ops/bench"
cd "$ROOT"
STARTED=$SECONDS

want_bullmq=0
want_farm=0
if (($# == 0)); then
    want_bullmq=1
    want_farm=1
fi
for arg in "$@"; do
    case $arg in
    admission | dispatch | all) want_bullmq=1 want_farm=1 ;;
    overhead | warm | noop | packages | rollback | previews | events | scaleout | reclaim | ratelimit | maintain | storage | frameworks) want_farm=1 ;;
    diagnostics) ;;
    -h | --help)
        sed -n '3,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        kiln_log "unknown part '$arg': expected admission, overhead, warm, noop, packages, rollback, previews, events, dispatch, scaleout, reclaim, ratelimit, maintain, storage, diagnostics, frameworks or all"
        exit 2
        ;;
    esac
done

# --- Parts that need no service (diagnostics: parsing in process) --------------
if ((!want_farm)); then
    kiln_log "building kiln-bench (cargo build --release -p kiln-bench)"
    cargo build --release -p kiln-bench
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/kiln-bench"
    KILN_BENCH_REVISION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        KILN_BENCH_REVISION+="+changes"
    fi
    export KILN_BENCH_REVISION
    kiln_log "running: kiln-bench $* (no service needed; load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
    exec "$BIN" "$@"
fi

# --- Tools ------------------------------------------------------------------
ensure_postgres
ensure_redis
ensure_pnpm
ensure_bwrap
command -v node >/dev/null 2>&1 || kiln_die "node is missing (ensure_pnpm installs it with npm)"

# The BullMQ side: bullmq + ioredis from ops/bench/node/package-lock.json.
if ((want_bullmq)); then
    stamp="$BENCH_DIR/node/node_modules/.package-lock.json"
    if [[ ! -f $stamp || $BENCH_DIR/node/package-lock.json -nt $stamp ]]; then
        kiln_log "installing the BullMQ side's packages (npm ci in ops/bench/node)"
        # npm 11 refuses `npm ci` on this lockfile (it lists msgpackr-extract's optional
        # per-platform packages only for linux-x64, which `npm install` accepts as in sync);
        # `npm install --no-save` installs the same pinned versions and leaves the lockfile as is.
        (cd "$BENCH_DIR/node" && { npm ci --no-fund --no-audit --loglevel=error >/dev/null 2>&1 ||
            npm install --no-save --no-fund --no-audit --loglevel=error >/dev/null; }) ||
            kiln_die "installing ops/bench/node's packages failed"
    fi
fi

# --- The bench binary -----------------------------------------------------------
kiln_log "building kiln-bench, kiln-builder and kiln-ops (cargo build --release -p kiln-bench -p kiln-builder -p kiln-ops)"
cargo build --release -p kiln-bench -p kiln-builder -p kiln-ops
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/kiln-bench"
[[ -x $BIN ]] || kiln_die "cargo build did not produce $BIN"
[[ -x $(dirname "$BIN")/kiln-builder ]] || kiln_die "cargo build did not produce $(dirname "$BIN")/kiln-builder"
[[ -x $(dirname "$BIN")/kiln-ops ]] || kiln_die "cargo build did not produce $(dirname "$BIN")/kiln-ops"
# The pnpm shim of the dispatch, scaleout and reclaim parts (ops/bench/src/bin/pnpm-shim.rs,
# std only) once more, linked statically: it then reaches its clock read about 0.35 ms after its
# exec instead of 0.7 ms (no dynamic loader), which is part of what those parts measure.
SHIM_SRC="$BENCH_DIR/src/bin/pnpm-shim.rs"
SHIM="$(dirname "$BIN")/kiln-bench-pnpm-shim-static"
if [[ ! -x $SHIM || $SHIM_SRC -nt $SHIM ]]; then
    rustc --edition 2021 -C opt-level=3 -C panic=abort -C target-feature=+crt-static \
        -o "$SHIM" "$SHIM_SRC" ||
        kiln_log "cannot link the pnpm shim statically; using the dynamically linked one"
fi
if [[ -x $SHIM ]]; then
    export KILN_BENCH_PNPM_SHIM="$SHIM"
fi

# --- Service folder (and the leftovers of earlier runs that were killed) --------
BASE="$ROOT/target/kiln-bench"
reap_service_dirs "$BASE"
SERVICES_DIR="$(make_service_dir "$BASE" kiln-bench-services)"

# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
    local status=$?
    set +e
    if [[ -n ${BENCH_PID:-} ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill -TERM "$BENCH_PID" 2>/dev/null
        wait "$BENCH_PID" 2>/dev/null
    fi
    stop_redis "$SERVICES_DIR/redis"
    stop_postgres "$SERVICES_DIR/postgres" --immediate
    rm -rf "$SERVICES_DIR"
    [[ -n ${BENCH_OWN_TMP:-} ]] && rm -rf "$BENCH_OWN_TMP"
    kiln_log "whole run: $((SECONDS - STARTED)) s"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Services -----------------------------------------------------------------
read -r PG_PORT REDIS_PORT < <(free_port 2)
# At the durability deploy/ ships, for Kiln and its comparisons alike: PostgreSQL with fsync and
# synchronous commit on, Redis append-only.
start_postgres "$SERVICES_DIR/postgres" "$PG_PORT" --durable
kiln_log "postgres started on 127.0.0.1:$PG_PORT (durable: fsync and synchronous commit on)"
start_redis "$SERVICES_DIR/redis" "$REDIS_PORT" --durable
kiln_log "redis    started on 127.0.0.1:$REDIS_PORT (append-only, fsync every second)"

export KILN_BENCH_DATABASE_URL="postgres://kiln@127.0.0.1:$PG_PORT/postgres"
export KILN_BENCH_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
# The farms' work folder, with the shared pnpm store inside it (so sandboxed installs
# hard-link from the store, as in production; see docs/design/sandbox.md).
KILN_BENCH_PNPM_STORE="$(kiln_build_dir bench-work)/pnpm-store"
export KILN_BENCH_PNPM_STORE
if [[ -z ${KILN_BENCH_TMP:-} ]]; then
    # Removed on exit (the builds' workspaces are in it: a folder builds can reach).
    BENCH_OWN_TMP="$(kiln_build_dir "bench-tmp-$$")"
    KILN_BENCH_TMP="$BENCH_OWN_TMP"
fi
export KILN_BENCH_TMP
# What was measured, for the summary: the commit, and whether the tree had changes.
KILN_BENCH_REVISION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    KILN_BENCH_REVISION+="+changes"
fi
export KILN_BENCH_REVISION
mkdir -p "$KILN_BENCH_PNPM_STORE" "$KILN_BENCH_TMP"

kiln_log "running: kiln-bench $* (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
# In the background plus `wait`, so that a SIGTERM is handled right away.
"$BIN" "$@" &
BENCH_PID=$!
status=0
wait "$BENCH_PID" || status=$?
BENCH_PID=""
exit "$status"
