/**
 * A failure the launcher anticipates (a port in use, a missing program, a server refusing us).
 * Its message says what to do, so it is printed without a stack trace; anything else is a bug
 * and is printed in full.
 */
export class LaunchError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LaunchError";
  }
}
