#!/usr/bin/env node
// The load generator of bench/grpc.bench.ts, run as a SEPARATE process so client and server do not share
// an event loop or a core. Reads one job as JSON from argv[2], prints one JSON result line.
//
// Jobs:
//   { mode: 'unary', address, path, payloadB64, concurrency, calls }
//       raw bytes with identity serializers: the same client code path for the kernel and the echo baseline
//   { mode: 'session', address, protoRoot, field, request, concurrency, calls, batch? }
//       one cam.session.v1 stream, `concurrency` calls in flight (capped by the granted window); with
//       `batch`, the calls sent together (the first window, then the replacements for one ResultBatch)
//       go as one CallBatch, as the SDK's SessionClient does
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

const job = JSON.parse(process.argv[2]);
const client = new grpc.Client(job.address, grpc.credentials.createInsecure());
await new Promise((resolve, reject) =>
  client.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())),
);

function summary(lat, wallMs, errors, firstError) {
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0;
  return {
    calls: lat.length,
    errors,
    firstError,
    p50Us: q(0.5),
    p99Us: q(0.99),
    throughput: (lat.length / wallMs) * 1000,
  };
}

async function unary() {
  const payload = Buffer.from(job.payloadB64, 'base64');
  const lat = [];
  let errors = 0;
  let firstError = '';
  let issued = 0;
  const one = () =>
    new Promise((resolve) => {
      const t0 = process.hrtime.bigint();
      client.makeUnaryRequest(
        job.path,
        (b) => b,
        (b) => b,
        payload,
        new grpc.Metadata(),
        {},
        (e) => {
          lat.push(Number(process.hrtime.bigint() - t0) / 1000);
          if (e) {
            errors++;
            firstError ||= `${e.code} ${e.details}`;
          }
          resolve();
        },
      );
    });
  // Warm-up: connection, JIT, server-side caches.
  for (let i = 0; i < Math.min(200, job.calls / 10); i++) await one();
  lat.length = 0;
  errors = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      while (issued < job.calls) {
        issued++;
        await one();
      }
    }),
  );
  return summary(lat, performance.now() - start, errors, firstError);
}

async function session() {
  const root = new protobuf.Root();
  // Imports (cam_syscall.proto) resolve against the proto root, as protoc's include path would.
  root.resolvePath = (_origin, target) => (target.startsWith('/') ? target : `${job.protoRoot}/${target}`);
  root.loadSync('cam/session/v1/session.proto', { keepCase: true });
  const ClientMessage = root.lookupType('cam.session.v1.ClientMessage');
  const ServerMessage = root.lookupType('cam.session.v1.ServerMessage');
  const stream = client.makeBidiStreamRequest(
    '/cam.session.v1.SessionService/Open',
    (b) => b,
    (b) => b,
    new grpc.Metadata(),
    {},
  );
  const sent = new Map();
  const lat = [];
  let errors = 0;
  let firstError = '';
  let nextId = 1;
  let window = 0;
  let measuring = false;
  const warm = Math.min(500, job.calls / 10);
  let target = warm;
  let outbox = [];
  const send = () => {
    const id = nextId++;
    sent.set(id, process.hrtime.bigint());
    const call = { request_id: id, [job.field]: job.request };
    if (job.batch) outbox.push(call);
    else stream.write(Buffer.from(ClientMessage.encode({ call }).finish()));
  };
  const flush = () => {
    if (outbox.length === 0) return;
    const calls = outbox;
    outbox = [];
    stream.write(Buffer.from(ClientMessage.encode({ batch: { calls } }).finish()));
  };
  let answered = 0;
  let issued = 0;
  let phaseDone;
  stream.on('data', (buf) => {
    const m = ServerMessage.decode(buf);
    if (m.welcome) {
      window = m.welcome.window;
      phaseDone?.();
      return;
    }
    for (const r of m.results ? m.results.results : [m.result]) {
      const id = Number(r.request_id);
      const t0 = sent.get(id);
      sent.delete(id);
      if (measuring) lat.push(Number(process.hrtime.bigint() - t0) / 1000);
      if (r.status && r.status.code !== 0) {
        errors++;
        firstError ||= `${r.status.code} ${r.status.message}`;
      }
      answered++;
      if (issued < target) {
        issued++;
        send();
      } else if (answered === issued) phaseDone?.();
    }
    flush();
  });
  stream.on('error', (e) => {
    firstError ||= `${e.code} ${e.details}`;
    phaseDone?.();
  });
  await new Promise((r) => (phaseDone = r));
  const inFlight = Math.min(job.concurrency, window);
  const phase = async (n) => {
    target = issued + n;
    const p = new Promise((r) => (phaseDone = r));
    for (let i = 0; i < inFlight && issued < target; i++) {
      issued++;
      send();
    }
    flush();
    await p;
  };
  await phase(warm);
  measuring = true;
  errors = 0;
  const start = performance.now();
  await phase(job.calls);
  const wall = performance.now() - start;
  stream.end();
  return { ...summary(lat, wall, errors, firstError), window, inFlight };
}

const result = job.mode === 'session' ? await session() : await unary();
client.close();
// The client's own CPU per call (whole run, warm-up included): tells a client-bound run from a server-bound one.
const cpu = process.cpuUsage();
result.clientCpuUsPerCall = (cpu.user + cpu.system) / result.calls;
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
