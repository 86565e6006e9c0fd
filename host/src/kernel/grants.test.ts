import { describe, expect, it } from 'vitest';
import { KernelError } from '../errors.js';
import { checkGrants, isGranted, jsName } from './grants.js';

const kv = { key: 'cam:kernel/kv', qualified: 'cam:kernel/kv@0.1.0' };

describe('grants', () => {
  it('matches an exact versioned grant and an unversioned one, nothing else', () => {
    expect(isGranted(kv, ['cam:kernel/kv@0.1.0'])).toBe(true);
    expect(isGranted(kv, ['cam:kernel/kv'])).toBe(true);
    expect(isGranted(kv, ['cam:kernel/kv@0.2.0'])).toBe(false);
    expect(isGranted(kv, ['cam:kernel/kvx', 'cam:kernel/log'])).toBe(false);
  });

  it('names every denied import in one error', () => {
    const log = { key: 'cam:kernel/log', qualified: 'cam:kernel/log@0.1.0' };
    try {
      checkGrants('mem', [kv, log], ['cam:kernel/log']);
      throw new Error('not refused');
    } catch (e) {
      expect(e).toBeInstanceOf(KernelError);
      expect((e as KernelError).code).toBe('KERNEL_ERR_IMPORT_DENIED');
      expect((e as KernelError).message).toContain('cam:kernel/kv@0.1.0');
      expect((e as KernelError).message).not.toContain('imports cam:kernel/log');
    }
  });

  it('maps WIT names to jco JS names', () => {
    expect(jsName('add-via')).toBe('addVia');
    expect(jsName('export-state')).toBe('exportState');
    expect(jsName('get')).toBe('get');
  });
});
