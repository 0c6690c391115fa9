// The tutor's home at `/`: sign up or sign in, then their classrooms: open, invite link
// with a copy button, turn the link off, rename, archive (and restore).

import { render } from 'preact'
import { signal, useSignal } from '@preact/signals'
import { useEffect, useRef } from 'preact/hooks'
import { type Account, ApiError, type ClassroomInfo, type Invite, api } from '../api'
import { ErrorNote, Field, Icon, Screen } from './common'
import { Subscription } from './billing'

const account = signal<Account | null | undefined>(undefined)
const signupOpen = signal(true)
const firstRun = signal(false)
const classrooms = signal<ClassroomInfo[]>([])
const loadError = signal<string | null>(null)

async function loadMe(): Promise<void> {
  try {
    const me = await api<{ account: Account | null; signup_open: boolean; first_run?: boolean }>('GET', '/api/auth/me')
    signupOpen.value = me.signup_open
    firstRun.value = !!me.first_run
    account.value = me.account
    if (me.account) await loadClassrooms()
  } catch (e) {
    loadError.value = (e as ApiError).message
    account.value = null
  }
}

async function loadClassrooms(): Promise<void> {
  const list = await api<{ classrooms: ClassroomInfo[] }>('GET', '/api/classrooms')
  classrooms.value = list.classrooms
}

function replace(updated: ClassroomInfo): void {
  classrooms.value = classrooms.value.map((c) => (c.id === updated.id ? updated : c))
}

// -- signed out -----------------------------------------------------------------------

function AuthForm() {
  const mode = useSignal<'signin' | 'signup'>(firstRun.value && signupOpen.value ? 'signup' : 'signin')
  const name = useSignal('')
  const email = useSignal('')
  const password = useSignal('')
  const busy = useSignal(false)
  const problem = useSignal<string | null>(loadError.value)
  const signup = mode.value === 'signup'

  async function submit(e: Event) {
    e.preventDefault()
    busy.value = true
    problem.value = null
    try {
      const path = signup ? '/api/auth/signup' : '/api/auth/signin'
      const body = signup ? { name: name.value, email: email.value, password: password.value } : { email: email.value, password: password.value }
      const r = await api<{ account: Account }>('POST', path, body)
      password.value = ''
      firstRun.value = false
      await loadClassrooms()
      account.value = r.account
    } catch (err) {
      problem.value = (err as ApiError).message
    } finally {
      busy.value = false
    }
  }

  return (
    <form class="card" onSubmit={submit} data-testid={signup ? 'signup' : 'signin'}>
      <h1>{signup ? 'Create a tutor account' : 'Sign in'}</h1>
      <p class="muted">{signup ? 'Run your classes on a shared whiteboard. Students join with a link; they need no account.' : 'Tutors sign in here. Students: open the invite link your tutor sent you.'}</p>
      {signup && <Field label="Your name" value={name.value} onInput={(v) => (name.value = v)} autocomplete="name" name="name" />}
      <Field label="Email" type="email" value={email.value} onInput={(v) => (email.value = v)} autocomplete="email" name="email" required />
      <Field
        label="Password"
        type="password"
        value={password.value}
        onInput={(v) => (password.value = v)}
        autocomplete={signup ? 'new-password' : 'current-password'}
        name="password"
        required
        minLength={signup ? 8 : undefined}
      />
      {signup && <p class="hint">At least 8 characters.</p>}
      <ErrorNote message={problem.value} />
      <button class="button primary" type="submit" disabled={busy.value}>
        {busy.value ? 'One moment…' : signup ? 'Create account' : 'Sign in'}
      </button>
      {signupOpen.value && (
        <p class="switch">
          {signup ? 'Already have an account? ' : 'New here? '}
          <button type="button" class="link" onClick={() => ((mode.value = signup ? 'signin' : 'signup'), (problem.value = null))}>
            {signup ? 'Sign in' : 'Create an account'}
          </button>
        </p>
      )}
    </form>
  )
}

// -- signed in ------------------------------------------------------------------------

