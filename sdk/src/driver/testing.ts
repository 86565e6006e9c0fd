/**
 * The test API drivers use (`import { startDriver } from '@cam-os/sdk'`): build the driver in the folder,
 * start a real in-process kernel (ComponentHarness: the kernel, its host interfaces over an embedded KV
 * store, a manual clock) and load the driver into it. Calls go through `Kernel.call`, so arguments and
 * results cross the real boundary: jco's canonical-ABI lowering for a component, the WIT value checks for
 * the dev path.
 *
 * The mode comes from `$CAM_OS_DRIVER_MODE` (`component` | `dev`), which `cam-os driver test` sets; it
 * runs the same test files once per mode, which is how the two paths are shown to be equivalent.
 */
import { fileURLToPath } from 'node:url';
import type { LogLine, ManualClock } from '@cam-os/host/host-interfaces/index.js';
import type { ComponentInfo, SwapRecord } from '@cam-os/host/kernel/kernel.js';
import { buildComponent } from '../build/build.js';
import { buildDev } from '../build/dev.js';
import { ComponentHarness, type HarnessOptions } from '../build/harness.js';
import { type DriverProject, readDriverProject } from './project.js';

export type DriverMode = 'component' | 'dev';

export function driverModeFromEnv(env = process.env): DriverMode {
  const m = env.CAM_OS_DRIVER_MODE ?? 'dev';
  if (m !== 'component' && m !== 'dev')
    throw new Error(`CAM_OS_DRIVER_MODE must be 'component' or 'dev', not '${m}'`);
  return m;
}

/**
 * The modes a test file should run in: the one `cam-os driver test` asked for, or both when run directly
 * (e.g. by the repository's vitest), so that `describe.each(driverModes())` proves the paths equivalent.
 */
export function driverModes(env = process.env): DriverMode[] {
  return env.CAM_OS_DRIVER_MODE ? [driverModeFromEnv(env)] : ['component', 'dev'];
}

export interface StartDriverOptions extends HarnessOptions {
  mode?: DriverMode;
  /** Overrides driver.json's config for this load. */
  config?: Record<string, string>;
}

/** Build a driver folder for one mode; returns what the harness needs to load or swap it. */
export async function buildFor(project: DriverProject, mode: DriverMode) {
  if (mode === 'dev') {
    const artifact = await buildDev({
      entry: project.entry,
      world: project.world,
      witVersion: project.witVersion,
      outDir: `${project.distDir}/dev`,
      name: project.name,
    });
    return { artifact, wasmPath: undefined, imports: undefined };
  }
  const built = await buildComponent({
    entry: project.entry,
    world: project.world,
    witVersion: project.witVersion,
    outDir: project.distDir,
    cacheDir: `${project.distDir}/.cache`,
    name: project.name,
  });
  return { artifact: undefined, wasmPath: built.wasmPath, imports: built.imports };
}

export class TestDriver {
  constructor(
    readonly project: DriverProject,
    readonly mode: DriverMode,
    readonly harness: ComponentHarness,
    readonly info: ComponentInfo,
    /** The config the driver was started with (reload passes the same). */
    readonly config: Record<string, string> = project.config,
  ) {}

  get name(): string {
    return this.project.name;
  }
  get clock(): ManualClock {
    return this.harness.clock;
  }
  get logs(): LogLine[] {
    return this.harness.logs;
  }

  /** Call an export: `iface` is the interface name (`handler`, `lifecycle`, `scheduler`…), `fn` WIT or JS name. */
  call<T = unknown>(iface: string, fn: string, ...args: unknown[]): Promise<T> {
    const q = iface.includes('/') ? iface : `cam:kernel/${iface}`;
    return this.harness.call<T>(this.project.name, q, fn, ...args);
  }

  /** Rebuild the folder and hot-swap the running driver for it (state handed over by export/import-state). */
  async reload(): Promise<SwapRecord> {
    const next = await buildFor(this.project, this.mode);
    const limits = {
      name: this.project.name,
      config: this.config,
      memoryMaxPages: this.project.memoryMaxPages,
      deadlineMs: this.project.deadlineMs,
    };
    return this.harness.swap(
      this.project.name,
      next.artifact !== undefined
        ? { ...limits, artifact: next.artifact }
        : { ...limits, wasmPath: next.wasmPath, imports: next.imports },
    );
  }

  stop(): Promise<void> {
    return this.harness.stop();
  }
}

/**
 * Build `dir` (a driver folder, path or file URL; default the working directory) and load it into a fresh
 * kernel. Stop it with `driver.stop()`.
 */
export async function startDriver(
  dir: string | URL = '.',
  options: StartDriverOptions = {},
): Promise<TestDriver> {
  const project = readDriverProject(dir instanceof URL ? fileURLToPath(dir) : dir);
  const mode = options.mode ?? driverModeFromEnv();
  const built = await buildFor(project, mode);
  const harness = await ComponentHarness.start(options);
  try {
    const base = {
      name: project.name,
      config: options.config ?? project.config,
      memoryMaxPages: project.memoryMaxPages,
      deadlineMs: project.deadlineMs,
    };
    const info =
      built.artifact !== undefined
        ? await harness.loadDev({ ...base, artifact: built.artifact })
        : await harness.load({ ...base, wasmPath: built.wasmPath, imports: built.imports });
    return new TestDriver(project, mode, harness, info, base.config);
  } catch (e) {
    await harness.stop();
    throw e;
  }
}
