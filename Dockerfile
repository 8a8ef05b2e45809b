# The worker as a container image (see docker-compose.yml; needs a registry for the base images).
FROM rust:1.92-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev
WORKDIR /src
COPY . .
RUN cargo build --release -p ae-worker

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates busybox-static \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ae-worker /usr/local/bin/ae-worker
# Build the sandbox image on the engine if it is missing, then poll.
CMD ["sh", "-c", "ae-worker image build >/dev/null 2>&1 || true; exec ae-worker run"]
