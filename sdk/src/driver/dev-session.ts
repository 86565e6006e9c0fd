/**
 * The author's save-to-running loop (`cam-os driver dev`): watch a driver folder, and on every save build
 * it on the development path (esbuild + dev artifact, tens of ms) and hot-swap it into the running kernel
 * through `Kernel.swap` — state handed over by export-state/import-state, the old version serving until the
 * new one is initialised and healthy. A build error or a refused swap is reported and the last good version
 * keeps running.
 */
import { type FSWatcher, readdirSync, rmSync, statSync, watch } from 'node:fs';
import { join, relative } from 'node:path';
import type { Kernel, LoadSpec, SwapRecord } from '@cam-os/host/kernel/kernel.js';
import { BuildError, formatDiagnostics } from '../build/bundle.js';
import { buildDev, type DevBuildResult } from '../build/dev.js';
import type { DriverProject } from './project.js';

export type DevEvent =
  | { kind: 'loaded'; digest: string; ms: number }
  | { kind: 'swapped'; digest: string; ms: number; buildMs: number; record: SwapRecord; trigger: string }
  | { kind: 'unchanged'; trigger: string }
  | { kind: 'build-error'; message: string; trigger: string }
  | { kind: 'swap-error'; message: string; trigger: string };

/** Folders and files a save never needs to rebuild for. */
function ignored(name: string): boolean {
  return name === 'dist' || name === 'node_modules' || name.startsWith('.');
}

export function devSpec(project: DriverProject, artifact: DevBuildResult): LoadSpec {
  return {
    name: project.name,
    version: project.version,
    bytes: artifact.bytes,
    imports: artifact.imports,
    memoryMaxPages: project.memoryMaxPages,
    deadlineMs: project.deadlineMs,
    concurrency: project.concurrency,
    config: project.config,
    labels: {
      trust: 'UNVERIFIED (dev path)',
      world: `cam:kernel/${project.world}`,
      abiVersion: artifact.abi,
    },
    dev: { jsPath: artifact.jsPath, imports: artifact.imports, exports: artifact.exports, abi: artifact.abi },
  };
}

function describe(e: unknown): string {
  if (e instanceof BuildError && e.diagnostics.length > 0) return formatDiagnostics(e.diagnostics);
  return e instanceof Error ? e.message : String(e);
}

export class DevSession {
  private readonly watched = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private pending: string | undefined;
  private current: string | undefined;

  constructor(
    readonly project: DriverProject,
    readonly kernel: Kernel,
    readonly onEvent: (e: DevEvent) => void,
    readonly debounceMs = 20,
  ) {}

  private build(): Promise<DevBuildResult> {
    return buildDev({
      entry: this.project.entry,
      world: this.project.world,
      witVersion: this.project.witVersion,
      outDir: `${this.project.distDir}/dev`,
      name: this.project.name,
    });
  }

  /** Build and load the first version (replacing a component of the same name is refused by the kernel). */
  async start(): Promise<void> {
    const t0 = performance.now();
    const artifact = await this.build();
    await this.kernel.load(devSpec(this.project, artifact));
    this.current = artifact.digest;
    this.onEvent({ kind: 'loaded', digest: artifact.digest, ms: performance.now() - t0 });
  }

  /**
   * Start watching the driver folder (dist/, node_modules and dot-folders ignored). Each folder gets its own
   * non-recursive watcher: editors and `sed -i` save by writing a new file and renaming it over the old one,
   * which a folder watch always sees (Node 20's recursive watch on Linux can miss it).
   */
  watch(): void {
    this.watchDir(this.project.dir);
  }

  private watchDir(dir: string): void {
    if (this.watched.has(dir)) return;
    let w: FSWatcher;
    try {
      w = watch(dir, (_ev, file) => this.changed(dir, String(file ?? '')));
    } catch {
      return; // a folder removed between listing and watching
    }
    this.watched.set(dir, w);
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory() && !ignored(e.name)) this.watchDir(join(dir, e.name));
    }
  }

  private changed(dir: string, file: string): void {
    if (!file || ignored(file) || file.endsWith('~') || /^\d+$/.test(file)) return;
    const abs = join(dir, file);
    try {
      if (statSync(abs).isDirectory()) this.watchDir(abs);
    } catch {}
    this.pending = relative(this.project.dir, abs);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kick(), this.debounceMs);
  }

  private kick(): void {
    const trigger = this.pending ?? '';
    this.pending = undefined;
    this.running = this.running.then(async () => {
      await this.rebuild(trigger);
    });
  }

  /** One rebuild-and-swap (also callable directly). */
  async rebuild(trigger = 'manual'): Promise<DevEvent> {
    const t0 = performance.now();
    let artifact: DevBuildResult;
    let event: DevEvent;
    try {
      artifact = await this.build();
    } catch (e) {
      event = { kind: 'build-error', message: describe(e), trigger };
      this.onEvent(event);
      return event;
    }
    if (artifact.digest === this.current) {
      event = { kind: 'unchanged', trigger };
      this.onEvent(event);
      return event;
    }
    const buildMs = performance.now() - t0;
    try {
      const { name: _n, ...next } = devSpec(this.project, artifact);
      const record = await this.kernel.swap(this.project.name, next);
      this.current = artifact.digest;
      this.prune();
      event = {
        kind: 'swapped',
        digest: artifact.digest,
        ms: performance.now() - t0,
        buildMs,
        record,
        trigger,
      };
    } catch (e) {
      event = { kind: 'swap-error', message: describe(e), trigger };
    }
    this.onEvent(event);
    return event;
  }

  /**
   * Every save leaves one artifact file in dist/dev; keep the newest few (the running version and what a
   * rollback or a supervisor restart may still import) and delete the rest.
   */
  private prune(keep = 16): void {
    const dir = join(this.project.distDir, 'dev');
    try {
      const files = readdirSync(dir)
        .filter((f) => f.endsWith('.mjs'))
        .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }))
        .sort((a, b) => b.t - a.t);
      for (const { f } of files.slice(keep)) {
        if (this.current && f.startsWith(this.current.slice('sha256:'.length))) continue;
        rmSync(join(dir, f), { force: true });
      }
    } catch {
      // Pruning is housekeeping: a failure must not disturb the loop.
    }
  }

  async stop(): Promise<void> {
    for (const w of this.watched.values()) w.close();
    this.watched.clear();
    clearTimeout(this.timer);
    await this.running;
  }
}
