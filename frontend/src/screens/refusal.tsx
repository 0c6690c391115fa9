// The full-screen message for every way of not getting in: in plain words, with what to do.

import { render } from 'preact'
import { refusalText } from '../refusals'
import { Icon, Screen } from './common'

export function Refusal({ reason, detail }: { reason: string; detail?: string }) {
  const t = refusalText(reason, detail)
  return (
    <Screen>
      <section class="card refusal" data-testid="refusal" data-reason={t.reason} role="alert">
        <div class="refusal-icon">
          <Icon name={t.reason === 'archived' ? 'lock' : 'warn'} />
        </div>
        <h1>{t.title}</h1>
        <p>{t.body}</p>
        {t.action === 'home' && (
          <a class="button primary" href="/">
            Go to sign in
          </a>
        )}
        {t.action === 'retry' && (
          <button class="button primary" type="button" onClick={() => location.reload()}>
            Try again
          </button>
        )}
      </section>
    </Screen>
  )
}

export function renderRefusal(mount: HTMLElement, reason: string, detail?: string): void {
  document.title = 'Inkroom'
  mount.replaceChildren()
  render(<Refusal reason={reason} detail={detail} />, mount)
}
