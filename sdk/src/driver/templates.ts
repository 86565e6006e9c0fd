/** The templates of `cam-os driver new` (their files are in sdk/templates/<name>/). No imports: help texts read this. */
export interface Template {
  name: string;
  world: string;
  summary: string;
  /** Limits written to driver.json. */
  limits: { memoryMaxPages: number; deadlineMs: number };
  /** Operations, for the README. */
  usage: string;
}

export const TEMPLATES: Template[] = [
  {
    name: 'plain',
    world: 'driver',
    summary: 'a generic driver: handler.handle(op, payload) with durable storage',
    limits: { memoryMaxPages: 1024, deadlineMs: 5000 },
    usage: 'Ops: `echo`, `put {key,value}`, `get {key}`, `stats` (JSON payloads).',
  },
  {
    name: 'scheduler',
    world: 'scheduler-component',
    summary: 'a scheduler: ranks the task queue, preemptions, weights kept across hot-swaps',
    limits: { memoryMaxPages: 1024, deadlineMs: 5000 },
    usage: 'Exports `scheduler.rank`, `set-weights`, `get-weights` (see src/index.ts for the scoring).',
  },
  {
    name: 'memory',
    world: 'memory-component',
    summary: 'a context-memory backend: versions, snapshots, restore, revert-task over cam:kernel/kv',
    limits: { memoryMaxPages: 2048, deadlineMs: 10000 },
    usage: 'Exports `memory.read`, `write`, `snapshot`, `restore`, `version-list`, `revert-task`.',
  },
];
