// Generated from wit/kernel@0.1.0 (world federation-component) by jco's guest type generator. Do not edit:
// regenerate with `cam-os driver types` (or `node sdk/dist/wit/guest-types.js` in the CAM-OS repository).

declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array): string;
}
declare const console: { log(...a: unknown[]): void; error(...a: unknown[]): void };

// ---- interfaces/cam-kernel-clock.d.ts
declare module 'cam:kernel/clock@0.1.0' {
  /**
   * The current time, unix ms.
   */
  export function nowMs(): bigint;
}

// ---- interfaces/cam-kernel-digest.d.ts
declare module 'cam:kernel/digest@0.1.0' {
  /**
   * The 32-byte sha-256 digest of `data`.
   */
  export function sha256(data: Uint8Array): Uint8Array;
}

// ---- interfaces/cam-kernel-federation.d.ts
declare module 'cam:kernel/federation@0.1.0' {
  /**
   * Whether writes to `namespace` replicate.
   */
  export function replicates(namespace: string): boolean;
  /**
   * Record a local write (already stored in `memory`) and return the Yjs update to send to every peer;
   * `none` when the namespace does not replicate. The update is durable in kv before this returns.
   * Errors: invalid-argument (bad hash, empty key), unavailable (kv down).
   */
  export function recordLocalChange(change: Change): Uint8Array | undefined;
  /**
   * Apply a Yjs update from a peer (idempotent; any order: parts that depend on updates not yet seen wait
   * inside the document until those arrive). What it applied is staged, not yet durable: the kernel
   * writes the changes into `memory`, then calls `commit-applied` (or `discard-applied` when memory
   * failed). A crash before the commit loses only the staged part, which peers send again (anti-entropy);
   * the next `record-local-change` commits anything staged first. Errors: invalid-argument (not a Yjs
   * update).
   */
  export function applyUpdate(update: Uint8Array): ApplyResult;
  /**
   * Make the staged remote updates durable (one kv batch). Errors: unavailable (kv down; the staged
   * updates are then dropped from the document, as by `discard-applied`).
   */
  export function commitApplied(): void;
  /**
   * Drop the staged remote updates: the document is reloaded from kv.
   */
  export function discardApplied(): void;
  /**
   * This node's Yjs state vector (what it has seen of every node).
   */
  export function stateVector(): Uint8Array;
  /**
   * The Yjs update holding everything this node has that a peer with `state-vector` lacks (empty
   * update when nothing). Errors: invalid-argument (not a state vector).
   */
  export function diff(stateVector: Uint8Array): Uint8Array;
  /**
   * How many writes the peer with `state-vector` has not seen (0 = in sync with this node).
   * Errors: invalid-argument (not a state vector).
   */
  export function missing(stateVector: Uint8Array): bigint;
  /**
   * The current value of a key in the document, if any.
   */
  export function current(namespace: string, key: string): Entry | undefined;
  /**
   * Counters for status.
   */
  export function info(): SyncInfo;
  export type KernelError = import('cam:kernel/types@0.1.0').KernelError;
  export type StringMap = import('cam:kernel/types@0.1.0').StringMap;
  /**
   * One context write.
   */
  export interface Change {
    /**
     * Namespace written.
     */
    namespace: string,
    /**
     * Key written.
     */
    key: string,
    /**
     * Lowercase hex sha-256 of `data`.
     */
    hash: string,
    /**
     * The written bytes.
     */
    data: Uint8Array,
    /**
     * The write's metadata.
     */
    metadata: StringMap,
    /**
     * Caller id that wrote it.
     */
    author: string,
    /**
     * Write time on the origin node, unix ms.
     */
    timestampMs: bigint,
  }
  /**
   * A change as recorded in the replicated document.
   */
  export interface Entry {
    /**
     * Unique id of the write: `<client id>.<clock>` of the origin node's Yjs client.
     */
    id: string,
    /**
     * Node id where the write was made.
     */
    originNode: string,
    /**
     * The change.
     */
    change: Change,
  }
  /**
   * What an applied remote update changed for one key.
   */
  export interface KeyUpdate {
    /**
     * Namespace of the key.
     */
    namespace: string,
    /**
     * The key.
     */
    key: string,
    /**
     * Writes of this key not seen here before, ordered by (timestamp-ms, origin-node, id).
     */
    added: Array<Entry>,
    /**
     * Id of the key's current value after the update (the rule above).
     */
    currentId: string,
    /**
     * The current value itself when it is not one of `added`; `none` when it is (each write crosses the
     * component boundary once).
     */
    current?: Entry,
    /**
     * Whether the current value differs from the value before the update.
     */
    currentChanged: boolean,
  }
  /**
   * The result of applying a peer's update.
   */
  export interface ApplyResult {
    /**
     * Per key the update changed (in replicated namespaces), what to write into `memory`.
     */
    changes: Array<KeyUpdate>,
    /**
     * Part of the update waits for earlier updates this node has not seen (Yjs keeps it pending): the
     * kernel should ask that peer for a diff against this node's state vector.
     */
    incomplete: boolean,
  }
  /**
   * Counters for status.
   */
  export interface SyncInfo {
    /**
     * This node's id.
     */
    nodeId: string,
    /**
     * This node's Yjs client id.
     */
    clientId: number,
    /**
     * Federated namespace patterns.
     */
    namespaces: Array<string>,
    /**
     * Writes in the document (all namespaces, all nodes).
     */
    entries: bigint,
    /**
     * Writes made on this node.
     */
    localEntries: bigint,
    /**
     * Parts of received updates waiting for earlier updates (0 = nothing pending).
     */
    pendingStructs: number,
  }
}

