# syntax=docker/dockerfile:1
# The `objectos` server in a container: SQLite under the /data volume, metadata mounted at
# /app/metadata, port 3000, a non-root user.
#
#   docker build -t objectos .
#   docker run --rm -p 3000:3000 -v objectos-data:/data \
#     -v "$PWD/presets/crm:/app/metadata:ro" objectos
#
# Any `objectos` command runs the same way, on the same volume:
#   docker run --rm -i -v objectos-data:/data objectos \
#     user create --admin --email me@example.com --password-stdin

# --- build: the release binary with the default plugin selection ---
# The tag matches rust-toolchain.toml, so rustup inside the image has nothing to download.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and the target dir between builds on the same machine;
# the binary is copied out of the cached target dir, which is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p objectos-server \
    && install -m 0755 target/release/objectos /usr/local/bin/objectos

# --- runtime ---
FROM debian:bookworm-slim
# The binary links only the C library (TLS is rustls with bundled roots, SQLite is compiled in);
# ca-certificates is for operators who point it at services with a private CA via SSL_CERT_FILE.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 objectos \
    && useradd --system --uid 10001 --gid objectos --home-dir /data --shell /usr/sbin/nologin objectos \
    && mkdir -p /data /app/metadata \
    && chown objectos:objectos /data
COPY --from=build /usr/local/bin/objectos /usr/local/bin/objectos

# Listen on every interface inside the container (the port is published with -p); the database
# file lives on the volume so it survives the container.
ENV OBJECTOS_LISTEN=0.0.0.0:3000 \
    OBJECTOS_DATABASE_URL=sqlite:///data/objectos.db?mode=rwc \
    OBJECTOS_METADATA_DIRS=/app/metadata \
    OBJECTOS_MODE=production
VOLUME ["/data"]
EXPOSE 3000
USER objectos:objectos
WORKDIR /data
ENTRYPOINT ["objectos"]
CMD ["serve"]
