import { CinderblockError } from "@cinderblock/domain";
import { gauge } from "@cinderblock/telemetry";

const openStreams = gauge({
  name: "cinderblock_streams_open",
  help: "Server streams (WatchSnapshot, WatchEvents) open now, all projects",
});

/** Caps on open server streams; each is a setting (named in the refusal). */
export interface StreamLimits {
  /** Open streams one project may have (CINDERBLOCK_MAX_STREAMS_PER_PROJECT). */
  perProject: number;
  /** Open streams of every project together (CINDERBLOCK_MAX_STREAMS). */
  total: number;
}

/** Counts open streams and refuses one past a cap. */
export interface StreamLimiter {
  /**
   * Takes a slot for a stream of `projectId`, or throws RESOURCE_EXHAUSTED naming the cap; returns
   * the function that gives the slot back (once, however often it is called).
   */
  acquire(projectId: string): () => void;
}

/** A {@link StreamLimiter} for one server process. */
export function createStreamLimiter(limits: StreamLimits): StreamLimiter {
  const perProject = new Map<string, number>();
  let total = 0;
  return {
    acquire(projectId) {
      const mine = perProject.get(projectId) ?? 0;
      if (mine >= limits.perProject) {
        throw new CinderblockError(
          "RESOURCE_EXHAUSTED",
          `too many open streams for this project: ${limits.perProject} (CINDERBLOCK_MAX_STREAMS_PER_PROJECT); end one first`,
        );
      }
      if (total >= limits.total) {
        throw new CinderblockError(
          "RESOURCE_EXHAUSTED",
          `too many open streams on this server: ${limits.total} (CINDERBLOCK_MAX_STREAMS); try again later`,
        );
      }
      perProject.set(projectId, mine + 1);
      total++;
      openStreams.inc();
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const left = (perProject.get(projectId) ?? 1) - 1;
        if (left > 0) perProject.set(projectId, left);
        else perProject.delete(projectId);
        total--;
        openStreams.dec();
      };
    },
  };
}
