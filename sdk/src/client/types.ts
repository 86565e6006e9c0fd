import { SYSCALL_NAMES } from '@cam-os/host/syscalls/index.js';
/**
 * The CAM-OS SyscallService messages as the client sees them (proto/cam_syscall.proto, loaded with
 * keepCase: snake_case fields, int64 as number, enums as names, maps as objects, bytes as Buffer).
 * Requests are partial: proto3 fills what is left out with zero values.
 */
export type StringMap = Record<string, string>;

export type TaskType =
  | 'TASK_TYPE_UNSPECIFIED'
  | 'TASK_TYPE_ARBITRATION'
  | 'TASK_TYPE_COLLABORATION'
  | 'TASK_TYPE_ROUTING'
  | 'TASK_TYPE_ANALYSIS'
  | 'TASK_TYPE_SECURITY'
  | 'TASK_TYPE_MEMORY'
  | 'TASK_TYPE_POLICY';

export interface TpmCertificateChain {
  key_id: string;
  certificate_chain: Uint8Array[];
  attestation_data: Uint8Array;
  algorithm: string;
  created_at: number;
  expires_at: number;
  attributes: StringMap;
}

export interface Task {
  id: string;
  description: string;
  requirements: string[];
  metadata: StringMap;
  priority: number;
  /** Unix seconds; 0 = none. */
  deadline: number;
  type: TaskType;
  agent_id: string;
  tmp_identity: TpmCertificateChain | null;
}

export interface ArbitrationResult {
  task_id: string;
  assigned_agent: string;
  provider: string;
  confidence: number;
  reasoning: string;
  metadata: StringMap;
  trace_id: string;
  timestamp: number;
  tmp_proof: TpmCertificateChain | null;
}

export interface VersionInfo {
  version: number;
  timestamp: number;
  author: string;
  description: string;
  hash: string;
  size: number;
  tags: StringMap;
}

type Req<T> = Partial<T> & { caller_id?: string };
type Res<T> = T & { error: string; status_code: number };

export interface SyscallMessages {
  Arbitrate: {
    req: Req<{
      task: Partial<Task>;
      policy_id: string;
      context: StringMap;
      caller_tmp_identity: TpmCertificateChain;
    }>;
    res: Res<{ result: ArbitrationResult | null }>;
  };
  CommitTask: {
    req: Req<{ task: Partial<Task>; agent_id: string; agent_tmp_identity: TpmCertificateChain }>;
    res: Res<{ task_id: string; commit_id: string }>;
  };
  TaskRollback: {
    req: Req<{ task_id: string; reason: string; caller_tmp_identity: TpmCertificateChain }>;
    res: Res<{ task_id: string }>;
  };
  AgentRegister: {
    req: Req<{
      agent_id: string;
      capabilities: string[];
      metadata: StringMap;
      agent_tmp_identity: TpmCertificateChain;
    }>;
    res: Res<{ agent_id: string }>;
  };
  QueryPolicy: {
    req: Req<{
      policy_id: string;
      query: string;
      context: StringMap;
      caller_tmp_identity: TpmCertificateChain;
    }>;
    res: Res<{ allowed: boolean; reason: string }>;
  };
  PolicyUpdate: {
    req: Req<{
      policy_id: string;
      policy_data: Uint8Array;
      metadata: StringMap;
      caller_tmp_identity: TpmCertificateChain;
    }>;
    res: Res<{ policy_id: string; version: number }>;
  };
  ContextRead: {
    req: Req<{ namespace: string; key: string; version: number; caller_tmp_identity: TpmCertificateChain }>;
    res: Res<{
      data: Buffer;
      version: number;
      hash: string;
      timestamp: number;
      metadata: StringMap;
      integrity_proof: TpmCertificateChain | null;
    }>;
  };
  ContextWrite: {
    req: Req<{
      namespace: string;
      key: string;
      data: Uint8Array;
      metadata: StringMap;
      caller_tmp_identity: TpmCertificateChain;
    }>;
    res: Res<{ version: number; hash: string; write_proof: TpmCertificateChain | null }>;
  };
  ContextSnapshot: {
    req: Req<{ namespace: string; description: string; caller_tmp_identity: TpmCertificateChain }>;
    res: Res<{ snapshot_id: string }>;
  };
  ContextRestore: {
    req: Req<{ snapshot_id: string; force: boolean; caller_tmp_identity: TpmCertificateChain }>;
    res: Res<{ namespace: string; restored_items: number }>;
  };
  SnapshotContext: {
    req: Req<{ namespace: string; description: string; caller_tmp_identity: TpmCertificateChain }>;
    res: Res<{ snapshot_id: string }>;
  };
  ContextVersionList: {
    req: Req<{
      namespace: string;
      key: string;
      limit: number;
      since_version: number;
      caller_tmp_identity: TpmCertificateChain;
    }>;
    res: Res<{ versions: VersionInfo[]; has_more: boolean; next_token: string }>;
  };
  TmpSign: {
    req: Req<{
      data: Uint8Array;
      key_id: string;
      algorithm: string;
      caller_tmp_identity: TpmCertificateChain;
    }>;
    res: Res<{ signature: Buffer; signing_certificate: TpmCertificateChain | null }>;
  };
  VerifyManifest: {
    req: Req<{ manifest_data: Uint8Array; signature: Uint8Array; certificate_chain: TpmCertificateChain }>;
    res: Res<{ valid: boolean }>;
  };
  EstablishSecureChannel: {
    req: Req<{ peer_id: string; ephemeral_public_key: Uint8Array; caller_tmp_identity: TpmCertificateChain }>;
    res: Res<{
      channel_id: string;
      ephemeral_public_key: Buffer;
      peer_certificate: TpmCertificateChain | null;
    }>;
  };
  ExplainAction: {
    req: Req<{ trace_id: string; action_id: string; caller_tmp_identity: TpmCertificateChain }>;
    res: Res<{ explanation: string; confidence: number; evidence: string[] }>;
  };
  EmitTrace: {
    req: Req<{
      trace_id: string;
      span_id: string;
      operation: string;
      timestamp: number;
      duration: number;
      tags: StringMap;
    }>;
    res: Res<Record<never, never>>;
  };
  EmitMetric: {
    req: Req<{ name: string; value: number; unit: string; tags: StringMap; timestamp: number }>;
    res: Res<Record<never, never>>;
  };
  SystemTuning: {
    req: Req<{ tuning_profile: string; parameters: StringMap; caller_tmp_identity: TpmCertificateChain }>;
    res: Res<{ applied_settings: StringMap }>;
  };
  HealthCheck: {
    req: Req<{ detailed: boolean }>;
    res: Res<{ status: string; components: StringMap; timestamp: number }>;
  };
}

export type SyscallMethod = keyof SyscallMessages;
export type RequestOf<M extends SyscallMethod> = SyscallMessages[M]['req'];
export type ResponseOf<M extends SyscallMethod> = SyscallMessages[M]['res'];

/** The 20 CAM-OS methods, in the spec's order: the kernel's own syscall table is the one list. */
export const SYSCALL_METHODS: readonly SyscallMethod[] = SYSCALL_NAMES;
