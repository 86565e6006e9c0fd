import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, fromGuestError, GrpcStatus, KernelError, sanitize } from './errors.js';

const DOC = new URL('../../docs/errors.md', import.meta.url);

/** The rows docs/errors.md must hold, in catalogue order (`npm run docs:errors` regenerates them). */
export function renderErrorTable(): string {
  return Object.entries(ERROR_CATALOGUE)
    .map(([code, e]) => `| \`${code}\` | ${e.status} (${GrpcStatus[e.status]}) | ${e.summary} |`)
    .join('\n');
}

describe('error catalogue', () => {
  it('matches docs/errors.md row for row', () => {
    const doc = readFileSync(DOC, 'utf8');
    // Compare cell by cell: the formatter may pad the table's columns.
    const cells = (text: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith('| `'))
        .map((l) =>
          l
            .split('|')
            .map((c) => c.trim())
            .join('|'),
        );
    expect(cells(doc)).toEqual(cells(renderErrorTable()));
  });

  it('sanitizes: no stack traces, host paths or foreign errors reach a caller', () => {
    const leak = new KernelError(
      'KERNEL_ERR_COMPONENT_INVALID',
      'cannot read /work/main/host/dist/cache/x.wasm\n    at foo',
    );
    expect(sanitize(leak).message).toBe('cannot read <path>');
    const foreign = sanitize(
      new TypeError("Cannot read properties of undefined (reading 'x') at /srv/app.js:1"),
    );
    expect(foreign.code).toBe('KERNEL_ERR_INTERNAL');
    expect(foreign.message).toBe('internal kernel error');
  });

  it('maps subsystem errors (trust, kv) onto their catalogue entries', () => {
    const trust = Object.assign(new Error('KERNEL_ERR_TRUST_BAD_SIGNATURE: ml-dsa-65 failed'), {
      id: 'KERNEL_ERR_TRUST_BAD_SIGNATURE',
    });
    expect(sanitize(trust).status).toBe('UNAUTHENTICATED');
    expect(sanitize(trust).message).toBe('ml-dsa-65 failed');
    const kv = Object.assign(new Error('redis down'), { code: 'KV_ERR_UNAVAILABLE' });
    expect(sanitize(kv).code).toBe('KERNEL_ERR_KV_UNAVAILABLE');
  });

  it('turns guest kernel-error variants into statuses, and nothing else into an arbitrary one', () => {
    expect(fromGuestError('m', { tag: 'not-found', val: 'no such key' }).status).toBe('NOT_FOUND');
    expect(fromGuestError('m', { tag: 'deadline-exceeded' }).status).toBe('DEADLINE_EXCEEDED');
    expect(fromGuestError('m', { tag: 'teapot', val: 'x' }).code).toBe('KERNEL_ERR_GUEST_VALUE');
    expect(fromGuestError('m', 'x'.repeat(2000)).message.length).toBeLessThan(510);
  });
});
