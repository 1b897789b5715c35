#!/usr/bin/env bash
# Exits 0 when this machine can build and run the images with podman (scripts/containers), else
# prints what is missing and exits 1.
missing=()
for cmd in podman buildah docker-compose debootstrap runc netavark; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/lib/podman/$cmd" ] || missing+=("$cmd")
done
if [ "$(id -u)" != 0 ]; then
  echo "not root (the podman setup in scripts/containers runs rootful)"
  exit 1
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing ${missing[*]} (apt-get install podman buildah debootstrap runc slirp4netns netavark aardvark-dns catatonit uidmap containernetworking-plugins docker-compose)"
  exit 1
fi
