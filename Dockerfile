# syntax=docker/dockerfile:1
# binance-extractor: build in the official Swift image of the toolchain the project uses, run on slim Debian.

ARG SWIFT_VERSION=6.3.1
ARG DEBIAN_RELEASE=bookworm

FROM swift:${SWIFT_VERSION}-${DEBIAN_RELEASE} AS build
# Connector/C, libpq, libcurl, zlib and libcrypto headers for the system-library targets.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb-dev libpq-dev libcurl4-openssl-dev zlib1g-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source edits do not refetch them.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
# Release build with the Swift runtime linked in: the runtime image needs no Swift.
RUN swift build -c release --static-swift-stdlib --product binance-extractor \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/binance-extractor" /out/binance-extractor

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/binance-extractor/binance-extractor
LABEL org.opencontainers.image.title="binance-extractor" \
      org.opencontainers.image.description="Keeps a MariaDB copy of Binance market history complete, exact and current" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# Only what the binary links against, and the CA bundle for TLS to Binance.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 libpq5 libcurl4 zlib1g libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 extractor \
    && useradd --system --uid 10001 --gid extractor --no-create-home --shell /usr/sbin/nologin extractor
COPY --from=build /out/binance-extractor /usr/local/bin/binance-extractor
USER 10001:10001
# A single-shot process: no port, no health endpoint; Kubernetes reads its exit status.
HEALTHCHECK NONE
ENTRYPOINT ["binance-extractor"]
CMD ["--help"]
