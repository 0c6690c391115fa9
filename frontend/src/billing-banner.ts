// The tutor's board tells them when their subscription needs attention (grace, lapsed,
// trial ending): a strip under the top bar with the server's words and a link to manage
// the subscription. Access lost mid-lesson does not end the lesson; this is how the tutor
// learns that new students are being turned away. Polled, so it appears within a minute.

import { api } from './api'

export interface ClassroomBilling {
  enabled: boolean
  has_access: boolean
  state: string
  reason: string
  banner: string | null
  manage_url: string
}

export const BILLING_POLL_MS = 60_000

/** Text for the strip, or null when there is nothing to fix. */
export function bannerText(b: ClassroomBilling): string | null {
  if (!b.enabled) return null
  if (b.banner && !b.has_access) return `${b.banner}. Students cannot join until this is fixed.`
  return b.banner
}

/** Shows the owner's billing banner above `anchor`'s next sibling; returns a stop function. */
export function watchBilling(anchor: HTMLElement, classroom: string, everyMs = BILLING_POLL_MS): () => void {
  const strip = document.createElement('div')
  strip.className = 'billing-banner'
  strip.setAttribute('role', 'alert')
  strip.dataset.testid = 'billing-banner'
  strip.hidden = true
  const words = document.createElement('span')
  const link = document.createElement('a')
  link.textContent = 'Manage subscription'
  link.target = '_blank'
  link.rel = 'noopener'
  strip.append(words, ' ', link)
  anchor.after(strip)
  let stopped = false
  let timer = 0
  const poll = async () => {
    try {
      const b = await api<ClassroomBilling>('GET', `/api/classrooms/${encodeURIComponent(classroom)}/billing`)
      const text = bannerText(b)
      strip.hidden = !text
      strip.dataset.state = b.state
      words.textContent = text ?? ''
      link.href = b.manage_url
    } catch {
      /* offline, or not ours: keep what is shown */
    }
    if (!stopped) timer = window.setTimeout(() => void poll(), everyMs)
  }
  void poll()
  return () => {
    stopped = true
    clearTimeout(timer)
    strip.remove()
  }
}
