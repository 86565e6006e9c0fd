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
//   { mode: 'paired', a: { address, path, payloadB64 }, b: { ... }, concurrency, calls, block }
//       unary calls to two servers in alternating blocks of `block` calls (a, b, a, b, ...) until each has
//       had `calls`: both are measured under the same load of the machine, minute by minute, so their ratio
//       does not carry the drift between two separate runs. Prints { a: result, b: result }, each server's
//       throughput being its calls over the time spent in its own blocks.
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

const job = JSON.parse(process.argv[2]);

async function connect(address) {
  const c = new grpc.Client(address, grpc.credentials.createInsecure());
  await new Promise((resolve, reject) =>
    c.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())),
  );
  return c;
}
const client = job.mode === 'paired' ? undefined : await connect(job.address);

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

/** One unary call to `t` ({ client, path, payload, lat, errors, firstError }), its latency recorded in t.lat. */
function unaryCall(t) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    t.client.makeUnaryRequest(
      t.path,
      (b) => b,
      (b) => b,
      t.payload,
      new grpc.Metadata(),
      {},
      (e) => {
        t.lat.push(Number(process.hrtime.bigint() - t0) / 1000);
        if (e) {
          t.errors++;
          t.firstError ||= `${e.code} ${e.details}`;
        }
        resolve();
      },
    );
  });
}

function target(c, spec) {
  return {
    client: c,
    path: spec.path,
    payload: Buffer.from(spec.payloadB64, 'base64'),
    lat: [],
    errors: 0,
    firstError: '',
  };
}

/** `n` calls to `t`, `concurrency` in flight; the wall time in ms. */
async function calls(t, n, concurrency) {
  let issued = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (issued < n) {
        issued++;
        await unaryCall(t);
      }
    }),
  );
  return performance.now() - start;
}

/** Warm-up (connection, JIT, server-side caches), then forget what it measured. */
async function warm(t) {
  for (let i = 0; i < Math.min(200, job.calls / 10); i++) await unaryCall(t);
  t.lat.length = 0;
  t.errors = 0;
  t.firstError = '';
}

async function unary() {
  const t = target(client, job);
  await warm(t);
  const wall = await calls(t, job.calls, job.concurrency);
  return summary(t.lat, wall, t.errors, t.firstError);
}

async function paired() {
  const ts = [];
  for (const spec of [job.a, job.b])
    ts.push({ ...target(await connect(spec.address), spec), wall: 0, done: 0 });
  for (const t of ts) await warm(t);
  while (ts.some((t) => t.done < job.calls)) {
    for (const t of ts) {
      const n = Math.min(job.block, job.calls - t.done);
      if (n <= 0) continue;
      t.wall += await calls(t, n, job.concurrency);
      t.done += n;
    }
  }
  for (const t of ts) t.client.close();
  const [a, b] = ts.map((t) => summary(t.lat, t.wall, t.errors, t.firstError));
  return { a, b, calls: a.calls + b.calls };
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

const result =
  job.mode === 'session' ? await session() : job.mode === 'paired' ? await paired() : await unary();
client?.close();
// The client's own CPU per call (whole run, warm-up included): tells a client-bound run from a server-bound one.
const cpu = process.cpuUsage();
result.clientCpuUsPerCall = (cpu.user + cpu.system) / result.calls;
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
