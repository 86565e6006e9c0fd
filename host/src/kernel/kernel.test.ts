/**
 * The kernel with real components (WAT fixtures built by jco's wasm-tools, and one componentize-js
 * component): loading, linking, grants, sandbox, limits and the supervisor. No timing thresholds: the
 * benchmarks measure speed; these tests check behaviour.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KernelError } from '../errors.js';
import { buildFixture } from '../testing/fixtures.js';
import { buildJsCalc } from '../testing/js-fixture.js';
import { Kernel, type LoadSpec } from './kernel.js';

const CALC = 'test:fixtures/calc@0.1.0';
const CHAOS = 'test:fixtures/chaos@0.1.0';
const LOG = 'test:fixtures/log@0.1.0';

let dataDir: string;
let kernel: Kernel;
let logs: Array<[string, string]>;

function newKernel(): Kernel {
  const k = new Kernel({ dataDir });
  k.provide({
    name: LOG,
    functions: {
      log: (caller, msg) => {
        logs.push([caller, msg as string]);
      },
    },
  });
  return k;
}

async function calcSpec(name = 'calc', extra: Partial<LoadSpec> = {}): Promise<LoadSpec> {
  return { name, bytes: await buildFixture('calc'), imports: [LOG], ...extra };
}

async function chaosSpec(extra: Partial<LoadSpec> = {}): Promise<LoadSpec> {
  return {
    name: 'chaos',
    bytes: await buildFixture('chaos'),
    imports: ['wasi:cli/exit'],
    deadlineMs: 300,
    memoryMaxPages: 32,
    restart: { initialBackoffMs: 5, maxBackoffMs: 50, maxRestarts: 50, windowMs: 60_000 },
    ...extra,
  };
}

async function expectKernelError(p: Promise<unknown>, code: string): Promise<KernelError> {
  const e = await p.then(
    () => {
      throw new Error(`expected ${code}, but the call succeeded`);
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(KernelError);
  expect((e as KernelError).code).toBe(code);
  return e as KernelError;
}

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'cam-kernel-test-'));
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('loading and calling', () => {
  beforeAll(() => {
    logs = [];
    kernel = newKernel();
  });
  afterAll(() => kernel.stop());

  it('loads a WAT component and calls scalar, string, list and result exports', async () => {
    const info = await kernel.load(await calcSpec());
    expect(info.exports).toContain(CALC);
    expect(info.imports).toEqual([LOG]);
    expect(await kernel.call('calc', CALC, 'add', [2, 40])).toBe(42);
    expect(await kernel.call('calc', CALC, 'echo', ['héllo wörld'])).toBe('héllo wörld');
    expect(await kernel.call('calc', CALC, 'sum', [[1, 2, 3, 4_000_000_000]])).toBe(4_000_000_006n);
    expect(await kernel.call('calc', CALC, 'divide', [7, 2])).toBe(3);
  });

  it('returns a typed guest error without poisoning the instance, after the guest called a host import', async () => {
    const e = await expectKernelError(kernel.call('calc', CALC, 'divide', [1, 0]), 'KERNEL_ERR_GUEST_ERROR');
    expect(e.message).toBe('division by zero');
    expect(logs).toContainEqual(['calc', 'division by zero']);
    expect(kernel.info('calc').status.restarts).toBe(0);
    expect(await kernel.call('calc', CALC, 'add', [1, 1])).toBe(2);
  });

  it('refuses values that do not fit the WIT type, and the instance keeps serving', async () => {
    await expectKernelError(kernel.call('calc', CALC, 'echo', [42]), 'KERNEL_ERR_COMPONENT_TRAP');
    await until(() => kernel.info('calc').status.health === 'healthy');
    expect(await kernel.call('calc', CALC, 'add', [1, 2])).toBe(3);
  });

  it('links one component to an interface another component exports', async () => {
    await kernel.load({ name: 'relay', bytes: await buildFixture('relay'), imports: [CALC] });
    expect(await kernel.call('relay', 'test:fixtures/relay', 'add-via', [40, 2])).toBe(42);
    await expectKernelError(kernel.unload('calc'), 'KERNEL_ERR_REQUEST_INVALID');
  });

  it('finds the provider of an interface, and forgets it when the component goes and comes back', async () => {
    const fresh = newKernel();
    try {
      expect(fresh.providerOf(CALC)).toBeUndefined();
      await fresh.load(await calcSpec('calc-a'));
      expect(fresh.providerOf(CALC)).toBe('calc-a');
      expect(fresh.providerOf(`${CALC.split('@')[0]}@9.9.9`)).toBe('calc-a');
      await fresh.unload('calc-a');
      expect(fresh.providerOf(CALC)).toBeUndefined();
      await fresh.load(await calcSpec('calc-b'));
      expect(fresh.providerOf(CALC)).toBe('calc-b');
    } finally {
      await fresh.stop();
    }
  });

  it('serves a second load of the same bytes from the transpile cache', async () => {
    const bytes = await buildFixture('calc');
    const t = await kernel.transpiler.get(bytes);
    expect(t.cached).toBe(true);
    const fresh = new Kernel({ dataDir });
    expect((await fresh.transpiler.get(bytes)).cached).toBe(true);
  });

  it('refuses a duplicate name, a bad name, a pinned digest mismatch and non-component bytes', async () => {
    await expectKernelError(kernel.load(await calcSpec()), 'KERNEL_ERR_COMPONENT_EXISTS');
    await expectKernelError(kernel.load(await calcSpec('Bad Name')), 'KERNEL_ERR_MANIFEST_INVALID');
    await expectKernelError(
      kernel.load(await calcSpec('pinned', { digest: `sha256:${'0'.repeat(64)}` })),
      'KERNEL_ERR_DIGEST_MISMATCH',
    );
    await expectKernelError(
      kernel.load({ name: 'junk', bytes: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), imports: [] }),
      'KERNEL_ERR_COMPONENT_INVALID',
    );
    expect(kernel.list().map((c) => c.name)).toEqual(['calc', 'relay']);
  });
});

describe('grants and sandbox', () => {
  beforeAll(() => {
    logs = [];
    kernel = newKernel();
  });
  afterAll(() => kernel.stop());

  it('fails a load whose import is not granted, naming the import', async () => {
    const e = await expectKernelError(
      kernel.load(await calcSpec('calc', { imports: [] })),
      'KERNEL_ERR_IMPORT_DENIED',
    );
    expect(e.message).toContain(LOG);
    expect(kernel.has('calc')).toBe(false);
  });

  it('fails a load whose granted import nobody provides', async () => {
    const e = await expectKernelError(
      kernel.load({ name: 'relay', bytes: await buildFixture('relay'), imports: [CALC] }),
      'KERNEL_ERR_IMPORT_UNAVAILABLE',
    );
    expect(e.message).toContain(CALC);
  });

  it('refuses wasi:cli/exit unless granted, and a granted exit only poisons the instance', async () => {
    const denied = await expectKernelError(
      kernel.load(await chaosSpec({ imports: [] })),
      'KERNEL_ERR_IMPORT_DENIED',
    );
    expect(denied.message).toContain('wasi:cli/exit@0.2.3');
    await kernel.load(await chaosSpec());
    await expectKernelError(kernel.call('chaos', CHAOS, 'quit', []), 'KERNEL_ERR_COMPONENT_EXIT');
    await until(() => kernel.info('chaos').status.health === 'healthy');
    expect(await kernel.call('chaos', CHAOS, 'ping', [])).toBe(42);
    expect(kernel.info('chaos').status.lastError?.kind).toBe('exit');
  });
});

describe('limits and supervision', () => {
  afterEach(() => kernel.stop());

  it('stops an infinite loop at its deadline while another component keeps answering', async () => {
    logs = [];
    kernel = newKernel();
    await kernel.load(await calcSpec());
    await kernel.load(await chaosSpec({ deadlineMs: 400 }));
    const started = Date.now();
    const spin = expectKernelError(kernel.call('chaos', CHAOS, 'spin', []), 'KERNEL_ERR_CALL_DEADLINE');
    let answered = 0;
    while (Date.now() - started < 300) {
      expect(await kernel.call('calc', CALC, 'add', [answered, 1])).toBe(answered + 1);
      answered++;
    }
    await spin;
    expect(answered).toBeGreaterThan(10);
    expect(kernel.info('chaos').status.lastError?.kind).toBe('deadline');
    await until(() => kernel.info('chaos').status.health === 'healthy');
    expect(await kernel.call('chaos', CHAOS, 'ping', [])).toBe(42);
  });

  it('traps a memory bomb at the manifest cap; the kernel is unaffected', async () => {
    logs = [];
    kernel = newKernel();
    await kernel.load(await chaosSpec({ memoryMaxPages: 20 }));
    const e = await expectKernelError(kernel.call('chaos', CHAOS, 'bomb', []), 'KERNEL_ERR_COMPONENT_TRAP');
    expect(e.message).toContain('unreachable');
    expect(kernel.info('chaos').memoryMaxPages).toBe(20);
    await until(() => kernel.info('chaos').status.health === 'healthy');
    expect(await kernel.call('chaos', CHAOS, 'ping', [])).toBe(42);
  });

  it('restarts a crashed instance with exponential backoff', async () => {
    logs = [];
    kernel = newKernel();
    await kernel.load(
      await chaosSpec({
        restart: { initialBackoffMs: 40, maxBackoffMs: 1000, maxRestarts: 10, windowMs: 60_000 },
      }),
    );
    const gaps: number[] = [];
    for (let i = 0; i < 3; i++) {
      await expectKernelError(kernel.call('chaos', CHAOS, 'crash', []), 'KERNEL_ERR_COMPONENT_TRAP');
      const t = Date.now();
      // While recovering, a call waits in the queue and is served by the restarted instance.
      expect(await kernel.call('chaos', CHAOS, 'ping', [])).toBe(42);
      gaps.push(Date.now() - t);
    }
    const s = kernel.info('chaos').status;
    expect(s.restarts).toBe(3);
    expect(s.lastError?.kind).toBe('trap');
    // Backoff doubles with consecutive faults only; a successful call resets it.
    expect(gaps.every((g) => g >= 35)).toBe(true);
  });

  it('marks the component failed once the restart budget is exhausted', async () => {
    logs = [];
    kernel = newKernel();
    await kernel.load(
      await chaosSpec({
        restart: { initialBackoffMs: 1, maxBackoffMs: 5, maxRestarts: 3, windowMs: 60_000 },
      }),
    );
    for (let i = 0; i < 4; i++) {
      await expectKernelError(kernel.call('chaos', CHAOS, 'crash', []), 'KERNEL_ERR_COMPONENT_TRAP');
      await until(() => ['healthy', 'failed'].includes(kernel.info('chaos').status.health));
    }
    expect(kernel.info('chaos').status.health).toBe('failed');
    await expectKernelError(kernel.call('chaos', CHAOS, 'ping', []), 'KERNEL_ERR_COMPONENT_FAILED');
  });

  it('bounds concurrency: calls beyond the queue limit are refused with RESOURCE_EXHAUSTED', async () => {
    logs = [];
    kernel = newKernel();
    await kernel.load(await chaosSpec({ queueLimit: 2, deadlineMs: 500 }));
    const spin = kernel.call('chaos', CHAOS, 'spin', []).catch((e: unknown) => e);
    const q1 = kernel.call('chaos', CHAOS, 'ping', []).catch((e: unknown) => e);
    const q2 = kernel.call('chaos', CHAOS, 'ping', []).catch((e: unknown) => e);
    const e = await expectKernelError(kernel.call('chaos', CHAOS, 'ping', []), 'KERNEL_ERR_CALL_QUEUE_FULL');
    expect(e.status).toBe('RESOURCE_EXHAUSTED');
    await Promise.all([spin, q1, q2]);
  });
});

describe('a componentize-js component', () => {
  beforeAll(() => {
    logs = [];
    kernel = newKernel();
  });
  afterAll(() => kernel.stop());

  it('runs the same calc world as the WAT fixture', { timeout: 180_000 }, async () => {
    const bytes = await buildJsCalc();
    await kernel.load({ name: 'js-calc', bytes, imports: [LOG], memoryMaxPages: 2048 });
    expect(await kernel.call('js-calc', CALC, 'add', [2, 40])).toBe(42);
    expect(await kernel.call('js-calc', CALC, 'echo', ['héllo'])).toBe('héllo');
    expect(await kernel.call('js-calc', CALC, 'sum', [[1, 2, 3]])).toBe(6n);
    const e = await expectKernelError(
      kernel.call('js-calc', CALC, 'divide', [1, 0]),
      'KERNEL_ERR_GUEST_ERROR',
    );
    expect(e.message).toBe('division by zero');
    expect(logs).toContainEqual(['js-calc', 'division by zero']);
  });
});
