# wsgate container image.
#
#   docker build -t wsgate .
#   docker run --rm -p 8080:8080 -p 8443:8443 wsgate
#
# The build step is exactly the release build of .ci/run's toolchain:
# `cargo build --release --locked`; scripts/docker-context-build.sh runs this
# build stage on exactly the files it COPYs, without Docker. The runtime
# image holds the binary, a default config (config/container.toml: built-in
# echo on :8080 and :8443 with a self-signed certificate) and runs as an
# unprivileged user. Mount your own
# config at /etc/wsgate/wsgate.toml and certificates under /etc/wsgate/certs.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
RUN cargo build --release --locked

FROM debian:bookworm-slim
# /var/lib/wsgate/acme: the default ACME cache, owned by wsgate, mode 0700;
# mount a volume there to keep certificates across container restarts.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin wsgate \
    && mkdir -p /etc/wsgate/certs /var/lib/wsgate/acme \
    && chown wsgate /var/lib/wsgate/acme && chmod 700 /var/lib/wsgate/acme
COPY --from=build /src/target/release/wsgate /usr/local/bin/wsgate
COPY config/container.toml /etc/wsgate/wsgate.toml
USER wsgate
EXPOSE 8080 8443
# Drain on SIGTERM: /readyz turns 503, WebSockets get 1001, exit 0 within
# server.shutdown_grace (keep the orchestrator's stop timeout above it).
STOPSIGNAL SIGTERM
# No curl in the image: the binary probes its own admin listener.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["wsgate", "health", "--url", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["wsgate", "--config", "/etc/wsgate/wsgate.toml"]
