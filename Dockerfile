# segpub: a static binary on a minimal base, running as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context has no .git (.dockerignore), so Go cannot record the
# version: make image passes it (git describe) and the commit.
ARG VERSION=""
ARG REVISION=""
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X github.com/segpub/segpub/internal/cli.version=${VERSION} -X github.com/segpub/segpub/internal/cli.revision=${REVISION}" \
    -o /out/segpub ./cmd/segpub

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/segpub /usr/local/bin/segpub
USER nonroot:nonroot
# Metrics, /healthz and /readyz.
EXPOSE 9090
ENV SEGPUB_LISTEN=:9090 SEGPUB_LOG_FORMAT=json SEGPUB_DATA_DIR=/tmp/segpub
ENTRYPOINT ["/usr/local/bin/segpub"]
CMD ["serve"]
