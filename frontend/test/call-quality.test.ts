import { describe, expect, it } from 'vitest'
import { MAX_RESTARTS, level, redirected, restartDelay, sample, weakNote } from '../src/call/quality'

describe('connection quality', () => {
  it('grades loss, round trip and jitter with the /check limits', () => {
    expect(level({ rttMs: 40, lossPct: 0, jitterMs: 5 })).toBe('good')
    expect(level({ rttMs: 350, lossPct: 0, jitterMs: 5 })).toBe('fair')
    expect(level({ rttMs: 40, lossPct: 3, jitterMs: 5 })).toBe('fair')
    expect(level({ rttMs: 40, lossPct: 12, jitterMs: 5 })).toBe('poor')
    expect(level({ rttMs: null, lossPct: 0, jitterMs: 0 })).toBe('good')
  })

  it('measures loss over the interval, not since the call began', () => {
    const first = sample(null, [
      { type: 'inbound-rtp', packetsLost: 100, packetsReceived: 900, jitter: 0.01 },
      { type: 'candidate-pair', nominated: true, state: 'succeeded', currentRoundTripTime: 0.12 },
    ])
    expect(first.sample).toEqual({ rttMs: 120, lossPct: 0, jitterMs: 10 })
    const second = sample(first.counters, [
      { type: 'inbound-rtp', packetsLost: 105, packetsReceived: 995, jitter: 0.02 },
    ])
    expect(second.sample.lossPct).toBe(5)
    expect(second.sample.rttMs).toBeNull()
  })

  it('falls back to the uplink loss the server reports', () => {
    const s = sample(null, [{ type: 'remote-inbound-rtp', fractionLost: 0.1 }])
    expect(s.sample.lossPct).toBe(10)
  })

  it('says plainly what the server decided', () => {
    expect(weakNote('audio only')).toBe('Your connection is weak: audio only. Video comes back when it improves.')
    expect(weakNote('low video')).toMatch(/weak/)
    expect(weakNote('full video')).toBeNull()
  })

  it('spaces media restarts out, with jitter, within bounds', () => {
    expect(restartDelay(0, 0)).toBe(250)
    expect(restartDelay(0, 1)).toBe(500)
    expect(restartDelay(10, 1)).toBe(8000)
    const delays = Array.from({ length: MAX_RESTARTS }, (_, i) => restartDelay(i, 0.5))
    expect(delays).toEqual([...delays].sort((a, b) => a - b))
    expect(delays.reduce((a, b) => a + b, 0)).toBeLessThan(30_000)
  })

  it('follows a redirect to the node hosting the call, keeping path and token', () => {
    const url = 'wss://class.example.org/sfu/alg1?token=a.b.c'
    expect(redirected(url, 'https://node-b.class.example.org')).toBe('wss://node-b.class.example.org/sfu/alg1?token=a.b.c')
    expect(redirected('ws://127.0.0.1:8000/sfu/c?token=t', 'http://127.0.0.1:8001')).toBe('ws://127.0.0.1:8001/sfu/c?token=t')
  })
})
