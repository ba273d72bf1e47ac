#!/usr/bin/env bash
#
# ops/package.sh - builds the Debian packages of Kiln's three binaries with cargo-deb:
#
#   kiln-api      the API and preview server, kiln-api.service
#   kiln-builder  the builder daemon, kiln-builder.service, kiln-builder-maintain.{service,timer}
#   kiln-ops      the nightly maintenance, kiln-maintain.{service,timer}; and what every host
#                 shares: /etc/kiln/kiln.env (a conffile) and the `kiln` system user
#
# Their contents are [package.metadata.deb] in api/, builder/ and ops/maintain/Cargo.toml; the
# units come from deploy/systemd, the maintainer script from deploy/debian. One `cargo build`
# compiles the three binaries, then `cargo deb --no-build` packs each one.
#
#   ops/package.sh              release build, packages in target/debian/
#   ops/package.sh --out DIR    packages in DIR
#   ops/package.sh --debug      packs the debug binaries (`cargo build`) instead: stripped, but
#                               unoptimised; for checks only (ops/deploy-check.sh), never a release
#
# Installs cargo-deb (pinned: KILN_CARGO_DEB_VERSION in ops/lib.sh) when missing. Prints the
# packages' paths, one a line.
set -euo pipefail

# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(kiln_root)"
cd "$ROOT"

out="$ROOT/target/debian"
profile=release
while (($#)); do
    case $1 in
    --out)
        [[ $# -ge 2 ]] || kiln_die "--out needs a folder"
        out="$2"
        shift 2
        ;;
    --debug)
        profile=dev
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    *) kiln_die "unknown argument: $1 (see --help)" ;;
    esac
done

ensure_cargo_deb
mkdir -p "$out"

packages=(kiln-api kiln-builder kiln-ops)
build=(cargo build --locked)
deb=(cargo deb --no-build --output "$out")
if [[ $profile == release ]]; then
    build+=(--release)
else
    # --quiet: cargo-deb warns that the dev profile is not meant for releases, which is the point
    # here. --fast: lighter compression, as these packages are unpacked once and thrown away.
    deb+=(--profile dev --fast --quiet)
fi
for p in "${packages[@]}"; do
    build+=(-p "$p")
done

kiln_log "building: ${build[*]}"
"${build[@]}" >&2
for p in "${packages[@]}"; do
    # cargo-deb prints the package's path last.
    "${deb[@]}" -p "$p" | tail -n 1
done
