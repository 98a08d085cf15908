# The agent image: `docker build -f deploy/agent.Dockerfile -t podgate/agent:VERSION .` from the
# repository root. It holds only the static agent at /podgate-agent; the Kubernetes driver runs
# it as an init container (`/podgate-agent install DEST`) that copies it into each sandbox pod.
# The agent is built as scripts/build-agent builds it for the tests: static glibc (the agent does
# no libc DNS or user lookups, so static glibc is safe for it).
ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked -p podgate-agent --bin podgate-agent --target x86_64-unknown-linux-gnu \
 && install -D -m 0755 target/x86_64-unknown-linux-gnu/release/podgate-agent /out/podgate-agent

FROM scratch
COPY --from=build /out/podgate-agent /podgate-agent
USER 65534:65534
ENTRYPOINT ["/podgate-agent"]
CMD ["--version"]
