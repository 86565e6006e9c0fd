#!/usr/bin/env node
// The bare grpc-js echo server of bench/grpc.bench.ts, in a process of its own so its CPU use is its own
// (the kernel's process serves only the kernel). Prints {"port": N} once listening; answers
//   /bench.Echo/Echo  the request bytes, as they came (identity serializers);
//   /bench.Echo/Cpu   this process's user+system CPU time so far, in microseconds, as JSON;
//   /bench.Echo/HeapStart, /bench.Echo/HeapStop
//                     V8's sampling heap profiler over the calls in between (4 KB interval, collected objects
//                     included, as the bench measures the kernel): {"bytes": N} from HeapStop.
// Exits when its stdin closes (the bench process ended) or on SIGTERM.
import { Session } from 'node:inspector/promises';
import * as grpc from '@grpc/grpc-js';

const server = new grpc.Server();
const id = (b) => b;
server.register('/bench.Echo/Echo', (call, cb) => cb(null, call.request), id, id, 'unary');
server.register(
  '/bench.Echo/Cpu',
  (_call, cb) => {
    const u = process.cpuUsage();
    cb(null, Buffer.from(JSON.stringify({ us: u.user + u.system })));
  },
  id,
  id,
  'unary',
);
const inspector = new Session();
inspector.connect();
const json = (v) => Buffer.from(JSON.stringify(v));
const answer = (method, f) =>
  server.register(
    `/bench.Echo/${method}`,
    (_call, cb) =>
      f().then(
        (v) => cb(null, json(v)),
        (e) => cb({ code: grpc.status.INTERNAL, details: String(e) }),
      ),
    id,
    id,
    'unary',
  );
answer('HeapStart', async () => {
  await inspector.post('HeapProfiler.enable');
  await inspector.post('HeapProfiler.startSampling', {
    samplingInterval: 4096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return {};
});
answer('HeapStop', async () => {
  const { profile } = await inspector.post('HeapProfiler.stopSampling');
  return { bytes: profile.samples.reduce((n, x) => n + x.size, 0) };
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, port) => {
  if (e) {
    process.stderr.write(`echo server: ${e.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
