/**
 * (b) Fuzzing every SyscallService method (and the session stream) with random and malformed protobuf
 * payloads, sent as raw bytes by a generic grpc-js client with identity serializers. >= 10,000 cases in
 * total. Every call must be answered (no hang) with a proper status: a real gRPC code, never UNKNOWN, and
 * a message without stack traces or host paths; the kernel and its components must still serve afterwards.
 */
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTO_ROOT } from '../../host/src/server/server.js';
import { SYSCALL_NAMES } from '../../host/src/syscalls/index.js';
import { startTestKernel, type TestKernel } from './harness.js';

const SEED = Number(process.env.CAM_OS_FUZZ_SEED ?? 0x5eed1234);
const CASES_PER_METHOD = Number(process.env.CAM_OS_FUZZ_CASES ?? 520);
const CONCURRENCY = 48;
const DEADLINE_MS = 15_000;

function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const bytes = (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  return { next, int, bytes, pick: <T>(xs: readonly T[]) => xs[int(xs.length)]! };
}
type Rng = ReturnType<typeof prng>;

const NASTY_STRINGS = [
  '',
  'agent-a',
  'a'.repeat(300),
  '\u0000',
  'ns/../..',
  '../../etc/passwd',
  '\ud83d\ude00',
  '\ud800',
  '~~~',
  'agent-a~x~AAAAAAAAAAAAAAAAAAAAAA',
  'scheduler.weight.urgency',
  'DROP TABLE',
  '0',
  '-1',
];

function randomString(r: Rng): string {
  // Oversized values are rare: they test limits, and thousands of them would only test loopback bandwidth.
  if (r.next() < 0.003) return 'x'.repeat(70_000);
  if (r.next() < 0.5) return r.pick(NASTY_STRINGS);
  const n = r.int(40);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(r.next() < 0.8 ? 32 + r.int(95) : r.int(0xffff));
  return s;
}

function randomNumber(r: Rng, f: protobuf.Field): unknown {
  const specials = [0, 1, -1, 100, 101, 2 ** 31 - 1, -(2 ** 31), 2 ** 53, Number.MAX_SAFE_INTEGER];
  if (f.type === 'double' || f.type === 'float') {
    return r.pick([
      0,
      -0,
      1.5,
      -1e308,
      1e308,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      0.3,
    ]);
  }
  if (f.type === 'bool') return r.next() < 0.5;
  if (f.type.includes('64'))
    return r.next() < 0.5
      ? r.pick(specials)
      : `${r.next() < 0.3 ? '-' : ''}${r.int(2 ** 31) * 2 ** 22 + r.int(2 ** 22)}`;
  return r.pick(specials.filter((v) => Math.abs(v) < 2 ** 31)) | 0;
}

/** A random but well-formed instance of `type` (random values of the right types). */
function randomMessage(r: Rng, type: protobuf.Type, depth = 0): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const f of type.fieldsArray) {
    if (r.next() < 0.3) continue;
    const value = (): unknown => {
      if (f.resolvedType instanceof protobuf.Type)
        return depth > 3 ? {} : randomMessage(r, f.resolvedType, depth + 1);
      if (f.resolvedType instanceof protobuf.Enum) return r.next() < 0.7 ? r.int(8) : r.int(1000) - 500;
      if (f.type === 'string') return randomString(r);
      if (f.type === 'bytes')
        return r.next() < 0.003 ? Buffer.alloc(4 * 1024 * 1024 + 1, 7) : r.bytes(r.int(64));
      return randomNumber(r, f);
    };
    if (f instanceof protobuf.MapField) {
      const m: Record<string, unknown> = {};
      const n = r.next() < 0.05 ? 300 : r.int(4);
      for (let i = 0; i < n; i++) m[r.next() < 0.9 ? `k${i}` : randomString(r)] = randomString(r);
      o[f.name] = m;
    } else if (f.repeated) {
      o[f.name] = Array.from({ length: r.next() < 0.05 ? 300 : r.int(4) }, value);
    } else {
      o[f.name] = value();
    }
  }
  return o;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** Hand-made malformed encodings: wrong wire types, bad lengths, unterminated varints, groups. */
