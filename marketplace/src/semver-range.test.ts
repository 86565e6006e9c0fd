import { describe, expect, it } from 'vitest';
import { maxSatisfying, satisfies } from './semver-range.js';

describe('npm-style ranges for driver dependencies', () => {
  it.each([
    ['1.2.3', '^1.2.0', true],
    ['2.0.0', '^1.2.0', false],
    ['0.3.9', '^0.3.0', true],
    ['0.4.0', '^0.3.0', false],
    ['0.0.4', '^0.0.3', false],
    ['1.2.9', '~1.2.3', true],
    ['1.3.0', '~1.2.3', false],
    ['1.9.0', '1.x', true],
    ['2.0.0', '1.x', false],
    ['5.0.0', '*', true],
    ['1.5.0', '>=1.0.0 <2.0.0', true],
    ['2.0.0', '>=1.0.0 <2.0.0', false],
    ['1.4.0', '1.0.0 - 1.4.0', true],
    ['1.4.1', '1.0.0 - 1.4.0', false],
    ['3.0.0', '^1.0.0 || ^3.0.0', true],
    ['1.2.3', '1.2.3', true],
    ['1.2.4', '1.2.3', false],
    ['2.0.0-rc.1', '^1.0.0', false],
    ['2.0.0-rc.1', '*', false],
    ['2.0.0-rc.2', '>=2.0.0-rc.1', true],
    ['1.3.0', '>1.2', true],
    ['1.2.9', '>1.2', false],
    ['1.2.9', '<=1.2', true],
  ])('%s satisfies %s: %s', (version, range, expected) => {
    expect(satisfies(version, range)).toBe(expected);
  });

  it('picks the highest matching version and refuses malformed input', () => {
    expect(maxSatisfying(['1.0.0', '1.10.0', '1.9.0', '2.0.0'], '^1.0.0')).toBe('1.10.0');
    expect(maxSatisfying(['1.0.0'], '^2.0.0')).toBeUndefined();
    expect(() => satisfies('1.0', '*')).toThrow(/SemVer/);
    expect(() => satisfies('1.0.0', '>>1')).toThrow(/range/);
  });
});
