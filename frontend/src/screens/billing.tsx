// The tutor's subscription on their home page: the state in words ("Trial, 9 days left",
// "Payment failed: update your card by 12 May 2026"), what to fix, and one way forward:
// Subscribe (Stripe Checkout) while no subscription is live, Manage (Stripe's customer
// portal) once one is. Hidden when billing is off (no Stripe key: every classroom is free).

import { useSignal } from '@preact/signals'
import { useEffect } from 'preact/hooks'
import { type ApiError, api } from '../api'
import { ErrorNote } from './common'

export interface Plan {
  key: string
  name: string
  students_per_classroom: number
  video: boolean
  trial_days: number
}

export interface AccountBilling {
  enabled: boolean
  has_access: boolean
  state: string
  reason: string
  banner: string | null
  status?: string
  label: string
  plans?: Plan[]
  can_subscribe?: boolean
  can_manage?: boolean
}

function planWords(p: Plan, firstTime: boolean): string {
  const size = `${p.students_per_classroom} student${p.students_per_classroom === 1 ? '' : 's'} per class`
  const trial = firstTime && p.trial_days > 0 ? `, ${p.trial_days}-day free trial` : ''
  return `${size}${p.video ? ', video' : ''}${trial}`
}

export function Subscription() {
  const info = useSignal<AccountBilling | null>(null)
  const busy = useSignal(false)
  const problem = useSignal<string | null>(null)

  useEffect(() => {
    // Back from Checkout: Stripe's webhook may arrive after the redirect, so look again for
    // a while (every 2 s, at most a minute) until the subscription shows.
    let tries = new URLSearchParams(location.search).get('billing') === 'success' ? 30 : 0
    let timer = 0
    const load = () =>
      api<AccountBilling>('GET', '/api/billing/account')
        .then((b) => {
          info.value = b
          if (b.enabled && b.state === 'none' && tries-- > 0) timer = window.setTimeout(load, 2000)
        })
        .catch(() => (info.value = null))
    void load()
    return () => clearTimeout(timer)
  }, [])

  const b = info.value
  if (!b || !b.enabled) return null

  async function go(path: string, body: Record<string, string>) {
    busy.value = true
    problem.value = null
    try {
      const r = await api<{ url: string }>('POST', path, body)
      location.assign(r.url)
    } catch (err) {
      problem.value = (err as ApiError).message
      busy.value = false
    }
  }
  const home = `${location.origin}/`
  const subscribe = (plan: string) =>
    go('/api/billing/checkout', { plan, success_url: `${home}?billing=success`, cancel_url: `${home}?billing=canceled` })
  const manage = () => go('/api/billing/portal', { return_url: home })
  const firstTime = b.label === 'prospect'

  return (
    <section class="card subscription" id="billing" data-testid="subscription" data-state={b.state} data-access={String(b.has_access)}>
      <div class="classroom-head">
        <h2>Subscription</h2>
        <span class={b.has_access ? 'pill' : 'pill warn'}>{b.has_access ? 'Classrooms open' : 'Classrooms paused'}</span>
      </div>
      <p data-testid="subscription-status">{b.status}</p>
      {!b.has_access && <p class="hint">Students cannot join your classrooms until this is fixed. Lessons already under way go on.</p>}
      {b.can_subscribe ? (
        <div class="row">
          {(b.plans ?? []).map((p) => (
            <button key={p.key} class="button primary" type="button" disabled={busy.value} onClick={() => void subscribe(p.key)} data-testid="subscribe" data-plan={p.key}>
              Subscribe: {p.name}
              <span class="hint"> ({planWords(p, firstTime)})</span>
            </button>
          ))}
          {b.can_manage && (
            <button class="button" type="button" disabled={busy.value} onClick={() => void manage()}>
              Billing history
            </button>
          )}
        </div>
      ) : (
        <div class="row">
          <button class="button primary" type="button" disabled={busy.value} onClick={() => void manage()} data-testid="manage-subscription">
            Manage subscription
          </button>
        </div>
      )}
      <ErrorNote message={problem.value} />
    </section>
  )
}
