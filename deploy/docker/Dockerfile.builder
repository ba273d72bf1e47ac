# kiln-builder: the build daemon, with Node.js, pnpm and bubblewrap. Build from the repository
# root:
#   docker build -f deploy/docker/Dockerfile.builder -t kiln-builder .
# It runs as root in the container and runs every build as nobody in bubblewrap namespaces,
# which needs user namespaces inside the container: run it with
#   --security-opt seccomp=unconfined --security-opt apparmor=unconfined --cap-add SYS_ADMIN
# (compose.yaml does). Without them, set KILN_SANDBOX=off: builds then run as nobody with
# rlimits only, and the builder says so at start-up. A dedicated builder host (systemd unit)
# confines builds best.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p kiln-builder

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        ca-certificates nodejs npm bubblewrap util-linux git \
    && npm install -g pnpm@10 \
    && npm cache clean --force \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/kiln-builder /usr/local/bin/kiln-builder
ENV KILN_DATA_DIR=/var/lib/kiln
VOLUME /var/lib/kiln
# SIGTERM drains: running builds finish (up to KILN_DRAIN_SECS), the rest go back to the queue.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/kiln-builder"]
