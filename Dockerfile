# The sync-trace image for the DaemonSet (deploy/kubernetes/daemonset.yaml), for
# those who build with docker or podman:
#
#   docker build -t ghcr.io/OWNER/sync-trace:0.1.0 .
#   podman build -t ghcr.io/OWNER/sync-trace:0.1.0 .
#
# Without a container daemon, `cargo xtask image` writes the same content as an
# OCI layout (reproducibly: same commit, same digest); see docs/deploy.md,
# "Building and pushing the image".
#
# The image holds only the static binary: FROM scratch, no libc, no shell.

# --- build: a static glibc binary (no musl target needed) ---------------------
FROM docker.io/library/rust:1.95-bookworm AS build
# clang and libbpf's headers compile the eBPF programs (sync-trace-ebpf/build.rs).
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang llvm libbpf-dev libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --target keeps +crt-static away from build scripts and proc macros; the
# remaps keep the build paths out of the binary, as `cargo xtask image` does.
RUN RUSTFLAGS='-C target-feature=+crt-static --remap-path-prefix=/src=/sync-trace --remap-path-prefix=/usr/local/cargo=/cargo' \
    cargo build --release --locked -p sync-trace --target x86_64-unknown-linux-gnu \
    && cp target/x86_64-unknown-linux-gnu/release/sync-trace /sync-trace

# --- the image: the binary and nothing else -----------------------------------
FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="sync-trace" \
      org.opencontainers.image.description="Traces the kernel's page-table syncs with eBPF (Prometheus metrics on :9464)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
COPY --from=build /sync-trace /usr/bin/sync-trace
ENV RUST_LOG=info
EXPOSE 9464/tcp
ENTRYPOINT ["/usr/bin/sync-trace"]
CMD ["run", "--metrics-addr", "0.0.0.0:9464"]
