/** Agent selection as a plain function (the component runs the same code inside wasm). */
import { describe, expect, it } from 'vitest';
import { type AgentView, normalizeSelectionWeights, selectAgent } from './scoring.js';

function agent(id: string, capabilities: string[], load = 0.2, performance = 0.5, trust = 0.5): AgentView {
  return { id, capabilities, metadata: [], load, performance, trust };
}

describe('selectAgent', () => {
  it('only considers agents offering every requirement, and says who came closest otherwise', () => {
    const r = selectAgent(['gpu', 'llm'], [agent('a', ['gpu']), agent('b', ['cpu'])]);
    expect(r).toMatchObject({ ok: false, tag: 'failed-precondition' });
    if (!r.ok)
      expect(r.message).toBe(
        'no registered agent offers every requirement [gpu, llm]; closest: a offers 1 of 2',
      );
    const none = selectAgent(['gpu'], []);
    if (!none.ok) expect(none.message).toContain('no agents registered');
  });

  it('excludes agents above 0.9 load; all capable agents overloaded is resource-exhausted', () => {
    const r = selectAgent(['gpu'], [agent('a', ['gpu'], 0.95), agent('b', ['gpu'], 0.91)]);
    expect(r).toMatchObject({ ok: false, tag: 'resource-exhausted' });
    if (!r.ok) expect(r.message).toBe('all 2 agent(s) offering [gpu] are above 0.9 load (a 0.95, b 0.91)');
    const edge = selectAgent(['gpu'], [agent('a', ['gpu'], 0.9)]);
    expect(edge.ok && edge.agent.id).toBe('a');
  });

  it('scores performance, availability and trust, and names the deciding factors', () => {
    const r = selectAgent(
      ['gpu'],
      [
        agent('steady', ['gpu', 'llm'], 0.5, 0.6, 0.6),
        agent('star', ['gpu'], 0.2, 0.95, 0.6),
        agent('busy', ['gpu'], 0.97, 1, 1),
      ],
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.agent.id).toBe('star');
    // 0.4*0.95 + 0.35*0.8 + 0.25*0.6
    expect(r.candidates[0]!.score).toBeCloseTo(0.81);
    expect(r.candidates.map((c) => c.agentId)).toEqual(['star', 'steady']);
    expect(r.candidates[0]).toMatchObject({
      capabilityMatch: 1,
      availability: 0.8,
      performance: 0.95,
      trust: 0.6,
    });
    expect(r.reasoning).toContain('assigned star: offers all of [gpu]');
    expect(r.reasoning).toContain(
      'ahead of steady (0.565) mainly on performance (+0.140) and availability (+0.105)',
    );
    expect(r.reasoning).toContain('excluded above 0.9 load: busy 0.97');
    expect(r.evidence[0]).toBe('task requires [gpu]');
    expect(r.evidence).toContain('excluded busy: load 0.97 > 0.9');
    // A clear margin (>= 0.1) keeps the full score as confidence.
    expect(r.confidence).toBeCloseTo(0.81);
  });

  it('lowers confidence for a near tie, and breaks exact ties by load, then id', () => {
    const near = selectAgent([], [agent('a', [], 0.2, 0.8), agent('b', [], 0.2, 0.79)]);
    if (!near.ok) throw new Error('expected a choice');
    expect(near.agent.id).toBe('a');
    expect(near.confidence).toBeLessThan(near.candidates[0]!.score);
    const tie = selectAgent([], [agent('z', [], 0.3), agent('y', [], 0.3), agent('x', [], 0.3)]);
    if (!tie.ok) throw new Error('expected a choice');
    expect(tie.agent.id).toBe('x');
    expect(tie.reasoning).toContain('on the tie-break');
  });

  it('reports at most 16 candidates', () => {
    const many = Array.from({ length: 40 }, (_, i) =>
      agent(`a${String(i).padStart(2, '0')}`, ['x'], i / 100),
    );
    const r = selectAgent(['x'], many);
    if (!r.ok) throw new Error('expected a choice');
    expect(r.candidates).toHaveLength(16);
    expect(r.candidates[0]!.agentId).toBe('a00');
  });

  it('normalises selection weights and refuses bad ones', () => {
    expect(normalizeSelectionWeights({ performance: 1, availability: 1, trust: 2 })).toEqual({
      performance: 0.25,
      availability: 0.25,
      trust: 0.5,
    });
    expect(() => normalizeSelectionWeights({ performance: -1, availability: 1, trust: 1 })).toThrow();
    expect(() => normalizeSelectionWeights({ performance: 0, availability: 0, trust: 0 })).toThrow();
  });
});
