/**
 * Observability syscalls: EmitTrace / EmitMetric (into the kernel's bounded telemetry store),
 * SystemTuning (scheduler weights -> the component exporting cam:kernel/scheduler) and HealthCheck
 * (the kernel's own view: loaded components, backing services, unavailable syscalls).
 */
import type { SyscallDef } from '../dispatcher/dispatcher.js';
import { SERVICE_INTERFACES, type ServiceName } from './backend.js';
import { Fields, invalid, type StringMap, timestampToMs } from './codec.js';
import type { SyscallEnv, TableEntry } from './env.js';

const HEX_RE = /^[0-9a-fA-F]+$/;
const METRIC_NAME_RE = /^[a-zA-Z0-9_.:]{1,200}$/;

export const WEIGHT_DIMENSIONS = ['urgency', 'importance', 'efficiency', 'energy', 'trust'] as const;
type Weights = Record<(typeof WEIGHT_DIMENSIONS)[number], number>;

/** Tuning presets: scheduler weights (balanced = CAM-OS's defaults). */
export const TUNING_PROFILES: Record<string, Weights> = {
  balanced: { urgency: 0.4, importance: 0.3, efficiency: 0.2, energy: 0.05, trust: 0.05 },
  latency: { urgency: 0.6, importance: 0.2, efficiency: 0.1, energy: 0.05, trust: 0.05 },
  throughput: { urgency: 0.25, importance: 0.25, efficiency: 0.4, energy: 0.05, trust: 0.05 },
  eco: { urgency: 0.3, importance: 0.2, efficiency: 0.2, energy: 0.25, trust: 0.05 },
  secure: { urgency: 0.3, importance: 0.25, efficiency: 0.1, energy: 0.05, trust: 0.3 },
};
const WEIGHT_KEY = /^scheduler\.weight\.(urgency|importance|efficiency|energy|trust)$/;

export function observabilitySyscalls(env: SyscallEnv): TableEntry[] {
  const emitTrace: SyscallDef<
    {
      traceId: string;
      spanId: string;
      operation: string;
      startMs: number;
      durationNs: number;
      tags: StringMap;
    },
    unknown
  > = {
    name: 'EmitTrace',
    group: 'observability',
    summary: 'Record a finished trace span in the kernel.',
    validate(req) {
      const f = new Fields('EmitTrace', req);
      const hex = (field: string, max: number) =>
        f.str(field, { required: true, maxBytes: max, pattern: HEX_RE, patternText: `1-${max} hex digits` });
      return {
        traceId: hex('trace_id', 64),
        spanId: hex('span_id', 32),
        operation: f.str('operation', { required: true, maxBytes: 256 }),
        startMs: timestampToMs(f.int('timestamp', 0, Number.MAX_SAFE_INTEGER)),
        durationNs: f.int('duration', 0, Number.MAX_SAFE_INTEGER),
        tags: f.map('tags', { maxEntries: 64, maxKeyBytes: 128, maxValueBytes: 1024 }),
      };
    },
    async handle(r, ctx) {
      const now = Date.now();
      env.telemetry.addSpan({ ...r, startMs: r.startMs || now, callerId: ctx.callerId, receivedAtMs: now });
      return {};
    },
  };

  const emitMetric: SyscallDef<
    { name: string; value: number; unit: string; tags: StringMap; timestampMs: number },
    unknown
  > = {
    name: 'EmitMetric',
    group: 'observability',
    summary: 'Record a metric sample in the kernel.',
    validate(req) {
      const f = new Fields('EmitMetric', req);
      const value = f.double('value');
      if (!Number.isFinite(value)) throw invalid('EmitMetric', 'value must be a finite number');
      return {
        name: f.str('name', {
          required: true,
          maxBytes: 200,
          pattern: METRIC_NAME_RE,
          patternText: '1-200 characters of a-z A-Z 0-9 _ . :',
        }),
        value,
        unit: f.str('unit', { maxBytes: 32 }),
        tags: f.map('tags', { maxEntries: 32, maxKeyBytes: 128, maxValueBytes: 256 }),
        timestampMs: timestampToMs(f.int('timestamp', 0, Number.MAX_SAFE_INTEGER)),
      };
    },
    async handle(r, ctx) {
      env.telemetry.addSample({ ...r, timestampMs: r.timestampMs || Date.now(), callerId: ctx.callerId });
      return {};
    },
  };

  const scheduler = env.backends.scheduler;
  const systemTuning: SyscallDef<{ profile: string; weights: Partial<Weights> }, unknown> = {
    name: 'SystemTuning',
    group: 'admin',
    summary: 'Apply a tuning profile and scheduler.weight.* parameters (all or nothing).',
    unavailable: () => scheduler.missing(),
    validate(req) {
      const f = new Fields('SystemTuning', req);
      const profile = f.str('tuning_profile', { maxBytes: 64 });
      if (profile && !TUNING_PROFILES[profile]) {
        throw invalid(
          'SystemTuning',
          `unknown tuning_profile '${profile}' (known: ${Object.keys(TUNING_PROFILES).join(', ')})`,
        );
      }
      const params = f.map('parameters', { maxEntries: 50, maxKeyBytes: 128, maxValueBytes: 64 });
      if (!profile && params.length === 0)
        throw invalid('SystemTuning', 'give a tuning_profile or parameters');
      const weights: Partial<Weights> = {};
      for (const [k, v] of params) {
        const m = WEIGHT_KEY.exec(k);
        if (!m) {
          throw invalid(
            'SystemTuning',
            `unknown parameter '${k}' (known: scheduler.weight.<${WEIGHT_DIMENSIONS.join('|')}>)`,
          );
        }
        const n = /^\s*[0-9]*\.?[0-9]+(e[-+]?[0-9]+)?\s*$/i.test(v) ? Number(v) : Number.NaN;
        if (!Number.isFinite(n) || n < 0)
          throw invalid('SystemTuning', `${k} must be a decimal >= 0, got '${v}'`);
        weights[m[1] as keyof Weights] = n;
      }
      return { profile, weights };
    },
    async handle(r, ctx) {
      const base = r.profile
        ? TUNING_PROFILES[r.profile]!
        : ((await scheduler.call('get-weights', [], ctx)) as Weights);
      const next = { ...base, ...r.weights };
      // The scheduler validates (positive sum) and normalises; what it returns is what applies.
      const applied = (await scheduler.call('set-weights', [next], ctx)) as Weights;
      const out: Record<string, string> = {};
      if (r.profile) out.tuning_profile = r.profile;
      for (const d of WEIGHT_DIMENSIONS) out[`scheduler.weight.${d}`] = String(applied[d]);
      return { applied_settings: out };
    },
  };

  const healthCheck: TableEntry = {
    name: 'HealthCheck',
    group: 'observability',
    summary: "The kernel's health; detailed adds every component and setting.",
    openToAll: true,
    validate(req: unknown) {
      const f = new Fields('HealthCheck', req);
      f.str('caller_id', { maxBytes: 256 });
      return { detailed: f.bool('detailed') } as never;
    },
    async handle(r: never) {
      return healthReport(env, (r as { detailed: boolean }).detailed);
    },
  };

  return [emitTrace, emitMetric, systemTuning, healthCheck] as TableEntry[];
}

