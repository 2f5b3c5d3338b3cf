# syntax=docker/dockerfile:1
#
# One image with all three programs (tcp-server, tcp-client, tcp-server-stats).
#
#   docker build -t ringhold:dev .                      # all three; ENTRYPOINT tcp-server
#   docker build --target tcp-client -t ringhold-client .  # one program per image
#
# The Kubernetes manifests use the all-in-one image and pick the program with the
# container's `command`, so a cluster pulls (or `kind load`s) a single image.

ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE} AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential meson ninja-build pkg-config \
      liburing-dev libcurl4-openssl-dev libjansson-dev node-llhttp python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Only the three programs: tests and benchmarks are built and run by `meson test` in CI,
# not in the image.
RUN meson setup /build --buildtype=release -Dbrowser_tests=disabled \
 && meson compile -C /build server/tcp-server client/tcp-client stats/tcp-server-stats \
 && install -D -m 0755 -t /out/usr/local/bin \
      /build/server/tcp-server /build/client/tcp-client /build/stats/tcp-server-stats

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# Only the shared libraries the programs link: liburing (ring loop), libcurl (reports),
# jansson (JSON). llhttp is built into tcp-server-stats statically.
RUN apt-get update \
 && apt-get install -y --no-install-recommends liburing2 libcurl4 libjansson4 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ringhold \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin ringhold
COPY --from=build /out/ /
# Numeric so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

FROM runtime AS tcp-server
EXPOSE 10000
ENTRYPOINT ["/usr/local/bin/tcp-server"]

FROM runtime AS tcp-client
ENTRYPOINT ["/usr/local/bin/tcp-client"]

FROM runtime AS tcp-server-stats
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tcp-server-stats"]

# Default target (last stage): all three programs; runs tcp-server unless the pod's
# `command` (or `docker run --entrypoint`) names another one.
FROM runtime AS ringhold
EXPOSE 10000 8080
ENTRYPOINT ["/usr/local/bin/tcp-server"]
