import { describe, expect, it } from 'vitest'
import { bannerText } from '../src/billing-banner'
import { reasonForClose, refusalText } from '../src/refusals'

describe('billing refusals', () => {
  it('maps the gate’s close codes to their screens', () => {
    expect(reasonForClose(4402, 'This class is paused: ...')).toBe('payment-required')
    expect(reasonForClose(4402, 'video calls are not part of the tutor’s plan')).toBe('video-not-included')
    expect(reasonForClose(4413, 'This class is full: ...')).toBe('class-full')
  })

  it('says why the class is paused, and who to ask', () => {
    const t = refusalText('payment-required', 'anything the server said')
    expect(t.title).toBe('This class is paused')
    expect(t.body).toMatch(/subscription needs attention.*Ask your tutor/)
  })

  it('shows the server’s words for a full class (they carry the plan’s number)', () => {
    const message = "This class is full: the tutor's plan allows 1 student at a time. Ask your tutor."
    expect(refusalText('class-full', message).body).toBe(message)
    expect(refusalText('class-full').body).toMatch(/as many students as the tutor's plan allows/)
  })
})

describe('the tutor’s billing banner', () => {
  const base = { enabled: true, has_access: true, state: 'active', reason: 'active', banner: null, manage_url: '/#billing' }

  it('is hidden when there is nothing to fix or billing is off', () => {
    expect(bannerText(base)).toBeNull()
    expect(bannerText({ ...base, enabled: false, banner: 'x' })).toBeNull()
  })

  it('shows grace as is, and says students are turned away when access is lost', () => {
    expect(bannerText({ ...base, state: 'grace', banner: 'Payment failed: update your card by 12 May 2026' })).toBe(
      'Payment failed: update your card by 12 May 2026',
    )
    const lapsed = { ...base, has_access: false, state: 'lapsed', banner: 'Payment failed: update your card to reopen your classrooms' }
    expect(bannerText(lapsed)).toMatch(/Students cannot join until this is fixed\.$/)
  })
})
