#!/usr/bin/env bash
#
# ops/down.sh - stop what ops/up.sh started: the API, the builder, Redis and
# PostgreSQL. Keeps all data in .kiln/. Safe to run when nothing is running.
#
set -euo pipefail

# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KILN_DIR="$(kiln_root)/.kiln"

if [[ ! -d $KILN_DIR ]]; then
    kiln_log "nothing to stop (.kiln/ does not exist)"
    exit 0
fi

# Application processes first, so they don't log connection errors while
# their database and Redis go away.
kiln_stop_pidfile "$KILN_DIR/run/builder.pid" kiln-builder 30
kiln_log "builder stopped"
kiln_stop_pidfile "$KILN_DIR/run/api.pid" kiln-api 30
kiln_log "api stopped"

stop_redis "$KILN_DIR/redis"
kiln_log "redis stopped"
stop_postgres "$KILN_DIR/postgres"
kiln_log "postgres stopped"
