import type { ApiDependencies, ApiUseCases } from "./use-cases.js";
import { validateId } from "./validation.js";

/** Filters for {@link ApiUseCases.watchEvents}. */
export interface EventFilter {
  resourceId: string;
  eventTypes: string[];
  allProjects: boolean;
}

/**
 * No Cinder method (Cinder's notifications go to a message queue only): the project's (or, for an
 * admin, every) notification as it is published, filtered by resource and event type.
 */
export function watchEventsUseCase(deps: Pick<ApiDependencies, "events">): ApiUseCases["watchEvents"] {
  return async function* (ctx, filter, signal) {
    if (filter.resourceId) validateId("resource_id", filter.resourceId);
    const subscription = deps.events.subscribe();
    const onAbort = () => subscription.close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const event of subscription) {
        const payload = event.payload ?? {};
        if (!filter.allProjects && payload.tenant_id !== ctx.projectId) continue;
        if (filter.eventTypes.length > 0 && !filter.eventTypes.includes(event.eventType)) continue;
        if (
          filter.resourceId &&
          payload.volume_id !== filter.resourceId &&
          payload.snapshot_id !== filter.resourceId &&
          payload.group_snapshot_id !== filter.resourceId
        ) {
          continue;
        }
        yield event;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      subscription.close();
    }
  };
}
