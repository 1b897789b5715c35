import { CinderblockError } from "./errors.js";
import { type EventJson, EventSequenceError, ReaderFellBehindError } from "./ports.js";
import type { ApiDependencies, ApiUseCases } from "./use-cases.js";
import { validateId } from "./validation.js";

/** Filters for {@link ApiUseCases.watchEvents}. */
export interface EventFilter {
  resourceId: string;
  eventTypes: string[];
  allProjects: boolean;
  /** Replay from this notifications-stream sequence; 0 or undefined: only new events. */
  startSequence?: number;
}

/** What a stream holds at most for a reader that falls behind, unless configured. */
const DEFAULT_STREAM_BUFFER = { messages: 1000, bytes: 256 * 1024 };

/** Whether the caller asked for this event (its project, its types, its resource). */
function matches(ctx: { projectId: string }, filter: EventFilter, event: EventJson): boolean {
  const payload = event.payload ?? {};
  if (!filter.allProjects && payload.tenant_id !== ctx.projectId) return false;
  if (filter.eventTypes.length > 0 && !filter.eventTypes.includes(event.eventType)) return false;
  return (
    !filter.resourceId ||
    payload.volume_id === filter.resourceId ||
    payload.snapshot_id === filter.resourceId ||
    payload.group_snapshot_id === filter.resourceId
  );
}

/** What a reader that fell behind is told: the bound it passed and where to resume. */
function fellBehind(error: ReaderFellBehindError): CinderblockError {
  return new CinderblockError(
    "RESOURCE_EXHAUSTED",
    `stream buffer full (more than ${error.limit} unread; CINDERBLOCK_STREAM_BUFFER_MESSAGES/_BYTES): ` +
      `the stream was read too slowly; resume with start_sequence ${error.resumeSequence} ` +
      "(or the sequence after the last event read, if that is earlier)",
  );
}

/**
 * No Cinder method (Cinder's notifications go to a message queue only): the project's (or, for an
 * admin, every) notification as it is published, filtered by resource and event type, each with
 * its stream sequence. A reader that falls behind by more than the stream buffer gets
 * RESOURCE_EXHAUSTED naming the sequence to resume from (`start_sequence`), and nothing more is
 * held for it.
 */
export function watchEventsUseCase(deps: Pick<ApiDependencies, "events" | "streamBuffer">): ApiUseCases["watchEvents"] {
  const bounds = deps.streamBuffer ?? DEFAULT_STREAM_BUFFER;
  return async function* (ctx, filter, signal, interrupt) {
    if (filter.resourceId) validateId("resource_id", filter.resourceId);
    const subscription = await deps.events
      .subscribe({
        startSequence: filter.startSequence || undefined,
        accept: (event) => matches(ctx, filter, event),
        maxBufferedMessages: bounds.messages,
        maxBufferedBytes: bounds.bytes,
        onFellBehind: (error) => interrupt?.(fellBehind(error)),
      })
      .catch((error: unknown) => {
        if (!(error instanceof EventSequenceError)) throw error;
        const { first, next } = error.retained;
        throw new CinderblockError(
          error.sequence < first ? "FAILED_PRECONDITION" : "INVALID_ARGUMENT",
          `start_sequence: ${error.sequence} is not retained; events from ${first} to ${next} are`,
        );
      });
    const onAbort = () => subscription.close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      yield* subscription;
    } catch (error) {
      throw error instanceof ReaderFellBehindError ? fellBehind(error) : error;
    } finally {
      signal.removeEventListener("abort", onAbort);
      subscription.close();
    }
  };
}
