// Compiles the copy addon into dist/fs_native.node; where no compiler is installed it prints why it
// skipped and exits 0, so the repo builds anywhere and the file driver falls back to `cp`.
import { buildNodeAddon } from "../../../scripts/build-node-addon.mjs";

buildNodeAddon({
  name: "fs-native",
  packageUrl: import.meta.url,
  file: "fs_native.node",
  fallback: "the file driver will copy with `cp`",
  missing: () =>
    process.platform === "linux" ? undefined : `${process.platform} is not Linux (the copy uses copy_file_range)`,
  verify(addon) {
    if (typeof addon.copySparse !== "function") throw new Error("it does not export copySparse");
    return "";
  },
});