// ---- interfaces/cam-kernel-kv.d.ts
declare module 'cam:kernel/kv@0.1.0' {
  /**
   * The value of `key` in `partition`, or `none` when absent.
   */
  export function get(partition: string, key: string): Uint8Array | undefined;
  /**
   * The values of `keys`, one per key in the same order, read from one consistent snapshot.
   */
  export function getMany(partition: string, keys: Array<string>): Array<Uint8Array | undefined>;
  /**
   * Apply `ops` atomically and in order (a later op on the same key wins). Returns only once the
   * batch is durable; on error nothing was applied.
   */
  export function batch(partition: string, ops: Array<Op>): void;
  /**
   * Up to `limit` (1-10,000) entries of `partition` whose key starts with `prefix` (empty = all), in
   * ascending key order, or descending when `reverse`. `after` is an exclusive cursor: keys strictly
   * greater than it (strictly smaller when `reverse`); pass the last key of a page to get the next.
   * Fewer than `limit` entries means the scan is complete. Reads one consistent snapshot.
   */
  export function scan(partition: string, prefix: string, after: string | undefined, limit: number, reverse: boolean): Array<Entry>;
  export type KernelError = import('cam:kernel/types@0.1.0').KernelError;
  /**
   * A key and its value.
   */
  export interface Entry {
    /**
     * The key.
     */
    key: string,
    /**
     * The value.
     */
    value: Uint8Array,
  }
  /**
   * One write of a batch.
   */
  export type Op = OpPut | OpDelete;
  /**
   * Set a key to a value, replacing any previous value.
   */
  export interface OpPut {
    tag: 'put',
    val: Entry,
  }
  /**
   * Remove a key; removing a missing key is not an error.
   */
  export interface OpDelete {
    tag: 'delete',
    val: string,
  }
}

