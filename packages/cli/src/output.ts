/** Where a command writes: stdout for results, stderr for progress and messages. */
export interface Stream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** Results on stdout (tables or JSON), progress on stderr. */
export interface Output {
  readonly json: boolean;
  /** Writes human text to stdout (only used when not --json). */
  text(text: string): void;
  /** Writes one JSON document (or one line of a JSON stream) to stdout. */
  jsonLine(value: unknown): void;
  /**
   * Shows an operation's progress on stderr: rewritten in place on a terminal; otherwise one line
   * each time `key` (default: the text) changes, so logs do not fill with ticking seconds.
   */
  progress(text: string, key?: string): void;
  /** Ends the progress line (before any other stderr output). */
  endProgress(): void;
  /** A message for the human on stderr. */
  note(text: string): void;
}

/** Builds the output of one run. */
export function createOutput(stdout: Stream, stderr: Stream, json: boolean): Output {
  let last: string | undefined;
  let open = false;
  const endProgress = () => {
    if (open) stderr.write("\n");
    open = false;
    last = undefined;
  };
  return {
    json,
    text(text) {
      stdout.write(text);
    },
    jsonLine(value) {
      stdout.write(`${JSON.stringify(value)}\n`);
    },
    progress(text, key = text) {
      if (stderr.isTTY) {
        stderr.write(`\r\x1b[K${text}`);
        open = true;
        return;
      }
      if (key === last) return;
      last = key;
      stderr.write(`${text}\n`);
    },
    endProgress,
    note(text) {
      endProgress();
      stderr.write(`${text}\n`);
    },
  };
}
