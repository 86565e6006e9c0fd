/**
 * Trust chain: the cost of checking a signed component, and of the post-quantum secure channel.
 *
 * Suite 'trust':
 *  - ML-DSA-65 verify and sign through liboqs (WebAssembly), baseline @noble/post-quantum (pure JS) in the
 *    same run, over the real message a manifest signature covers (domain prefix + RFC 8785 body).
 *  - Ed25519 verify through node:crypto (cached KeyObject), baseline @noble/curves.
 *  - verifyComponentSync on a 1 MiB component: schema check, trust-store lookup, both signatures, SHA-256 of
 *    the component, policy. Baseline: SHA-256 of the same 1 MiB alone (the part no verifier can skip).
 *  - ML-KEM-768 keygen+encaps+decaps through liboqs, baseline noble (why the channel uses liboqs).
 *  - A full mutually authenticated channel handshake (both sides, in one process), and seal+open of a
 *    1 KiB record, baseline AES-256-GCM seal+open with node:crypto directly.
 * Run: `npm run bench` (or `node bench/run.mjs trust`).
 */
import { createCipheriv, createDecipheriv, createHash, verify as edVerify, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ed25519 } from '@noble/curves/ed25519.js';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import {
  acceptChannel,
  ed25519PublicKeyObject,
  hybridSignSync,
  initiateChannel,
  loadMlDsa65,
  loadMlKem768,
  manifestSigningMessage,
  publicKeyOf,
  TrustStore,
  verifyComponentSync,
} from '../host/src/trust/index.js';
import {
  mlDsa65Sign,
  mlDsa65Verify,
  mlKem768Decapsulate,
  mlKem768Encapsulate,
  mlKem768KeyPair,
} from '../host/src/trust/liboqs.js';
import { buildSignedPackage, fakeComponentBytes, testKeyPair } from '../host/src/trust/testing.js';
import { type BenchResult, round, stats } from './types.js';

const SUITE = 'trust';

function sample(
  iterations: number,
  fn: () => void,
  warmup = Math.min(20, iterations),
): { median: number; p99: number } {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return stats(times);
}

function result(
  name: string,
  unit: 'ms' | 'µs',
  measured: { median: number; p99: number },
  baseline?: { name: string; median: number },
  notes?: string,
): BenchResult {
  const scale = unit === 'µs' ? 1000 : 1;
  return {
    suite: SUITE,
    name,
    unit,
    median: round(measured.median * scale),
    p99: round(measured.p99 * scale),
    ...(baseline ? { baseline: { name: baseline.name, median: round(baseline.median * scale) } } : {}),
    ...(notes ? { notes } : {}),
  };
}

