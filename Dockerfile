# Images of the hub and the operator for people who build with Docker (or podman/buildah):
#
#   docker build --target hub      -t ghcr.io/socketio-hub/socketio-hub:0.1.0 .
#   docker build --target operator -t ghcr.io/socketio-hub/socketio-hub-operator:0.1.0 .
#
# The same layout as scripts/image-build (which builds them without Docker, reproducibly, and is
# what the test suite runs): one layer laid out by scripts/image-rootfs — the binary, the shared
# libraries it links, the CA bundle, /etc/passwd and /etc/group with the non-root user 65532, no
# shell. Pass --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) for the same file dates.

# ---- ui: the Socket.IO Admin UI's static files, from the npm package pinned (with its
# integrity hash) in dataplane/admin-ui/package-lock.json; embedded into the hub below.
FROM node:20-bookworm-slim AS ui
WORKDIR /ui
COPY dataplane/admin-ui/package.json dataplane/admin-ui/package-lock.json ./
RUN npm ci --ignore-scripts --omit=peer --no-audit --no-fund

# ---- build: the release binaries, against Debian bookworm's glibc (the rootfs stage's too).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
COPY --from=ui /ui/node_modules/@socket.io/admin-ui/ui/dist /admin-ui-dist
ENV SOCKETIO_HUB_ADMIN_UI_DIST=/admin-ui-dist
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=sioh-target \
    cargo build --release --locked -p socketio-hub -p socketio-hub-operator --bins \
 && mkdir -p /out && cp target/release/socketio-hub target/release/socketio-hub-operator /out/

# ---- rootfs: only what each binary needs at run time.
FROM debian:bookworm-slim AS rootfs
ARG SOURCE_DATE_EPOCH=0
RUN apt-get update && apt-get install -y --no-install-recommends binutils ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/image-rootfs /usr/local/bin/image-rootfs
COPY --from=build /out/ /in/
RUN SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH image-rootfs /in/socketio-hub /rootfs/hub \
 && SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH image-rootfs /in/socketio-hub-operator /rootfs/operator

# ---- the hub: clients + REST + server links 3000, admin 9090, gossip 7946/udp, mesh 7947.
FROM scratch AS hub
COPY --from=rootfs /rootfs/hub/ /
ENV PATH=/usr/local/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 3000/tcp 9090/tcp 7946/udp 7947/tcp
ENTRYPOINT ["/usr/local/bin/socketio-hub"]

# ---- the operator: metrics and probes on 8080.
FROM scratch AS operator
COPY --from=rootfs /rootfs/operator/ /
ENV PATH=/usr/local/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 8080/tcp
ENTRYPOINT ["/usr/local/bin/socketio-hub-operator"]