export type HealthStatus = 'serving' | 'degraded' | 'not-serving';

export function healthReport(
  env: SyscallEnv,
  detailed: boolean,
): { status: HealthStatus; components: Record<string, string>; timestamp: number } {
  const components: Record<string, string> = {};
  let status: HealthStatus = 'serving';
  const worse = (s: HealthStatus) => {
    if (s === 'not-serving' || (s === 'degraded' && status === 'serving')) status = s;
  };
  const loaded = env.kernel.list();
  for (const name of Object.keys(SERVICE_INTERFACES) as ServiceName[]) {
    const b = env.backends[name];
    const provider = b.provider();
    if (!provider) {
      components[`service.${name}`] = `missing: ${b.missing()}`;
      worse('degraded');
      continue;
    }
    const health = loaded.find((c) => c.name === provider)?.status.health ?? 'unknown';
    components[`service.${name}`] = `${health} (component ${provider})`;
  }
  for (const c of loaded) {
    const h = c.status.health;
    if (h === 'failed') worse('not-serving');
    else if (h !== 'healthy') worse('degraded');
    if (detailed) {
      components[`component.${c.name}`] =
        `${h}; restarts ${c.status.restarts}; calls ${c.status.calls}; failed calls ${c.status.failedCalls}`;
    }
  }
  for (const m of env.dispatcher.metrics()) {
    if (!m.available) {
      components[`syscall.${m.name}`] = `unavailable: ${m.missing}`;
      worse('degraded');
    } else if (detailed) {
      components[`syscall.${m.name}`] = `available; ${m.calls} calls; p99 ${Math.round(m.p99Us)} us`;
    }
  }
  const s = env.status();
  if (detailed) {
    components['kernel.version'] = s.version;
    components['kernel.auth_mode'] = s.authMode;
    components['kernel.uptime_s'] = String(Math.floor((Date.now() - s.startedAt) / 1000));
    const t = env.telemetry.counts();
    components['kernel.telemetry'] = `${t.spans} spans, ${t.samples} samples, ${t.series} series`;
    s.warnings.forEach((w, i) => {
      components[`warning.${i + 1}`] = w;
    });
  }
  return { status, components, timestamp: Math.floor(Date.now() / 1000) };
}
