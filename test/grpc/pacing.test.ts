/**
 * Unary pacing (host/src/grpc/turn-gate.ts) over the wire: calls beyond the per-turn quota wait for later
 * turns, and a call the client cancels while it waits is never started.
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNARY_CALLS_PER_TURN } from '../../host/src/grpc/turn-gate.js';
import { PROTO_ROOT } from '../../host/src/server/server.js';
import { startTestKernel, type TestKernel } from './harness.js';

const CALLS = 400;

let k: TestKernel;
let client: grpc.Client;

beforeAll(async () => {
  k = await startTestKernel({ system: false });
  client = new grpc.Client(k.address, grpc.credentials.createInsecure());
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())),
  );
});

afterAll(async () => {
  client?.close();
  await k?.stop();
});

describe('unary pacing', () => {
  it('does not start a call that was cancelled while it waited for its turn', async () => {
    expect(k.gateway.turns.perTurn).toBe(UNARY_CALLS_PER_TURN);
    const type = protobuf
      .loadSync(join(PROTO_ROOT, 'cam_syscall.proto'))
      .lookupType('cam.syscall.EmitMetricRequest');
    const payload = Buffer.from(
      type.encode(type.fromObject({ name: 'pacing.test', value: 1, caller_id: 'pacer' })).finish(),
    );
    const before = k.running.dispatcher.metrics().find((m) => m.name === 'EmitMetric')!.calls;
    const calls: grpc.ClientUnaryCall[] = [];
    const codes = Array.from(
      { length: CALLS },
      () =>
        new Promise<number>((resolve) => {
          calls.push(
            client.makeUnaryRequest(
              '/cam.syscall.SyscallService/EmitMetric',
              (b: Buffer) => b,
              (b: Buffer) => b,
              payload,
              (e) => resolve(e ? e.code : grpc.status.OK),
            ),
          );
        }),
    );
    // Once the kernel holds many of them back, cancel the newest: it waits behind all the others.
    const deadline = Date.now() + 10_000;
    let waiting = 0;
    while (waiting < CALLS / 4 && Date.now() < deadline) {
      await new Promise((r) => setImmediate(r));
      waiting = k.gateway.turns.pending;
    }
    expect(waiting).toBeGreaterThanOrEqual(CALLS / 4);
    calls.at(-1)!.cancel();
    const got = await Promise.all(codes);
    expect(got.slice(0, -1).every((c) => c === grpc.status.OK)).toBe(true);
    expect(got.at(-1)).toBe(grpc.status.CANCELLED);
    const after = k.running.dispatcher.metrics().find((m) => m.name === 'EmitMetric')!.calls;
    expect(after - before).toBe(CALLS - 1);
    expect(k.gateway.turns.pending).toBe(0);
  });
});
