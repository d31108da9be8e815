# The tidesync image: the controller, the agents (`tidesync agent ...`) and rclone, on Debian 12
# slim, as a non-root user. Build from the repository root:
#   docker build -t tidesync/tidesync:0.1.0 .
# deploy/base/deployment.yaml runs it; the controller starts its agent Jobs and sidecars with
# the same image (--agent-image, default tidesync/tidesync:<version>).
# tests/integration/dockerfile_test.cpp keeps the runtime packages in step with the libraries
# the binary links and loads, and the user with the Deployment's runAsUser.

# ---- build ------------------------------------------------------------------------------------
FROM debian:12 AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      g++ cmake ninja-build pkg-config git ca-certificates \
      libcaf-dev libcurl4-openssl-dev libsimdjson-dev libyaml-cpp-dev libzstd-dev \
      libarchive-dev prometheus-cpp-dev libspdlog-dev libfmt-dev libssl-dev \
      libcpp-httplib-dev libsodium-dev libgit2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt CMakePresets.json ./
COPY cmake cmake
COPY runtime runtime
COPY config config
COPY actors actors
# The release preset without tests and benchmarks (their libraries are not installed here).
RUN cmake --preset release -DTIDESYNC_BUILD_TESTS=OFF -DTIDESYNC_BUILD_BENCH=OFF \
 && cmake --build --preset release --target tidesync \
 && strip --strip-debug build/release/tidesync \
 && build/release/tidesync version

# ---- runtime ----------------------------------------------------------------------------------
FROM debian:12-slim
ARG DEBIAN_FRONTEND=noninteractive
# The shared libraries tidesync links (readelf NEEDED) and loads when used (libcurl4: HTTP
# transfers; libgit2-1.5: `agent mirror` of git sources), rclone for the agents, CA certificates
# for TLS to object stores and git hosts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libcaf-core0.17 libcpp-httplib0.11 libprometheus-cpp-core1.0 libsodium23 libssl3 \
      libarchive13 libzstd1 libsimdjson14 libspdlog1.10 libfmt9 libyaml-cpp0.7 libstdc++6 \
      libcurl4 libgit2-1.5 rclone ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/release/tidesync /usr/local/bin/tidesync
# The user of deploy/base/deployment.yaml (runAsUser/runAsGroup 65532); no home, no shell.
RUN groupadd --system --gid 65532 tidesync \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin tidesync
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tidesync"]
CMD ["controller"]