// ---- interfaces/cam-kernel-lifecycle.d.ts
declare module 'cam:kernel/lifecycle@0.1.0' {
  /**
   * Configure a fresh instance from the component's configuration entries (keys are defined by each
   * component and documented with it). Errors: invalid-argument (unknown key or bad value),
   * failed-precondition (called twice).
   */
  export function init(config: StringMap): void;
  /**
   * Report the instance's health. Must be cheap (no storage scans) and must not fail.
   */
  export function health(): HealthReport;
  /**
   * Serialize the in-memory state a replacement instance needs (at most 64 MiB). Durable data kept
   * in `kv` need not be included. The format is the component's own and should start with a format
   * version so a newer build can read an older state. Errors: failed-precondition (before `init`).
   */
  export function exportState(): Uint8Array;
  /**
   * Load state produced by `export-state` of this or an older build of the same component, after
   * `init`. Errors: invalid-argument (unreadable state), unimplemented (state format too new).
   */
  export function importState(state: Uint8Array): void;
  export type KernelError = import('cam:kernel/types@0.1.0').KernelError;
  export type HealthReport = import('cam:kernel/types@0.1.0').HealthReport;
  export type StringMap = import('cam:kernel/types@0.1.0').StringMap;
}

// ---- interfaces/cam-kernel-log.d.ts
declare module 'cam:kernel/log@0.1.0' {
  /**
   * Write one log line with structured `fields`.
   */
  export function log(level: Level, message: string, fields: StringMap): void;
  export type StringMap = import('cam:kernel/types@0.1.0').StringMap;
  /**
   * Severity of a log line.
   * # Variants
   * 
   * ## `"trace"`
   * 
   * Very detailed diagnostics, off by default.
   * ## `"debug"`
   * 
   * Diagnostics for developers.
   * ## `"info"`
   * 
   * Normal operation.
   * ## `"warn"`
   * 
   * Something unexpected that the component handled.
   * ## `"error"`
   * 
   * An operation failed.
   */
  export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
}

