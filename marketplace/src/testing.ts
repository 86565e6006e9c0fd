// Helpers for tests and benchmarks that need real signed packages and a real (tiny) transparency log.
// Nothing here is used by the installer.
import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import type { PublisherKeyPair } from '@cam-os/host/trust/keys.js';
import { MANIFEST_SCHEMA, type ManifestBody } from '@cam-os/host/trust/manifest.js';
import { signAndAttach } from '@cam-os/host/trust/sign.js';
import { buildPackage } from './package.js';
import { PACKAGE_FILES, packFiles, unpack } from './package-format.js';
import { logIdOf, type PinnedLog, type SerializedBundle } from './sigstore.js';

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface TestPackageInput {
  keyPair: PublisherKeyPair;
  componentBytes: Uint8Array;
  name: string;
  version: string;
  imports?: readonly string[];
  dependencies?: ReadonlyArray<{ readonly name: string; readonly range: string }>;
  world?: string;
  readme?: string;
}

/** A real package: manifest signed (ML-DSA-65 + Ed25519), sigstore bundle signed, README and LICENSE. */
export async function makeTestPackage(input: TestPackageInput): Promise<Uint8Array> {
  const body: ManifestBody = {
    schema: MANIFEST_SCHEMA,
    name: input.name,
    version: input.version,
    publisher: input.keyPair.keyId,
    component: { digest: `sha256:${sha256Hex(input.componentBytes)}`, size: input.componentBytes.byteLength },
    world: input.world ?? 'test:fixtures/chaos-world',
    abiVersion: '0.1.0',
    capabilities: {
      imports: [...(input.imports ?? ['wasi:cli/exit@0.2.3'])],
      memoryMaxPages: 32,
      deadlineMs: 500,
    },
    dependencies: (input.dependencies ?? []).map((d) => ({ name: d.name, range: d.range })),
  };
  const manifest = await signAndAttach(body, input.keyPair);
  return buildPackage({
    componentBytes: input.componentBytes,
    manifest,
    keyPair: input.keyPair,
    readme: input.readme ?? `# ${input.name}\n\nThe ${input.name} test driver.\n`,
    license: 'Apache-2.0\n',
  });
}

/** Rewrites one file of a package (re-packing the container so its own header digests stay valid). */
export function replaceFile(pkg: Uint8Array, path: string, bytes: Uint8Array | undefined): Uint8Array {
  const files = new Map(unpack(pkg).files);
  if (bytes) files.set(path, bytes);
  else files.delete(path);
  return packFiles(files);
}

/**
 * A one-operator transparency log in the RFC 6962 / signed-note format Rekor uses, enough to put a real,
 * verifiable inclusion proof into a bundle: entries are appended, and each proof is against the current
 * tree with a checkpoint signed by the log's Ed25519 key.
 */
export class TestTransparencyLog {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly origin: string;
  readonly leaves: Buffer[] = [];

  constructor(origin = 'log.cam-os.test') {
    const pair = generateKeyPairSync('ed25519');
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey;
    this.origin = origin;
  }

  get pinned(): PinnedLog {
    return {
      baseUrl: `https://${this.origin}`,
      publicKeyPem: this.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    };
  }

  /** Appends the DSSE entry for the package's bundle and returns the package with the entry in its bundle. */
  witness(pkg: Uint8Array): Uint8Array {
    const files = unpack(pkg).files;
    const bundle = JSON.parse(
      Buffer.from(files.get(PACKAGE_FILES.sigstore)!).toString('utf8'),
    ) as SerializedBundle;
    const env = bundle.dsseEnvelope;
    const body = Buffer.from(
      JSON.stringify({
        apiVersion: '0.0.1',
        kind: 'dsse',
        spec: {
          payloadHash: { algorithm: 'sha256', value: sha256Hex(Buffer.from(env.payload, 'base64')) },
          signatures: [{ signature: env.signatures[0]!.sig, verifier: '' }],
        },
      }),
    );
    const index = this.leaves.length;
    this.leaves.push(leafHash(body));
    const size = this.leaves.length;
    const root = treeHash(this.leaves);
    const note = `${this.origin}\n${size}\n${root.toString('base64')}\n`;
    const keyHint = logIdOf(this.publicKey).subarray(0, 4);
    const sig = sign(null, Buffer.from(note), this.privateKey);
    const envelope = `${note}\n\u2014 ${this.origin} ${Buffer.concat([keyHint, sig]).toString('base64')}\n`;
    bundle.verificationMaterial.tlogEntries.push({
      logIndex: String(index),
      logId: { keyId: logIdOf(this.publicKey).toString('base64') },
      kindVersion: { kind: 'dsse', version: '0.0.1' },
      integratedTime: String(Math.floor(Date.now() / 1000)),
      inclusionProof: {
        logIndex: String(index),
        rootHash: root.toString('base64'),
        treeSize: String(size),
        hashes: inclusionPath(this.leaves, index).map((h) => h.toString('base64')),
        checkpoint: { envelope },
      },
      canonicalizedBody: body.toString('base64'),
    });
    const next = new Map(files);
    next.set(PACKAGE_FILES.sigstore, Buffer.from(`${JSON.stringify(bundle, null, 2)}\n`));
    return packFiles(next);
  }
}

function leafHash(body: Uint8Array): Buffer {
  return createHash('sha256')
    .update(Buffer.from([0]))
    .update(body)
    .digest();
}

function nodeHash(l: Buffer, r: Buffer): Buffer {
  return createHash('sha256')
    .update(Buffer.from([1]))
    .update(l)
    .update(r)
    .digest();
}

/** RFC 6962 Merkle tree hash over leaf hashes. */
function treeHash(leaves: Buffer[]): Buffer {
  if (leaves.length === 1) return leaves[0]!;
  const k = largestPowerOfTwoBelow(leaves.length);
  return nodeHash(treeHash(leaves.slice(0, k)), treeHash(leaves.slice(k)));
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** RFC 6962 audit path, lowest level first. */
function inclusionPath(leaves: Buffer[], index: number): Buffer[] {
  if (leaves.length <= 1) return [];
  const k = largestPowerOfTwoBelow(leaves.length);
  return index < k
    ? [...inclusionPath(leaves.slice(0, k), index), treeHash(leaves.slice(k))]
    : [...inclusionPath(leaves.slice(k), index - k), treeHash(leaves.slice(0, k))];
}
