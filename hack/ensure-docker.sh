#!/usr/bin/env bash
# Starts the Docker daemon when it is not answering, and waits for it.
# Needs root (as on the CI machines); does nothing when Docker is up.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi
echo "ensure-docker: the Docker daemon is not answering; starting it"
if command -v service >/dev/null 2>&1 && [ -x /etc/init.d/docker ]; then
  service docker start || true
fi
if ! docker info >/dev/null 2>&1; then
  nohup dockerd >/tmp/fljob-dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "ensure-docker: Docker is up"
    exit 0
  fi
  sleep 1
done
echo "ensure-docker: Docker did not come up within 60s (see /tmp/fljob-dockerd.log)" >&2
exit 1
