#!/usr/bin/env bash
# Start dockerd for `sam local` (make docker-up): Debian's docker.io, installed with apt if it is
# missing, started as root in the background. Idempotent: a daemon that answers is left alone.
# Containers need no registry: the Lambda base image is built locally (make local-image).
set -euo pipefail
LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
ATTEMPTS=${DOCKERD_ATTEMPTS:-60}  # half-second polls of `docker info`

if docker info >/dev/null 2>&1; then
    echo "dockerd is running ($(docker info --format '{{.ServerVersion}}, storage {{.Driver}}'))"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "dockerd is not running, and starting it needs root" >&2
    exit 1
fi
if ! command -v dockerd >/dev/null 2>&1; then
    echo "installing Debian's docker.io ..."
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null
fi
echo "starting dockerd (log: $LOG)"
nohup dockerd >"$LOG" 2>&1 &
for _ in $(seq "$ATTEMPTS"); do
    if docker info >/dev/null 2>&1; then
        echo "dockerd is running ($(docker info --format '{{.ServerVersion}}, storage {{.Driver}}'))"
        exit 0
    fi
    sleep 0.5
done
echo "dockerd did not answer; the end of its log:" >&2
tail -n 20 "$LOG" >&2
exit 1
