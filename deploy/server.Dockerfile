# The podgate server image: `docker build -f deploy/server.Dockerfile -t podgate/server:VERSION .`
# from the repository root. Three stages: the web UI (xterm.js from npm), the release binary, and
# a small runtime stage that runs as a non-root user with nothing but the binary, the web UI and
# the CA certificates (for OIDC discovery and code bundles over HTTPS).
ARG RUST_IMAGE=rust:1-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${NODE_IMAGE} AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run --silent build

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p podgate --bin podgate \
 && install -D -m 0755 target/release/podgate /out/podgate

FROM ${RUNTIME_IMAGE}
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/podgate --shell /usr/sbin/nologin podgate \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/podgate
COPY --from=build /out/podgate /usr/local/bin/podgate
COPY --from=web /src/web/dist /usr/local/share/podgate/web
USER 10001:10001
EXPOSE 7070 2222
ENTRYPOINT ["/usr/local/bin/podgate"]
CMD ["server"]