// ---- interfaces/cam-kernel-types.d.ts
declare module 'cam:kernel/types@0.1.0' {
  /**
   * A string-to-string map (gRPC `map<string,string>`), as an ordered list of unique keys.
   */
  export type StringMap = Array<[string, string]>;
  /**
   * The error every fallible function of the package returns. Each case maps to exactly one gRPC
   * status code (table in `wit/README.md`); the kernel reports a component's error to a gRPC caller
   * with that code and the case's message. Messages are for humans: at most 500 characters are kept,
   * and they must not contain secrets, host paths or stack traces.
   */
  export type KernelError = KernelErrorInvalidArgument | KernelErrorNotFound | KernelErrorAlreadyExists | KernelErrorPermissionDenied | KernelErrorFailedPrecondition | KernelErrorResourceExhausted | KernelErrorDeadlineExceeded | KernelErrorUnavailable | KernelErrorUnimplemented | KernelErrorInternal;
  /**
   * A request field is missing, malformed or out of its documented range. gRPC 3 INVALID_ARGUMENT.
   */
  export interface KernelErrorInvalidArgument {
    tag: 'invalid-argument',
    val: string,
  }
  /**
   * The named entity (task, agent, key, version, snapshot, policy, trace...) does not exist.
   * gRPC 5 NOT_FOUND.
   */
  export interface KernelErrorNotFound {
    tag: 'not-found',
    val: string,
  }
  /**
   * The entity the caller tried to create exists already. gRPC 6 ALREADY_EXISTS.
   */
  export interface KernelErrorAlreadyExists {
    tag: 'already-exists',
    val: string,
  }
  /**
   * The caller is known but not allowed to do this (policy refusal, bad TPM identity, capability not
   * granted). gRPC 7 PERMISSION_DENIED.
   */
  export interface KernelErrorPermissionDenied {
    tag: 'permission-denied',
    val: string,
  }
  /**
   * The system is not in the state the operation needs (e.g. restore without `force` over newer data,
   * a call before `init`). Retrying unchanged will fail again. gRPC 9 FAILED_PRECONDITION.
   */
  export interface KernelErrorFailedPrecondition {
    tag: 'failed-precondition',
    val: string,
  }
  /**
   * A quota, size limit or capacity is exhausted (payload too large, every capable agent overloaded,
   * queue full). gRPC 8 RESOURCE_EXHAUSTED.
   */
  export interface KernelErrorResourceExhausted {
    tag: 'resource-exhausted',
    val: string,
  }
  /**
   * The operation did not finish before its deadline. gRPC 4 DEADLINE_EXCEEDED.
   */
  export interface KernelErrorDeadlineExceeded {
    tag: 'deadline-exceeded',
  }
  /**
   * A dependency is temporarily down (storage backend, peer, restarting component); retry with
   * backoff. gRPC 14 UNAVAILABLE.
   */
  export interface KernelErrorUnavailable {
    tag: 'unavailable',
    val: string,
  }
  /**
   * The operation, option or format is not supported by this implementation. gRPC 12 UNIMPLEMENTED.
   */
  export interface KernelErrorUnimplemented {
    tag: 'unimplemented',
    val: string,
  }
  /**
   * An invariant broke inside the callee; a bug, not the caller's fault. gRPC 13 INTERNAL.
   */
  export interface KernelErrorInternal {
    tag: 'internal',
    val: string,
  }
  /**
   * The kind of work a task is (CAM-OS `TaskType`; the enum order is the proto enum number).
   * # Variants
   * 
   * ## `"unspecified"`
   * 
   * 0 TASK_TYPE_UNSPECIFIED: no type given.
   * ## `"arbitration"`
   * 
   * 1 TASK_TYPE_ARBITRATION: importance factor 1.2.
   * ## `"collaboration"`
   * 
   * 2 TASK_TYPE_COLLABORATION: importance factor 1.1.
   * ## `"routing"`
   * 
   * 3 TASK_TYPE_ROUTING: importance factor 0.9.
   * ## `"analysis"`
   * 
   * 4 TASK_TYPE_ANALYSIS: importance factor 0.8.
   * ## `"security"`
   * 
   * 5 TASK_TYPE_SECURITY: importance factor 1.0.
   * ## `"memory"`
   * 
   * 6 TASK_TYPE_MEMORY: importance factor 1.0.
   * ## `"policy"`
   * 
   * 7 TASK_TYPE_POLICY: importance factor 1.0.
   */
  export type TaskType = 'unspecified' | 'arbitration' | 'collaboration' | 'routing' | 'analysis' | 'security' | 'memory' | 'policy';
  /**
   * A TPM-backed identity or proof (CAM-OS `TpmCertificateChain`, spelled `tmp` on the wire).
   */
  export interface TpmCertificateChain {
    /**
     * Identifier of the signing key (TPM handle name or key fingerprint); non-empty.
     */
    keyId: string,
    /**
     * DER-encoded X.509 certificates, leaf first.
     */
    certificateChain: Array<Uint8Array>,
    /**
     * TPM attestation (quote) bytes; empty when the key has no attestation.
     */
    attestationData: Uint8Array,
    /**
     * Signature algorithm name, e.g. `ecdsa-p256-sha256`, `rsassa-pss-sha256`, `ml-dsa-65`.
     */
    algorithm: string,
    /**
     * When the chain was issued, unix ms.
     */
    createdAtMs: bigint,
    /**
     * When the chain stops being valid, unix ms; `none` when it does not expire.
     */
    expiresAtMs?: bigint,
    /**
     * Free-form attributes of the identity.
     */
    attributes: StringMap,
  }
  /**
   * The authenticated principal a call is made for. The kernel fills it from the transport (gRPC
   * `caller_id` + `caller_tmp_identity`, or a component's signed manifest); it is never taken from a
   * guest, so a component cannot act as someone else.
   */
  export interface Caller {
    /**
     * Caller identifier; non-empty, at most 256 bytes.
     */
    id: string,
    /**
     * The caller's verified TPM identity, if it presented one.
     */
    tpmIdentity?: TpmCertificateChain,
  }
  /**
   * A unit of work submitted to the kernel (CAM-OS `Task`).
   */
  export interface Task {
    /**
     * Unique task id chosen by the submitter; non-empty, at most 256 bytes.
     */
    id: string,
    /**
     * Human-readable description, at most 64 KiB.
     */
    description: string,
    /**
     * Capabilities an agent needs to run the task (matched exactly against `agent.capabilities`).
     */
    requirements: Array<string>,
    /**
     * Free-form metadata, at most 256 entries.
     */
    metadata: StringMap,
    /**
     * Priority 0 (lowest) to 100 (highest); larger values are invalid-argument.
     */
    priority: number,
    /**
     * Deadline in unix SECONDS (as CAM-OS sends it); `none` when the task has none (gRPC 0).
     */
    deadline?: bigint,
    /**
     * The kind of task; drives the importance factor of the scheduler.
     */
    taskType: TaskType,
    /**
     * The agent that submitted or owns the task; `none` when anonymous (gRPC empty string).
     */
    agentId?: string,
    /**
     * Ids of tasks that must commit before this one may run; at most 256.
     */
    dependsOn: Array<string>,
    /**
     * The submitter's TPM identity, if the task is signed.
     */
    tpmIdentity?: TpmCertificateChain,
  }
  /**
   * What an agent declares when it registers (CAM-OS `AgentRegisterRequest`).
   */
  export interface AgentRegistration {
    /**
     * Unique agent id; non-empty, at most 256 bytes.
     */
    agentId: string,
    /**
     * Capabilities the agent offers; at most 256, each non-empty.
     */
    capabilities: Array<string>,
    /**
     * Free-form metadata; the key `provider` names the agent's provider (reported in arbitration results).
     */
    metadata: StringMap,
    /**
     * The agent's TPM identity, if it presented one.
     */
    tpmIdentity?: TpmCertificateChain,
  }
  /**
   * A registered agent as the arbitration service knows it.
   */
  export interface Agent {
    /**
     * Unique agent id.
     */
    id: string,
    /**
     * Capabilities the agent offers.
     */
    capabilities: Array<string>,
    /**
     * Metadata from the latest registration.
     */
    metadata: StringMap,
    /**
     * Fraction of the agent's capacity in use, 0.0-1.0, as last reported. Agents above 0.9 are never
     * arbitration candidates.
     */
    load: number,
    /**
     * Observed success quality, 0.0-1.0 (0.5 for a new agent).
     */
    performance: number,
    /**
     * Trust score, 0.0-1.0 (higher with a verified TPM identity).
     */
    trust: number,
    /**
     * First registration time, unix ms.
     */
    registeredAtMs: bigint,
    /**
     * Latest registration or update time, unix ms.
     */
    updatedAtMs: bigint,
    /**
     * The agent's TPM identity, if it presented one.
     */
    tpmIdentity?: TpmCertificateChain,
  }
  /**
   * How one candidate agent scored in an arbitration; each sub-score is 0.0-1.0.
   */
  export interface CandidateScore {
    /**
     * The candidate agent.
     */
    agentId: string,
    /**
     * Combined score used for the ranking.
     */
    score: number,
    /**
     * Fraction of the task's requirements the agent offers.
     */
    capabilityMatch: number,
    /**
     * The agent's performance.
     */
    performance: number,
    /**
     * 1.0 minus the agent's load.
     */
    availability: number,
    /**
     * The agent's trust.
     */
    trust: number,
  }
  /**
   * The outcome of an arbitration (CAM-OS `ArbitrationResult`).
   */
  export interface ArbitrationResult {
    /**
     * The arbitrated task.
     */
    taskId: string,
    /**
     * The chosen agent.
     */
    assignedAgent: string,
    /**
     * The chosen agent's `provider` metadata entry; empty when it has none.
     */
    provider: string,
    /**
     * Confidence in the choice, 0.0-1.0.
     */
    confidence: number,
    /**
     * Human-readable reason for the choice.
     */
    reasoning: string,
    /**
     * Free-form metadata of the decision.
     */
    metadata: StringMap,
    /**
     * Id under which the decision is recorded; `explain` and `explain-action` accept it.
     */
    traceId: string,
    /**
     * Decision time, unix ms.
     */
    timestampMs: bigint,
    /**
     * Candidates that were scored, best first (at most 16); the first one is `assigned-agent`.
     */
    candidates: Array<CandidateScore>,
    /**
     * The kernel's TPM signature over the decision; `none` when no TPM is configured. Components leave
     * it `none`; the kernel adds it.
     */
    tpmProof?: TpmCertificateChain,
  }
  /**
   * Why something happened (CAM-OS `ExplainActionResponse`).
   */
  export interface Explanation {
    /**
     * Human-readable explanation.
     */
    explanation: string,
    /**
     * Confidence of the original decision, 0.0-1.0.
     */
    confidence: number,
    /**
     * Facts the decision rested on, one per line, most important first.
     */
    evidence: Array<string>,
  }
  /**
   * One immutable version of a context key (CAM-OS `VersionInfo`).
   */
  export interface VersionInfo {
    /**
     * Version number; the first write of a key is 1, each write adds 1.
     */
    version: bigint,
    /**
     * Write time, unix ms.
     */
    timestampMs: bigint,
    /**
     * Caller id that wrote the version.
     */
    author: string,
    /**
     * Description of the version (the `description` metadata entry of the write; empty when absent).
     */
    description: string,
    /**
     * Lowercase hex sha-256 of the data (64 characters).
     */
    hash: string,
    /**
     * Size of the data in bytes.
     */
    size: bigint,
    /**
     * The write's metadata.
     */
    tags: StringMap,
  }
  /**
   * The content of a context key at one version.
   */
  export interface ContextEntry {
    /**
     * Namespace of the key.
     */
    namespace: string,
    /**
     * The key.
     */
    key: string,
    /**
     * The stored bytes.
     */
    data: Uint8Array,
    /**
     * The version read.
     */
    version: bigint,
    /**
     * Lowercase hex sha-256 of `data`.
     */
    hash: string,
    /**
     * Write time of this version, unix ms.
     */
    timestampMs: bigint,
    /**
     * The write's metadata.
     */
    metadata: StringMap,
    /**
     * Caller id that wrote this version.
     */
    author: string,
  }
  /**
   * What a context write produced.
   */
  export interface WriteReceipt {
    /**
     * The new version number.
     */
    version: bigint,
    /**
     * Lowercase hex sha-256 of the written data.
     */
    hash: string,
    /**
     * Write time, unix ms.
     */
    timestampMs: bigint,
  }
  /**
   * What a snapshot restore did.
   */
  export interface RestoreResult {
    /**
     * The namespace the snapshot covers.
     */
    namespace: string,
    /**
     * Number of keys whose latest version changed (rewritten or removed).
     */
    restoredItems: bigint,
  }
  /**
   * One page of a key's version history, oldest first.
   */
  export interface VersionPage {
    /**
     * Versions greater than the request's `since-version`, ascending, at most `limit`.
     */
    versions: Array<VersionInfo>,
    /**
     * True when newer versions exist beyond this page.
     */
    hasMore: boolean,
    /**
     * When `has-more`: the decimal version number to pass as `since-version` for the next page
     * (the last version of this page). `none` otherwise.
     */
    nextToken?: string,
  }
  /**
   * Coarse health of a component or of the whole kernel.
   * # Variants
   * 
   * ## `"serving"`
   * 
   * Fully working.
   * ## `"degraded"`
   * 
   * Working with reduced capacity or a failing optional dependency.
   * ## `"not-serving"`
   * 
   * Not able to serve requests.
   */
  export type HealthStatus = 'serving' | 'degraded' | 'not-serving';
  /**
   * A component's own view of its health.
   */
  export interface HealthReport {
    /**
     * Overall status.
     */
    status: HealthStatus,
    /**
     * One-line human-readable summary; empty when serving.
     */
    detail: string,
    /**
     * Named sub-checks and their results (e.g. `kv` -> `ok`), at most 64 entries.
     */
    checks: StringMap,
  }
}

