// Compiles the librbd addon into dist/rbd_native.node when the Ceph headers are installed
// (Debian: librbd-dev, librados-dev); otherwise prints why it skipped and exits 0, so the repo
// builds anywhere and the rbd driver falls back to the rbd/ceph CLIs.
import { existsSync } from "node:fs";
import { buildNodeAddon } from "../../../scripts/build-node-addon.mjs";

buildNodeAddon({
  name: "rbd-native",
  packageUrl: import.meta.url,
  file: "rbd_native.node",
  fallback: "the rbd driver will use the rbd/ceph CLIs",
  missing() {
    const headers = ["/usr/include/rbd/librbd.h", "/usr/include/rados/librados.h"];
    const absent = headers.filter((h) => !existsSync(h));
    return absent.length > 0 ? `librbd-dev not installed (no ${absent.join(", ")})` : undefined;
  },
  verify(addon) {
    const v = addon.versions();
    return ` (librbd ${v.librbd}, librados ${v.librados})`;
  },
});
