// `/j/{code}`: "Your name" (remembered on this device) and "Join". The server answers with
// the first token and sets the device grant that keeps this device's identity.

import { render } from 'preact'
import { useSignal } from '@preact/signals'
import { useEffect } from 'preact/hooks'
import { ApiError, type PageToken, api } from '../api'
import { rememberToken } from '../session'
import { ErrorNote, Field, Screen } from './common'
import { Refusal } from './refusal'

const NAME_KEY = 'inkroom.name'

interface InviteInfo {
  classroom: { id: string; title: string }
  role: 'student' | 'observer'
  returning: boolean
}

function storedName(): string {
  try {
    return localStorage.getItem(NAME_KEY) ?? ''
  } catch {
    return ''
  }
}

export function Join({ code }: { code: string }) {
  const info = useSignal<InviteInfo | null>(null)
  const refused = useSignal<{ reason: string; message: string } | null>(null)
  const name = useSignal(storedName())
  const busy = useSignal(false)
  const problem = useSignal<string | null>(null)

  useEffect(() => {
    api<InviteInfo>('GET', `/api/join/${encodeURIComponent(code)}`)
      .then((i) => {
        info.value = i
        document.title = `Join ${i.classroom.title} · Inkroom`
      })
      .catch((e: ApiError) => (refused.value = { reason: e.reason, message: e.message }))
  }, [code])

  if (refused.value) return <Refusal reason={refused.value.reason} detail={refused.value.message} />
  if (!info.value) {
    return (
      <Screen>
        <p class="muted">Opening the invite…</p>
      </Screen>
    )
  }
  const i = info.value

  async function join(e: Event) {
    e.preventDefault()
    const clean = name.value.trim()
    if (!clean) {
      problem.value = 'Enter your name, so the tutor knows who you are.'
      return
    }
    busy.value = true
    problem.value = null
    try {
      const t = await api<PageToken>('POST', `/api/join/${encodeURIComponent(code)}`, { name: clean })
      try {
        localStorage.setItem(NAME_KEY, clean)
      } catch {
        /* private mode */
      }
      rememberToken(t.classroom.id, t.token)
      location.assign(`/c/${encodeURIComponent(t.classroom.id)}`)
    } catch (err) {
      const e = err as ApiError
      if (e.status >= 400 && e.status < 500 && e.reason !== 'invalid') refused.value = { reason: e.reason, message: e.message }
      else problem.value = e.message
      busy.value = false
    }
  }

  return (
    <Screen>
      <form class="card" onSubmit={join} data-testid="join">
        <p class="muted">You are invited to</p>
        <h1>{i.classroom.title}</h1>
        <p class="muted">
          {i.role === 'observer' ? 'You will watch the board; you will not be able to write on it.' : 'You will be able to write on the board with your tutor.'}
        </p>
        <Field label="Your name" value={name.value} onInput={(v) => (name.value = v)} autocomplete="name" name="name" required autofocus />
        <ErrorNote message={problem.value} />
        <button class="button primary" type="submit" disabled={busy.value}>
          {busy.value ? 'Joining…' : 'Join'}
        </button>
      </form>
    </Screen>
  )
}

export function renderJoin(mount: HTMLElement, code: string): void {
  render(<Join code={code} />, mount)
}
