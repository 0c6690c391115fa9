// Connection quality for the call panel (pure): a level from getStats samples, the note
// for the server's per-subscriber decision, the retry schedule for media restarts, and
// where a `redirect` to the node hosting the call leads.

export type Level = 'good' | 'fair' | 'poor'

export interface LinkSample {
  rttMs: number | null
  lossPct: number
  jitterMs: number
}

/** The same limits as the /check verdict: under 2 % loss, 300 ms RTT and 50 ms jitter is
 * good for video; 8 % loss or 600 ms RTT is poor (audio only). */
export function level(s: LinkSample): Level {
  const rtt = s.rttMs ?? 0
  if (s.lossPct >= 8 || rtt >= 600 || s.jitterMs >= 100) return 'poor'
  if (s.lossPct >= 2 || rtt >= 300 || s.jitterMs >= 50) return 'fair'
  return 'good'
}

export interface Counters {
  lost: number
  received: number
}

type Stat = Record<string, unknown>

/**
 * One sample from the stats of both connections. Loss is over the interval since
 * `prev` (packets lost / expected on what this client receives), or the uplink's
 * `fractionLost` from the server's receiver reports when nothing is received.
 */
export function sample(prev: Counters | null, stats: Iterable<Stat>): { sample: LinkSample; counters: Counters } {
  let rtt: number | null = null
  let jitter = 0
  let uplinkLoss = 0
  const counters: Counters = { lost: 0, received: 0 }
  for (const s of stats) {
    if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && typeof s.currentRoundTripTime === 'number') {
      rtt = Math.max(rtt ?? 0, s.currentRoundTripTime * 1000)
    } else if (s.type === 'inbound-rtp') {
      counters.lost += Number(s.packetsLost) || 0
      counters.received += Number(s.packetsReceived) || 0
      jitter = Math.max(jitter, (Number(s.jitter) || 0) * 1000)
    } else if (s.type === 'remote-inbound-rtp') {
      uplinkLoss = Math.max(uplinkLoss, (Number(s.fractionLost) || 0) * 100)
    }
  }
  let loss = uplinkLoss
  if (prev) {
    const lost = Math.max(0, counters.lost - prev.lost)
    const received = Math.max(0, counters.received - prev.received)
    if (lost + received > 0) loss = Math.max(loss, (100 * lost) / (lost + received))
  }
  return { sample: { rttMs: rtt === null ? null : Math.round(rtt), lossPct: Math.round(loss * 10) / 10, jitterMs: Math.round(jitter) }, counters }
}

/** What the server's `quality` message means for this user, or null when all is well. */
export function weakNote(state: string): string | null {
  if (state === 'audio only') return 'Your connection is weak: audio only. Video comes back when it improves.'
  if (state === 'low video') return 'Your connection is weak: video is reduced.'
  return null
}

export const MAX_RESTARTS = 6

/** Delay before media restart `attempt` (0-based): exponential from 0.5 s, capped at 8 s,
 * with jitter so that a class that lost the network together does not return in step. */
export function restartDelay(attempt: number, random: number = Math.random()): number {
  const base = Math.min(8000, 500 * 2 ** attempt)
  return Math.round(base * (0.5 + random / 2))
}

/** The signaling URL on the node named by a `redirect` (its base URL): same path and
 * token, ws(s) after the base's http(s). */
export function redirected(url: string, base: string): string {
  const target = new URL(url)
  const node = new URL(base)
  target.protocol = node.protocol === 'https:' ? 'wss:' : 'ws:'
  target.host = node.host
  return target.toString()
}
