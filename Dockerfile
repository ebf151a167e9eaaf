# segpub: a static binary on a minimal base, running as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/segpub ./cmd/segpub

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/segpub /usr/local/bin/segpub
USER nonroot:nonroot
# Metrics, /healthz and /readyz.
EXPOSE 9090
ENV SEGPUB_LISTEN=:9090 SEGPUB_LOG_FORMAT=json SEGPUB_DATA_DIR=/tmp/segpub
ENTRYPOINT ["/usr/local/bin/segpub"]
CMD ["serve"]
