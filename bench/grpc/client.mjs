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
//       calls to two targets in alternating blocks of `block` calls (a, b, a, b, ...) until each has had
//       `calls`: both are measured under the same load of the machine, moment by moment, so their ratio
//       does not carry the drift between two separate runs. A target is unary ({ address, path, payloadB64 })
//       or a session ({ mode: 'session', address, protoRoot, field, request, batch }, one stream for all its
//       blocks); either may set its own `calls` and `block`. Prints { a: result, b: result }, each target's
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

/** Warm-up (connection, JIT, server-side caches) for a run of `total` calls, then forget what it measured. */
async function warm(t, total) {
  for (let i = 0; i < Math.min(200, total / 10); i++) await unaryCall(t);
  t.lat.length = 0;
  t.errors = 0;
  t.firstError = '';
}

/** The same for a session (openSession below): its calls are measured from then on. */
async function warmSession(t, total) {
  await t.run(Math.min(500, total / 10));
  t.measuring = true;
  t.errors = 0;
  t.firstError = '';
}

async function unary() {
  const t = target(client, job);
  await warm(t, job.calls);
  const wall = await calls(t, job.calls, job.concurrency);
  return summary(t.lat, wall, t.errors, t.firstError);
}

async function paired() {
  // A target may set its own `calls` and `block` (a session answers several times faster than unary calls).
  const sizes = (spec) => ({ calls: spec.calls ?? job.calls, blockSize: spec.block ?? job.block });
  const ts = [];
  for (const spec of [job.a, job.b]) {
    const c = await connect(spec.address);
    const session = spec.mode === 'session';
    const t = session ? await openSession(c, spec, job.concurrency) : target(c, spec);
    await (session ? warmSession : warm)(t, sizes(spec).calls);
    const block = session ? (n) => t.run(n) : (n) => calls(t, n, job.concurrency);
    ts.push({ t, client: c, block, ...sizes(spec), wall: 0, done: 0 });
  }
  while (ts.some((x) => x.done < x.calls)) {
    for (const x of ts) {
      const n = Math.min(x.blockSize, x.calls - x.done);
      if (n <= 0) continue;
      const start = performance.now();
      await x.block(n);
      x.wall += performance.now() - start;
      x.done += n;
    }
  }
  for (const x of ts) {
    x.t.close?.();
    x.client.close();
  }
  const [a, b] = ts.map((x) => ({
    ...summary(x.t.lat, x.wall, x.t.errors, x.t.firstError),
    ...(x.t.inFlight ? { window: x.t.window, inFlight: x.t.inFlight } : {}),
  }));
  return { a, b, calls: a.calls + b.calls };
}

/**
 * A cam.session.v1 stream to `spec` ({ protoRoot, field, request, batch }) over client `c`, `concurrency`
 * calls in flight (capped by the granted window). `run(n)` makes n more calls and resolves when all are
 * answered; latencies are recorded while `measuring` is set.
 */
async function openSession(c, spec, concurrency) {
  const root = new protobuf.Root();
  // Imports (cam_syscall.proto) resolve against the proto root, as protoc's include path would.
  root.resolvePath = (_origin, target) => (target.startsWith('/') ? target : `${spec.protoRoot}/${target}`);
  root.loadSync('cam/session/v1/session.proto', { keepCase: true });
  const ClientMessage = root.lookupType('cam.session.v1.ClientMessage');
  const ServerMessage = root.lookupType('cam.session.v1.ServerMessage');
  const stream = c.makeBidiStreamRequest(
    '/cam.session.v1.SessionService/Open',
    (b) => b,
    (b) => b,
    new grpc.Metadata(),
    {},
  );
  const t = { lat: [], errors: 0, firstError: '', measuring: false, window: 0, inFlight: 0 };
  const sent = new Map();
  let nextId = 1;
  let goal = 0;
  let outbox = [];
  const send = () => {
    const id = nextId++;
    sent.set(id, process.hrtime.bigint());
    const call = { request_id: id, [spec.field]: spec.request };
    if (spec.batch) outbox.push(call);
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
      t.window = m.welcome.window;
      phaseDone?.();
      return;
    }
    for (const r of m.results ? m.results.results : [m.result]) {
      const id = Number(r.request_id);
      const t0 = sent.get(id);
      sent.delete(id);
      if (t.measuring) t.lat.push(Number(process.hrtime.bigint() - t0) / 1000);
      if (r.status && r.status.code !== 0) {
        t.errors++;
        t.firstError ||= `${r.status.code} ${r.status.message}`;
      }
      answered++;
      if (issued < goal) {
        issued++;
        send();
      } else if (answered === issued) phaseDone?.();
    }
    flush();
  });
  stream.on('error', (e) => {
    t.firstError ||= `${e.code} ${e.details}`;
    phaseDone?.();
  });
  await new Promise((r) => (phaseDone = r));
  t.inFlight = Math.min(concurrency, t.window);
  t.run = async (n) => {
    goal = issued + n;
    const p = new Promise((r) => (phaseDone = r));
    for (let i = 0; i < t.inFlight && issued < goal; i++) {
      issued++;
      send();
    }
    flush();
    await p;
  };
  t.close = () => stream.end();
  return t;
}

async function session() {
  const t = await openSession(client, job, job.concurrency);
  await warmSession(t, job.calls);
  const start = performance.now();
  await t.run(job.calls);
  const wall = performance.now() - start;
  t.close();
  return { ...summary(t.lat, wall, t.errors, t.firstError), window: t.window, inFlight: t.inFlight };
}

const result =
  job.mode === 'session' ? await session() : job.mode === 'paired' ? await paired() : await unary();
client?.close();
// The client's own CPU per call (whole run, warm-up included): tells a client-bound run from a server-bound one.
const cpu = process.cpuUsage();
result.clientCpuUsPerCall = (cpu.user + cpu.system) / result.calls;
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