function NewClassroom() {
  const open = useSignal(false)
  const title = useSignal('')
  const problem = useSignal<string | null>(null)
  const busy = useSignal(false)

  async function create(e: Event) {
    e.preventDefault()
    busy.value = true
    problem.value = null
    try {
      const c = await api<ClassroomInfo>('POST', '/api/classrooms', { title: title.value })
      classrooms.value = [c, ...classrooms.value]
      title.value = ''
      open.value = false
    } catch (err) {
      problem.value = (err as ApiError).message
    } finally {
      busy.value = false
    }
  }

  if (!open.value) {
    return (
      <button class="button primary" type="button" onClick={() => (open.value = true)} data-testid="new-classroom">
        <Icon name="plus" /> New classroom
      </button>
    )
  }
  return (
    <form class="card inline-form" onSubmit={create}>
      <Field label="Title" value={title.value} onInput={(v) => (title.value = v)} required autofocus name="title" />
      <ErrorNote message={problem.value} />
      <div class="row">
        <button class="button primary" type="submit" disabled={busy.value}>
          Create
        </button>
        <button class="button" type="button" onClick={() => (open.value = false)}>
          Cancel
        </button>
      </div>
    </form>
  )
}

function InviteRow({ invite, onChange }: { invite: Invite; onChange: (fn: () => Promise<unknown>) => void }) {
  const copied = useSignal(false)
  const input = useRef<HTMLInputElement>(null)
  const who = invite.role === 'observer' ? 'observers (watch only)' : 'students'

  async function copy() {
    try {
      await navigator.clipboard.writeText(invite.url)
    } catch {
      // Not a secure context (plain http on a LAN address): the old way still works.
      input.current?.select()
      document.execCommand('copy')
    }
    copied.value = true
    setTimeout(() => (copied.value = false), 2000)
  }

  return (
    <div class="invite-row" data-testid="invite" data-role={invite.role}>
      <label class="field">
        <span>Invite link for {who}</span>
        <div class="copy-row">
          <input ref={input} readOnly value={invite.url} data-testid="invite-url" onFocus={(e) => (e.currentTarget as HTMLInputElement).select()} />
          <button class="button" type="button" onClick={copy} data-testid="copy-invite" aria-live="polite">
            <Icon name="copy" /> {copied.value ? 'Copied' : 'Copy'}
          </button>
        </div>
      </label>
      <p class="hint">
        Joined {invite.uses} time{invite.uses === 1 ? '' : 's'}
        {invite.max_uses ? ` of ${invite.max_uses}` : ''}
        {invite.expires ? `, until ${new Date(invite.expires).toLocaleString()}` : ''}.{' '}
        <button class="link danger" type="button" data-testid="revoke-invite" onClick={() => onChange(() => api('POST', `/api/invites/${encodeURIComponent(invite.code)}/revoke`))}>
          Turn off this link
        </button>{' '}
        (those who joined with it lose access)
      </p>
    </div>
  )
}

function InviteLinks({ classroom }: { classroom: ClassroomInfo }) {
  const busy = useSignal(false)
  const role = useSignal<'student' | 'observer'>('student')
  const problem = useSignal<string | null>(null)
  const live = classroom.invites.filter((i) => i.status === 'ok')

  async function act(fn: () => Promise<unknown>) {
    busy.value = true
    problem.value = null
    try {
      await fn()
      await loadClassrooms()
    } catch (err) {
      problem.value = (err as ApiError).message
    } finally {
      busy.value = false
    }
  }

  return (
    <div class="invite">
      {live.map((i) => (
        <InviteRow key={i.code} invite={i} onChange={act} />
      ))}
      <div class="row">
        <button class="button" type="button" disabled={busy.value} onClick={() => act(() => api('POST', `/api/classrooms/${classroom.id}/invites`, { role: role.value }))} data-testid="create-invite">
          <Icon name="link" /> {live.length ? 'Create another link' : 'Create invite link'}
        </button>
        <label class="inline-select">
          <span>for</span>
          <select aria-label="Who the link is for" value={role.value} onChange={(e) => (role.value = (e.currentTarget as HTMLSelectElement).value as 'student' | 'observer')}>
            <option value="student">students</option>
            <option value="observer">observers (watch only)</option>
          </select>
        </label>
      </div>
      <ErrorNote message={problem.value} />
    </div>
  )
}

