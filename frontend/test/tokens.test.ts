import { describe, expect, it } from 'vitest'
import { renewDelayMs, retryDelayMs } from '../src/tokens'
import { reasonForClose, refusalText } from '../src/refusals'

describe('token renewal schedule', () => {
  it('renews an hour token ten minutes before it expires', () => {
    const now = 1_000_000
    expect(renewDelayMs(now / 1000 + 3600, now, 3600)).toBe(50 * 60_000)
  })

  it('renews a short token when 40 % of its life is left', () => {
    expect(renewDelayMs(10, 0, 10)).toBe(6000)
  })

  it('renews at once a token that is (nearly) expired', () => {
    expect(renewDelayMs(100, 99_500, 3600)).toBe(0)
    expect(renewDelayMs(0, 5000, 3600)).toBe(0)
  })

  it('backs off retries up to 30 s', () => {
    expect([1, 2, 3, 10].map(retryDelayMs)).toEqual([2000, 4000, 8000, 30_000])
  })
})

describe('refusal screens', () => {
  it('maps close codes to plain-word screens', () => {
    expect(reasonForClose(4410, 'archived')).toBe('archived')
    expect(reasonForClose(4403, 'revoked')).toBe('revoked')
    expect(reasonForClose(4403, 'document outside the token classroom')).toBe('wrong-classroom')
    expect(reasonForClose(4401, 'invalid token')).toBe('token-expired')
  })

  it('always says what to do', () => {
    for (const reason of ['revoked', 'expired', 'used-up', 'archived', 'wrong-classroom', 'signin', 'whatever']) {
      const t = refusalText(reason)
      expect(t.title.length).toBeGreaterThan(5)
      expect(t.body).toMatch(/tutor|sign in|try again/i)
    }
    expect(refusalText('whatever').reason).toBe('refused')
  })
})
