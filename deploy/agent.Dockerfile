# The agent image: `docker build -f deploy/agent.Dockerfile -t podgate/agent:VERSION .` from the
# repository root. It holds only the static agent at /podgate-agent; the Kubernetes driver runs
# it as an init container (`/podgate-agent install DEST`) that copies it into each sandbox pod.
ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUST_IMAGE} AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends musl-tools \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p podgate-agent --bin podgate-agent --target x86_64-unknown-linux-musl \
 && install -D -m 0755 target/x86_64-unknown-linux-musl/release/podgate-agent /out/podgate-agent

FROM scratch
COPY --from=build /out/podgate-agent /podgate-agent
USER 65534:65534
ENTRYPOINT ["/podgate-agent"]
CMD ["--version"]