function ClassroomCard({ classroom }: { classroom: ClassroomInfo }) {
  const renaming = useSignal(false)
  const title = useSignal(classroom.title)
  const problem = useSignal<string | null>(null)

  async function patch(body: Record<string, unknown>) {
    problem.value = null
    try {
      replace(await api<ClassroomInfo>('PATCH', `/api/classrooms/${classroom.id}`, body))
      renaming.value = false
    } catch (err) {
      problem.value = (err as ApiError).message
    }
  }

  return (
    <li class="card classroom" data-testid="classroom" data-id={classroom.id}>
      {renaming.value ? (
        <form class="inline-form" onSubmit={(e) => (e.preventDefault(), void patch({ title: title.value }))}>
          <Field label="Title" value={title.value} onInput={(v) => (title.value = v)} required autofocus />
          <div class="row">
            <button class="button primary" type="submit">
              Save
            </button>
            <button class="button" type="button" onClick={() => ((renaming.value = false), (title.value = classroom.title))}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <div class="classroom-head">
          <h2>{classroom.title}</h2>
          {classroom.online > 0 && <span class="pill">{classroom.online} online</span>}
        </div>
      )}
      {classroom.archived ? (
        <div class="row">
          <span class="muted">Archived: nobody can open it.</span>
          <button class="button" type="button" onClick={() => patch({ archived: false })}>
            Restore
          </button>
        </div>
      ) : (
        <>
          <div class="row">
            <a class="button primary" href={`/c/${encodeURIComponent(classroom.id)}`} data-testid="open-classroom">
              Open
            </a>
            <a class="button" href={`/replay/${encodeURIComponent(classroom.id)}`} data-testid="replay-classroom">
              Replay
            </a>
            <button class="button" type="button" onClick={() => (renaming.value = true)}>
              Rename
            </button>
            <button
              class="button danger"
              type="button"
              onClick={() => {
                if (confirm(`Archive “${classroom.title}”? Everyone in it is disconnected and nobody can open it until you restore it.`)) void patch({ archived: true })
              }}
            >
              Archive
            </button>
          </div>
          <InviteLinks classroom={classroom} />
        </>
      )}
      <ErrorNote message={problem.value} />
    </li>
  )
}

function Classrooms() {
  const a = account.value!
  const active = classrooms.value.filter((c) => !c.archived)
  const archived = classrooms.value.filter((c) => c.archived)

  async function signOut() {
    await api('POST', '/api/auth/signout').catch(() => undefined)
    account.value = null
    classrooms.value = []
  }

  return (
    <>
      <div class="topline">
        <span data-testid="signed-in-as">
          Signed in as <b>{a.name || a.email}</b>
          {a.role === 'admin' ? ' (admin)' : ''}
        </span>
        {a.role === 'admin' && (
          <a class="link" href="/admin" data-testid="admin-link">
            Admin inspector
          </a>
        )}
        <button class="link" type="button" onClick={signOut}>
          Sign out
        </button>
      </div>
      <Subscription />
      <div class="heading-row">
        <h1>Your classrooms</h1>
        <NewClassroom />
      </div>
      {active.length === 0 && <p class="muted empty">No classrooms yet. Make one with “New classroom”, then send its invite link to your students.</p>}
      <ul class="classrooms">
        {active.map((c) => (
          <ClassroomCard key={c.id} classroom={c} />
        ))}
      </ul>
      {archived.length > 0 && (
        <details class="archived">
          <summary>Archived ({archived.length})</summary>
          <ul class="classrooms">
            {archived.map((c) => (
              <ClassroomCard key={c.id} classroom={c} />
            ))}
          </ul>
        </details>
      )}
    </>
  )
}

export function Home() {
  useEffect(() => {
    void loadMe()
  }, [])
  if (account.value === undefined) {
    return (
      <Screen>
        <p class="muted">Loading…</p>
      </Screen>
    )
  }
  return <Screen wide={!!account.value}>{account.value ? <Classrooms /> : <AuthForm />}</Screen>
}

export function renderHome(mount: HTMLElement): void {
  render(<Home />, mount)
}
