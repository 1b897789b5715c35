import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** Options of {@link FsNativeBinding.copySparse}. */
export interface CopySparseOptions {
  /** fsync the copy before the promise resolves. Defaults to false. */
  fsync?: boolean;
}

/**
 * The rejection of a copy, shaped like Node's fs errors: `code` is the errno name ("ENOENT",
 * "EEXIST", "ENOSPC"...), `errno` its negative value, `syscall` the call that failed (`open`,
 * `lseek`, `copy_file_range`, `read`, `write`, `ftruncate`, `fsync`, `close`), `path` the file it
 * was about and `dest` the destination of a `copy_file_range`.
 */
export interface FsNativeError extends Error {
  errno: number;
  code: string;
  syscall: string;
  path: string;
  dest?: string;
}

export interface FsNativeBinding {
  /**
   * Copy `src` to a new file `dst`, only the source's data extents (SEEK_DATA/SEEK_HOLE, then
   * copy_file_range, or pread/pwrite where that is refused), so the source's holes stay holes;
   * `dst` gets the source's length as it was when the copy started, and the source's permission
   * bits less the umask (as `cp` gives it). All of it runs on the libuv thread pool.
   * `dst` must not exist (EEXIST, and it is left alone); on any other failure a `dst` the call
   * created is removed. NOTE: unlike `cp --sparse=always` it does not look for zeros inside data
   * extents: allocated zeros stay allocated, as in a reflink.
   */
  copySparse(src: string, dst: string, options?: CopySparseOptions): Promise<void>;
}

/** The addon, or why it is not available (not built, or it cannot be loaded). */
export type FsNativeLoad = { binding: FsNativeBinding; error?: undefined } | { binding?: undefined; error: Error };

// NOTE: through dist/ even from src/, so the package's own tests (which run the TypeScript
// sources) load the addon the build put there.
const ADDON = new URL("../dist/fs_native.node", import.meta.url);
let loaded: FsNativeLoad | undefined;

/** Loads the addon once; never throws. */
export function loadFsNative(): FsNativeLoad {
  if (loaded) return loaded;
  if (!existsSync(ADDON)) {
    loaded = {
      error: new Error(
        "the fs-native addon is not built (packages/fs-native's build skips it without g++, make, python3 or Node's headers)",
      ),
    };
    return loaded;
  }
  try {
    loaded = { binding: createRequire(import.meta.url)(fileURLToPath(ADDON)) as FsNativeBinding };
  } catch (cause) {
    loaded = { error: new Error(`the fs-native addon cannot be loaded: ${String(cause)}`, { cause }) };
  }
  return loaded;
}
