#!/usr/bin/env bash
#
# ops/deploy-check.sh - checks what can be checked of deploy/ on one machine:
#
#   - every systemd unit in deploy/systemd with `systemd-analyze verify` (the binaries replaced
#     by stand-ins in a private folder); any remark at all fails the check, since verify exits 0
#     even on an unknown key;
#   - deploy/nginx/kiln.conf with `nginx -t`, inside a private main configuration, with a
#     self-signed certificate in place of the real ones;
#   - deploy/compose.yaml parsed and checked against the compose schema (`docker-compose
#     config`, no Docker daemon needed), with stand-in secrets;
#   - deploy/docker/Dockerfile.*: each binary they build is a package of the workspace;
#   - deploy/prometheus/kiln-alerts.yml with `promtool check rules`, and its unit tests
#     (kiln-alerts.test.yml: the alerts fire, and stay quiet, on made-up series) with
#     `promtool test rules`.
#
# Installs systemd-analyze, nginx, openssl and docker-compose from Debian's packages when missing,
# and unpacks promtool from Debian's prometheus package (nothing is started). ops/test.sh runs it in a whole-suite run. Exit 0 when every check passed.
set -euo pipefail

# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(kiln_root)"
ensure_deploy_checkers
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failed=0

# --- systemd units ------------------------------------------------------------------
mkdir -p "$tmp/bin" "$tmp/units"
for b in kiln-api kiln-builder kiln-ops; do
    printf '#!/bin/sh\n' >"$tmp/bin/$b"
    chmod +x "$tmp/bin/$b"
done
for unit in "$ROOT"/deploy/systemd/*.service "$ROOT"/deploy/systemd/*.timer; do
    sed "s|/usr/local/bin/|$tmp/bin/|g" "$unit" >"$tmp/units/$(basename "$unit")"
done
if out="$(cd "$tmp/units" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./* 2>&1)" && [[ -z $out ]]; then
    kiln_log "systemd units: $(find "$tmp/units" -type f | wc -l) verified, no remark"
else
    kiln_log "systemd units: systemd-analyze verify says:"
    printf '%s\n' "$out" >&2
    failed=1
fi

# --- nginx --------------------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=kiln-deploy-check \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >/dev/null 2>&1
sed -e "s|/etc/kiln/tls/[^;]*\.crt|$tmp/cert.pem|" -e "s|/etc/kiln/tls/[^;]*\.key|$tmp/key.pem|" \
    "$ROOT/deploy/nginx/kiln.conf" >"$tmp/kiln.conf"
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<CONF
pid $tmp/nginx/nginx.pid;
error_log stderr;
events {}
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    include $tmp/kiln.conf;
}
CONF
if out="$("$NGINX" -t -q -p "$tmp/nginx" -c "$tmp/nginx.conf" 2>&1)" && [[ -z $out ]]; then
    kiln_log "nginx: deploy/nginx/kiln.conf passes nginx -t ($("$NGINX" -v 2>&1 | sed 's/.*\///'))"
else
    kiln_log "nginx: nginx -t says:"
    printf '%s\n' "$out" >&2
    failed=1
fi

# --- compose ------------------------------------------------------------------------
if out="$(cd "$ROOT/deploy" && POSTGRES_PASSWORD=x REDIS_PASSWORD=x KILN_API_TOKENS=x KILN_HMAC_SECRET=x \
    docker-compose -f compose.yaml config -q 2>&1)" && [[ -z $out ]]; then
    kiln_log "compose: deploy/compose.yaml parses ($(docker-compose version --short 2>/dev/null))"
else
    kiln_log "compose: docker-compose config says:"
    printf '%s\n' "$out" >&2
    failed=1
fi

# --- Dockerfiles --------------------------------------------------------------------------
# The images cannot be built here (no Docker daemon); what they name must exist.
named_ok=1
for dockerfile in "$ROOT"/deploy/docker/Dockerfile.*; do
    for pkg in $(grep -o -- '-p [a-z-]*' "$dockerfile" | awk '{ print $2 }'); do
        if ! grep -q "^name = \"$pkg\"" "$ROOT"/*/Cargo.toml "$ROOT"/ops/*/Cargo.toml; then
            kiln_log "$(basename "$dockerfile"): no package $pkg in the workspace"
            failed=1
            named_ok=0
        fi
    done
done
if ((named_ok)); then
    kiln_log "Dockerfiles: $(find "$ROOT/deploy/docker" -name 'Dockerfile.*' | wc -l) name packages of the workspace"
fi

# --- Prometheus rules ------------------------------------------------------------------
PROMTOOL="$(ensure_promtool)"
if out="$(cd "$ROOT/deploy/prometheus" && "$PROMTOOL" check rules kiln-alerts.yml 2>&1 &&
    "$PROMTOOL" test rules kiln-alerts.test.yml 2>&1)"; then
    kiln_log "prometheus: kiln-alerts.yml passes promtool check and its unit tests ($("$PROMTOOL" --version 2>&1 | head -1 | awk '{ print $3 }'))"
else
    kiln_log "prometheus: promtool says:"
    printf '%s\n' "$out" >&2
    failed=1
fi

exit "$failed"
