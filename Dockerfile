# tailseal: static binary on a distroless base, non-root (UID 65532),
# read-only root filesystem friendly: everything it writes is in the volume.
#   docker build --build-arg VERSION=$(git describe --always) -t tailseal .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tailseal ./cmd/tailseal

# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot=65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tailseal /usr/local/bin/tailseal
USER 65532:65532
ENV TAILSEAL_SOURCE=/var/log/app/audit.log \
    TAILSEAL_DATA_DIR=/var/lib/tailseal \
    TAILSEAL_LISTEN=0.0.0.0:9464
VOLUME ["/var/lib/tailseal"]
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/tailseal"]
CMD ["run"]
