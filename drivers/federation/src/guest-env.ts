/**
 * Imported before Yjs. lib0 (Yjs's utility library) reads `location.search` at module load when a
 * `location` object exists; StarlingMonkey defines one that throws outside a request, and componentize-js
 * evaluates the module at build time (wizer). The component has no URL: hide `location` from lib0.
 */
const g = globalThis as { location?: unknown };
try {
  Object.defineProperty(g, 'location', { value: undefined, configurable: true, writable: true });
} catch {
  delete g.location;
}