export async function run(): Promise<BenchResult[]> {
  const out: BenchResult[] = [];
  const t0 = performance.now();
  await loadMlDsa65();
  await loadMlKem768();
  const loadMs = performance.now() - t0;

  const alice = testKeyPair('bench/alice');
  const component = fakeComponentBytes(1024 * 1024, 0x42);
  const pkg = await buildSignedPackage({ keyPair: alice, componentBytes: component });
  const message = manifestSigningMessage(pkg.manifest);
  const sig = hybridSignSync(message, alice);

  // ML-DSA-65 verify
  let ok = true;
  const oqsVerify = sample(1000, () => {
    ok &&= mlDsa65Verify(message, sig.mlDsa65, alice.mlDsa65.publicKey);
  });
  const nobleVerify = sample(60, () => {
    ok &&= ml_dsa65.verify(sig.mlDsa65, message, alice.mlDsa65.publicKey);
  });
  out.push(
    result(
      'ML-DSA-65 verify (liboqs wasm)',
      'ms',
      oqsVerify,
      { name: 'noble verify', median: nobleVerify.median },
      `${message.byteLength}-byte manifest message; liboqs load (both modules) ${round(loadMs, 1)} ms once`,
    ),
  );

  // ML-DSA-65 sign
  const oqsSign = sample(300, () => {
    mlDsa65Sign(message, alice.mlDsa65.secretKey);
  });
  const nobleSign = sample(30, () => {
    ml_dsa65.sign(message, alice.mlDsa65.secretKey);
  });
  out.push(
    result(
      'ML-DSA-65 sign (liboqs wasm)',
      'ms',
      oqsSign,
      { name: 'noble sign', median: nobleSign.median },
      'hedged signing, rejection sampling makes the time vary',
    ),
  );

  // Ed25519 verify
  const edKey = ed25519PublicKeyObject(alice.ed25519.publicKey);
  const nodeEd = sample(3000, () => {
    ok &&= edVerify(null, message, edKey, sig.ed25519);
  });
  const nobleEd = sample(300, () => {
    ok &&= ed25519.verify(sig.ed25519, message, alice.ed25519.publicKey);
  });
  out.push(
    result('Ed25519 verify (node:crypto)', 'µs', nodeEd, {
      name: '@noble/curves verify',
      median: nobleEd.median,
    }),
  );

  // Full verifier on a 1 MiB component
  const dir = await mkdtemp(join(tmpdir(), 'cam-bench-trust-'));
  try {
    const store = await TrustStore.open(dir);
    await store.add(publicKeyOf(alice));
    const policy = { allowedImports: ['cam:kernel/*', 'wasi:clocks/*'], maxMemoryPages: 1024 };
    const verifyFull = sample(300, () => {
      ok &&= verifyComponentSync({
        componentBytes: component,
        manifest: pkg.manifest,
        trustStore: store,
        policy,
      }).ok;
    });
    const sha = sample(300, () => {
      createHash('sha256').update(component).digest();
    });
    const text = JSON.stringify(pkg.manifest);
    const verifyFromText = sample(300, () => {
      ok &&= verifyComponentSync({ componentBytes: component, manifest: text, trustStore: store, policy }).ok;
    });
    out.push(
      result(
        'verifyComponent, 1 MiB component',
        'ms',
        verifyFull,
        { name: 'SHA-256 of 1 MiB alone', median: sha.median },
        `manifest given as JSON text: ${round(verifyFromText.median)} ms`,
      ),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  // ML-KEM-768 (the channel's KEM)
  const oqsKem = sample(300, () => {
    const k = mlKem768KeyPair();
    const e = mlKem768Encapsulate(k.publicKey);
    mlKem768Decapsulate(e.ciphertext, k.secretKey);
  });
  const nobleKem = sample(60, () => {
    const k = ml_kem768.keygen();
    const e = ml_kem768.encapsulate(k.publicKey);
    ml_kem768.decapsulate(e.cipherText, k.secretKey);
  });
  out.push(
    result('ML-KEM-768 keygen+encaps+decaps (liboqs wasm)', 'ms', oqsKem, {
      name: 'noble',
      median: nobleKem.median,
    }),
  );

  // Channel handshake (mutual identities) and records
  const bobKeys = testKeyPair('bench/bob');
  const dir2 = await mkdtemp(join(tmpdir(), 'cam-bench-channel-'));
  try {
    const trust = await TrustStore.open(dir2);
    await trust.add(publicKeyOf(alice));
    await trust.add(publicKeyOf(bobKeys));
    const handshakes: number[] = [];
    let channels:
      | [
          import('../host/src/trust/index.js').SecureChannel,
          import('../host/src/trust/index.js').SecureChannel,
        ]
      | undefined;
    for (let i = 0; i < 110; i++) {
      const h0 = performance.now();
      const init = await initiateChannel({ identity: alice, peerKeys: trust });
      const resp = await acceptChannel(init.hello, { identity: bobKeys, peerKeys: trust });
      const { finish, channel } = init.complete(resp.accept);
      const other = resp.complete(finish);
      if (i >= 10) handshakes.push(performance.now() - h0);
      channels = [channel, other];
    }
    out.push(
      result(
        'channel handshake, mutual ML-DSA-65+Ed25519 identities (both sides)',
        'ms',
        stats(handshakes),
        undefined,
        'ML-KEM-768 + X25519, 2 hybrid signs + 2 hybrid verifies',
      ),
    );

    const [a, b] = channels!;
    const record = randomBytes(1024);
    const channelRecord = sample(5000, () => {
      b.open(a.seal(record));
    });
    const key = randomBytes(32);
    let counter = 0;
    const rawGcm = sample(5000, () => {
      const iv = Buffer.alloc(12);
      iv.writeUInt32BE(counter++, 8);
      const c = createCipheriv('aes-256-gcm', key, iv);
      const ct = Buffer.concat([c.update(record), c.final()]);
      const d = createDecipheriv('aes-256-gcm', key, iv);
      d.setAuthTag(c.getAuthTag());
      Buffer.concat([d.update(ct), d.final()]);
    });
    out.push(
      result('channel seal+open, 1 KiB record', 'µs', channelRecord, {
        name: 'raw AES-256-GCM seal+open',
        median: rawGcm.median,
      }),
    );
  } finally {
    await rm(dir2, { recursive: true, force: true });
  }

  if (!ok) throw new Error('a verification failed during the benchmark; the figures are not valid');
  return out;
}