function malformed(r: Rng): Buffer {
  const field = 1 + r.int(12);
  const cases: Array<() => Buffer> = [
    () => Buffer.concat([varint((field << 3) | 2), varint(1_000_000), r.bytes(3)]), // length beyond the end
    () => Buffer.concat([varint((field << 3) | 0), Buffer.alloc(11, 0xff)]), // varint longer than 10 bytes
    () => Buffer.concat([varint((field << 3) | 3), r.bytes(8)]), // unterminated start-group
    () => Buffer.concat([varint((field << 3) | 4)]), // end-group without start
    () => Buffer.concat([varint((field << 3) | 6), r.bytes(4)]), // wire type 6 does not exist
    () => Buffer.concat([varint((field << 3) | 1), r.bytes(r.int(8))]), // truncated fixed64
    () => Buffer.concat([varint((field << 3) | 5), r.bytes(2)]), // truncated fixed32
    () => Buffer.concat([varint((field << 3) | 0), varint(2 ** 40)]), // varint where a string belongs
    () => Buffer.concat([varint((field << 3) | 2), varint(4), Buffer.from([0xc3, 0x28, 0xa0, 0xa1])]), // bad UTF-8
    () => Buffer.concat([varint(0), r.bytes(4)]), // field number 0
    () => Buffer.concat([varint((536870911 << 3) >>> 0), r.bytes(2)]), // largest field number
    () => {
      // deeply nested length-delimited field 1 (task / message) 200 levels
      let b = Buffer.alloc(0);
      for (let i = 0; i < 200; i++) b = Buffer.concat([varint((1 << 3) | 2), varint(b.length), b]);
      return b;
    },
  ];
  return r.pick(cases)();
}

function mutate(r: Rng, b: Buffer): Buffer {
  if (b.length === 0) return r.bytes(1 + r.int(16));
  const c = Buffer.from(b);
  switch (r.int(4)) {
    case 0:
      for (let i = 0; i < 1 + r.int(4); i++) {
        const at = r.int(c.length);
        c[at] = c[at]! ^ (1 << r.int(8));
      }
      return c;
    case 1:
      return c.subarray(0, r.int(c.length));
    case 2:
      return Buffer.concat([c, r.bytes(1 + r.int(32))]);
    default:
      return Buffer.concat([c.subarray(0, r.int(c.length)), r.bytes(r.int(8)), c.subarray(r.int(c.length))]);
  }
}

interface Answer {
  method: string;
  code: number;
  details: string;
  ms: number;
}

let k: TestKernel;
let client: grpc.Client;
let root: protobuf.Root;

