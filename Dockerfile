# The DaemonSet image: Node Problem Detector with the pid-pressure monitor.
# glibc (Debian) rather than a static or musl base: the journal is read with
# libsystemd, which the binary loads at run time.
#
#   make image                 # with a container engine: docker build
#   make image-layout DEST=dir # without one: the image's files, as below
#
# Both stages run the same make target, which a test runs on every CI
# build (the layout, the binary and its libraries).
FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libsystemd-dev make && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make image-layout DEST=/rootfs

FROM debian:bookworm-slim
# libsystemd0: sdjournal opens it at run time; ca-certificates: the apiserver.
RUN apt-get update && apt-get install -y --no-install-recommends libsystemd0 ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /rootfs/ /
# Root inside the container for the host's journal and /proc, with every
# capability dropped by the DaemonSet; the root filesystem is read-only.
USER 0
ENTRYPOINT ["/node-problem-detector"]
CMD ["--config.pid-pressure-monitor=/config/pid-pressure-monitor.json"]