beforeAll(async () => {
  k = await startTestKernel();
  client = new grpc.Client(k.address, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  root = protobuf.loadSync(`${PROTO_ROOT}/cam_syscall.proto`);
  root.resolveAll();
});

afterAll(async () => {
  client?.close();
  await k?.stop();
});

function rawCall(method: string, payload: Buffer): Promise<Answer> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      `/cam.syscall.SyscallService/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      payload,
      new grpc.Metadata(),
      { deadline: new Date(Date.now() + DEADLINE_MS) },
      (e) =>
        resolve({ method, code: e ? e.code : 0, details: e ? e.details : '', ms: performance.now() - t0 }),
    );
  });
}

async function pool<T>(jobs: Array<() => Promise<T>>, n: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await jobs[i]!();
      }
    }),
  );
  return out;
}

describe('fuzzing the SyscallService with raw protobuf payloads', () => {
  it(`answers ${SYSCALL_NAMES.length * CASES_PER_METHOD} random and malformed calls with proper statuses`, {
    timeout: 600_000,
  }, async () => {
    const r = prng(SEED);
    const jobs: Array<() => Promise<Answer>> = [];
    for (const method of SYSCALL_NAMES) {
      const type = root.lookupType(`cam.syscall.${method}Request`);
      for (let i = 0; i < CASES_PER_METHOD; i++) {
        const kind = i % 4;
        let payload: Buffer;
        if (kind === 0) payload = r.bytes(r.int(256));
        else if (kind === 1) payload = malformed(r);
        else {
          let valid: Buffer;
          try {
            valid = Buffer.from(type.encode(type.fromObject(randomMessage(r, type))).finish());
          } catch {
            valid = r.bytes(r.int(64));
          }
          payload = kind === 2 ? valid : mutate(r, valid);
        }
        jobs.push(() => rawCall(method, payload));
      }
    }
    if (!process.env.CAM_OS_FUZZ_CASES) expect(jobs.length).toBeGreaterThanOrEqual(10_000);
    const answers = await pool(jobs, CONCURRENCY);
    const byCode = new Map<number, number>();
    for (const a of answers) byCode.set(a.code, (byCode.get(a.code) ?? 0) + 1);
    console.info(
      `fuzz seed ${SEED}: ${answers.length} calls, codes ${JSON.stringify(Object.fromEntries(byCode))}`,
    );
    const kinds = new Map<string, number>();
    for (const a of answers) {
      const key = `${a.code} ${a.method}: ${a.details.replace(/'[^']*'/g, "'…'").slice(0, 90)}`;
      kinds.set(key, (kinds.get(key) ?? 0) + 1);
    }
    const top = [...kinds].sort((x, y) => y[1] - x[1]).slice(0, 12);
    console.info(top.map(([kk, n]) => `${n} x ${kk}`).join('\n'));
    const slow = [...answers].sort((x, y) => y.ms - x.ms).slice(0, 8);
    console.info(
      `slowest: ${slow.map((a) => `${a.method} ${Math.round(a.ms)} ms (${a.code} ${a.details.slice(0, 60)})`).join('; ')}`,
    );

    const bad = answers.filter(
      (a) =>
        a.code === grpc.status.UNKNOWN ||
        a.code === grpc.status.DEADLINE_EXCEEDED ||
        a.code < 0 ||
        a.code > 16 ||
        /\n\s+at |\/work\/|node_modules|\.ts:\d/.test(a.details) ||
        (a.code !== 0 && a.details.length === 0),
    );
    expect(bad.slice(0, 5)).toEqual([]);
    // Every method saw both accepted and refused payloads, so the fuzz reached the handlers.
    for (const m of SYSCALL_NAMES) expect(answers.some((a) => a.method === m && a.code !== 0)).toBe(true);
    expect(answers.filter((a) => a.code === grpc.status.INVALID_ARGUMENT).length).toBeGreaterThan(1000);
  });

  it('leaves the kernel and its components serving', async () => {
    const hc = root.lookupType('cam.syscall.HealthCheckRequest');
    const a = await rawCall(
      'HealthCheck',
      Buffer.from(hc.encode({ caller_id: 'after-fuzz', detailed: true }).finish()),
    );
    expect(a.code).toBe(0);
    for (const c of k.running.kernel.list()) expect(['healthy', 'degraded']).toContain(c.status.health);
    expect(k.running.kernel.list().every((c) => c.status.health !== 'failed')).toBe(true);
  });

  it('answers random bytes on the session stream with a status, not a crash', {
    timeout: 120_000,
  }, async () => {
    const r = prng(SEED ^ 0xabcdef);
    const codes: number[] = [];
    const hung: string[][] = [];
    for (let i = 0; i < 60; i++) {
      const stream = client.makeBidiStreamRequest(
        '/cam.session.v1.SessionService/Open',
        (b: Buffer) => b,
        (b: Buffer) => b,
        new grpc.Metadata(),
        { deadline: new Date(Date.now() + DEADLINE_MS) },
      );
      const done = new Promise<number>((resolve) => {
        stream.on('data', () => {});
        stream.on('error', (e: grpc.ServiceError) => resolve(e.code));
        stream.on('status', (s: grpc.StatusObject) => resolve(s.code));
      });
      const sent: string[] = [];
      for (let j = 0; j < 1 + r.int(4); j++) {
        const b = i % 2 ? malformed(r) : r.bytes(r.int(128));
        sent.push(b.toString('hex').slice(0, 200));
        stream.write(b);
      }
      stream.end();
      const code = await Promise.race([
        done,
        new Promise<number>((res) => setTimeout(() => res(-1), DEADLINE_MS + 2000)),
      ]);
      if (code === -1) hung.push(sent);
      codes.push(code);
    }
    expect(hung).toEqual([]);
    expect(
      codes.every(
        (c) => c >= 0 && c <= 16 && c !== grpc.status.UNKNOWN && c !== grpc.status.DEADLINE_EXCEEDED,
      ),
    ).toBe(true);
  });
});
