// The admin inspector at `/admin` (an admin signs in at `/` first): live rooms and their
// connections (refreshed every 2 s), a document's tree, and the replay of a document's
// history with a timeline slider, authors colour-coded, play at 1x to 20x, and a restore
// that asks first. The board is drawn by the board's own SVG export, read-only.

import { render } from 'preact'
import { signal, useSignal } from '@preact/signals'
import { useEffect, useRef } from 'preact/hooks'
import * as Y from 'yjs'
import { ApiError, api } from '../api'
import { Board, FIRST_PAGE, type PageView } from '../board'
import { shapesSvg } from '../export'
import { ErrorNote, Screen } from './common'

interface Connection {
  client: number
  user_id: string
  name: string
  role: string
  read_only: boolean
  node: string
  connected_since: string
  bytes_in: number
  bytes_out: number
  outbox_frames: number
  device: string
}
interface Room {
  name: string
  node: string
  size: number
  connections: Connection[]
}
interface Entry {
  seq: number
  at: string
  author: string | null
  size: number
}

const PALETTE = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#008080', '#9a6324', '#800000']
type Tab = 'rooms' | 'people' | 'document' | 'replay'
const tab = signal<Tab>('replay')
const docName = signal(new URLSearchParams(location.search).get('doc') ?? '')

function colourOf(authors: string[], author: string | null): string {
  const i = authors.indexOf(author ?? '')
  return i < 0 ? '#777' : PALETTE[i % PALETTE.length]
}

// -- rooms ----------------------------------------------------------------------------

interface Listing {
  rooms: Room[]
  nodes: { answered: string[]; missing: string[] }
  truncated: boolean
}

function Rooms() {
  const rooms = useSignal<Room[]>([])
  const nodes = useSignal<Listing['nodes']>({ answered: [], missing: [] })
  const problem = useSignal<string | null>(null)
  useEffect(() => {
    let stop = false
    async function load() {
      try {
        const listing = await api<Listing>('GET', '/api/admin/rooms')
        rooms.value = listing.rooms
        nodes.value = listing.nodes
        problem.value = null
      } catch (e) {
        problem.value = (e as ApiError).message
      }
    }
    void load()
    const timer = setInterval(() => !stop && void load(), 2000)
    return () => {
      stop = true
      clearInterval(timer)
    }
  }, [])
  return (
    <section data-testid="rooms">
      <ErrorNote message={problem.value} />
      <p class="muted" data-testid="nodes">
        {nodes.value.answered.length} node{nodes.value.answered.length === 1 ? '' : 's'} answered
        {nodes.value.missing.length > 0 && (
          <strong> · not answering: {nodes.value.missing.join(', ')} (their rooms are not listed; it refreshes every 2 s)</strong>
        )}
      </p>
      {rooms.value.length === 0 && <p class="muted">No room is open on any node.</p>}
      {rooms.value.map((r) => (
        <div key={`${r.name}@${r.node}`}>
          <h2>
            <button class="link" type="button" onClick={() => ((docName.value = r.name), (tab.value = 'replay'))}>
              {r.name}
            </button>{' '}
            <small class="muted">
              {r.connections.length} connected · {r.size} bytes · {r.node}
            </small>
          </h2>
          <table class="adm-table">
            <thead>
              <tr>
                <th>user</th><th>name</th><th>role</th><th>since</th><th>in / out</th><th>outbox</th><th>device</th>
              </tr>
            </thead>
            <tbody>
              {r.connections.map((c) => (
                <tr key={c.client}>
                  <td>{c.user_id}</td>
                  <td>{c.name}</td>
                  <td>{c.role}</td>
                  <td>{new Date(c.connected_since).toLocaleTimeString()}</td>
                  <td>
                    {c.bytes_in} / {c.bytes_out}
                  </td>
                  <td>{c.outbox_frames}</td>
                  <td>{c.device.slice(0, 40)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </section>
  )
}

// -- users, classrooms and attendance -----------------------------------------------------

interface Stay {
  user_id: string
  name: string
  role: string
  device: string
  from: string
  to: string | null
}

function People() {
  const users = useSignal<{ id: number; email: string; name: string; role: string }[]>([])
  const rooms = useSignal<{ id: string; title: string; owner: number | null; archived: string | null }[]>([])
  const chosen = useSignal<string | null>(null)
  const stays = useSignal<Stay[]>([])
  const problem = useSignal<string | null>(null)
  useEffect(() => {
    Promise.all([api<{ users: typeof users.value }>('GET', '/api/admin/users'), api<{ classrooms: typeof rooms.value }>('GET', '/api/admin/classrooms')])
      .then(([u, c]) => ((users.value = u.users), (rooms.value = c.classrooms)))
      .catch((e: ApiError) => (problem.value = e.message))
  }, [])
  async function attendance(id: string) {
    chosen.value = id
    try {
      stays.value = (await api<{ present: Stay[] }>('GET', `/api/admin/classrooms/${encodeURIComponent(id)}/attendance`)).present
    } catch (e) {
      problem.value = (e as ApiError).message
    }
  }
  return (
    <section data-testid="people">
      <ErrorNote message={problem.value} />
      <h2>Accounts</h2>
      <table class="adm-table">
        <tbody>
          {users.value.map((u) => (
            <tr key={u.id}>
              <td>{u.email}</td>
              <td>{u.name}</td>
              <td>{u.role}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Classrooms</h2>
      <table class="adm-table">
        <tbody>
          {rooms.value.map((c) => (
            <tr key={c.id}>
              <td>{c.title}</td>
              <td>{c.id}</td>
              <td>{c.archived ? 'archived' : ''}</td>
              <td>
                <button class="link" type="button" onClick={() => void attendance(c.id)}>
                  Attendance
                </button>{' '}
                <button class="link" type="button" onClick={() => ((docName.value = `${c.id}/board`), (tab.value = 'replay'))}>
                  Replay
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {chosen.value && (
        <>
          <h2>Attendance in {chosen.value}</h2>
          {stays.value.length === 0 && <p class="muted">Nobody has connected yet.</p>}
          <table class="adm-table" data-testid="attendance">
            <tbody>
              {stays.value.map((v, i) => (
                <tr key={i}>
                  <td>{v.name || v.user_id}</td>
                  <td>{v.role}</td>
                  <td>{new Date(v.from).toLocaleString()}</td>
                  <td>{v.to ? new Date(v.to).toLocaleTimeString() : 'now'}</td>
                  <td>{v.device.slice(0, 40)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  )
}

// -- document tree ----------------------------------------------------------------------

function Tree({ value, label }: { value: unknown; label: string }) {
  if (value !== null && typeof value === 'object') {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value)
    return (
      <details open={entries.length < 12}>
        <summary>
          {label} <small class="muted">{Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`}</small>
        </summary>
        <ul class="adm-tree">
          {entries.map(([k, v]) => (
            <li key={k}>
              <Tree value={v} label={k} />
            </li>
          ))}
        </ul>
      </details>
    )
  }
  return (
    <span>
      {label}: <code>{JSON.stringify(value)}</code>
    </span>
  )
}

function DocumentView() {
  const doc = useSignal<Record<string, unknown> | null>(null)
  const problem = useSignal<string | null>(null)
  useEffect(() => {
    if (!docName.value) return
    api<Record<string, unknown>>('GET', `/api/admin/documents/${docName.value}`)
      .then((d) => ((doc.value = d), (problem.value = null)))
      .catch((e: ApiError) => (problem.value = e.message))
  }, [docName.value])
  const d = doc.value
  return (
    <section data-testid="document">
      <ErrorNote message={problem.value} />
      {d && (
        <>
          <p class="muted">
            {String(d.size)} bytes · {d.loaded ? 'loaded' : 'stored'} {d.deleted ? '· deleted' : ''}
          </p>
          <Tree value={d.content} label={String(d.name)} />
        </>
      )}
    </section>
  )
}

// -- replay -------------------------------------------------------------------------------

/** Where a replay reads from: the admin API, or a tutor's classroom (read-only). */
export interface ReplaySource {
  history: (after: number) => string
  state: (at: string) => string
  canRestore: boolean
}

function adminSource(name: string): ReplaySource {
  return {
    history: (after) => `/api/admin/history/${name}?limit=1000&after=${after}`,
    state: (at) => `/api/admin/state/${name}?format=binary&at=${encodeURIComponent(at)}`,
    canRestore: true,
  }
}

function classroomSource(classroom: string): ReplaySource {
  const base = `/api/classrooms/${encodeURIComponent(classroom)}/replay`
  return {
    history: (after) => `${base}/history?limit=1000&after=${after}`,
    state: (at) => `${base}/state?at=${encodeURIComponent(at)}`,
    canRestore: false,
  }
}

async function stateAt(source: ReplaySource, at: string): Promise<Uint8Array> {
  const res = await fetch(source.state(at), { credentials: 'same-origin' })
  if (!res.ok) throw new ApiError(res.status, 'error', `The server answered ${res.status}.`)
  return new Uint8Array(await res.arrayBuffer())
}

function pageListOf(update: Uint8Array): PageView[] {
  const doc = new Y.Doc()
  try {
    Y.applyUpdate(doc, update)
    return new Board(doc).pageList()
  } finally {
    doc.destroy()
  }
}

async function allEntries(source: ReplaySource): Promise<Entry[]> {
  const out: Entry[] = []
  let after = 0
  for (let i = 0; i < 200; i++) {
    const page = await api<{ entries: Entry[]; next_after: number | null }>('GET', source.history(after))
    out.push(...page.entries)
    if (page.next_after === null) break
    after = page.next_after
  }
  return out
}

function Replay({ name, source }: { name: string; source: ReplaySource }) {
  const entries = useSignal<Entry[]>([])
  const index = useSignal(0)
  const speed = useSignal(1)
  const playing = useSignal(false)
  const byAuthor = useSignal(true)
  const problem = useSignal<string | null>(null)
  const shown = useSignal<{ seq: number; page: string; ids: string[]; exists: boolean } | null>(null)
  // The page drawn, and every page seen at any moment drawn so far (a page added late in
  // the lesson is listed once the slider has been at or past its birth).
  const page = useSignal(FIRST_PAGE)
  const pages = useSignal<PageView[]>([{ id: FIRST_PAGE, o: 'a0' }])
  const boardRef = useRef<HTMLDivElement>(null)
  const authors = [...new Set(entries.value.map((e) => e.author ?? ''))]

  // Every page a board has had is listed, whatever moment is drawn: a page added late and
  // deleted later still shows in the list, and says it was not there at earlier moments.
  function learnPages(here: PageView[]) {
    const known = new Map(pages.value.map((p) => [p.id, p]))
    if (!here.some((p) => !known.has(p.id))) return
    for (const p of here) known.set(p.id, p)
    pages.value = [...known.values()].sort((a, b) => (a.o < b.o ? -1 : a.o > b.o ? 1 : a.id < b.id ? -1 : 1))
  }

  useEffect(() => {
    if (!name) return
    allEntries(source)
      .then(async (list) => {
        // The page list is known before the slider shows, so it never depends on which
        // moment the slider reached first.
        const last = list[list.length - 1]
        if (last) learnPages(pageListOf(await stateAt(source, last.at)))
        entries.value = list
        index.value = list.length - 1
      })
      .catch((e: ApiError) => (problem.value = e.message))
  }, [name])

  // Draws the board as it was at the selected entry (the latest request wins).
  useEffect(() => {
    const entry = entries.value[index.value]
    if (!entry) return
    let current = true
    stateAt(source, entry.at)
      .then((update) => {
        if (!current || !boardRef.current) return
        const doc = new Y.Doc()
        Y.applyUpdate(doc, update)
        const board = new Board(doc)
        const here = board.pageList()
        learnPages(here)
        const exists = here.some((p) => p.id === page.value)
        const shapes = exists ? board.pageShapes(page.value) : []
        const drawn = byAuthor.value ? shapes.map((s) => ({ ...s, c: colourOf(authors, s.a) })) : shapes
        boardRef.current.innerHTML = shapesSvg(drawn)
        shown.value = { seq: entry.seq, page: page.value, ids: shapes.map((s) => s.id).sort(), exists }
        doc.destroy()
      })
      .catch((e: ApiError) => (problem.value = e.message))
    return () => {
      current = false
    }
  }, [index.value, entries.value, byAuthor.value, page.value])

  // Play: steps through the log at the speed chosen, by the entries' own times.
  useEffect(() => {
    if (!playing.value) return
    const list = entries.value
    const i = index.value
    if (i >= list.length - 1) {
      playing.value = false
      return
    }
    const gap = Date.parse(list[i + 1].at) - Date.parse(list[i].at)
    const timer = setTimeout(() => (index.value = i + 1), Math.min(2000, Math.max(16, gap / speed.value)))
    return () => clearTimeout(timer)
  }, [playing.value, index.value, speed.value])

  async function restore() {
    const entry = entries.value[index.value]
    if (!entry) return
    if (!window.confirm(`Restore ${name} to how it was at ${new Date(entry.at).toLocaleString()}? Everyone connected sees the change.`))
      return
    try {
      await api('POST', `/api/admin/restore/${name}`, { at: entry.at })
      entries.value = await allEntries(source)
      index.value = entries.value.length - 1
    } catch (e) {
      problem.value = (e as ApiError).message
    }
  }

  const entry = entries.value[index.value]
  return (
    <section data-testid="replay">
      <ErrorNote message={problem.value} />
      {entries.value.length === 0 ? (
        <p class="muted">{name ? 'Nothing written to this document yet.' : 'Choose a document.'}</p>
      ) : (
        <>
          <div class="adm-controls">
            <button type="button" onClick={() => (playing.value = !playing.value)}>
              {playing.value ? 'Pause' : 'Play'}
            </button>
            <label>
              Speed{' '}
              <select value={speed.value} onChange={(e) => (speed.value = Number((e.target as HTMLSelectElement).value))}>
                {[1, 2, 5, 10, 20].map((s) => (
                  <option key={s} value={s}>
                    {s}x
                  </option>
                ))}
              </select>
            </label>
            <label>
              <input type="checkbox" checked={byAuthor.value} onChange={() => (byAuthor.value = !byAuthor.value)} /> Colour by
              author
            </label>
            <label>
              Page{' '}
              <select data-testid="replay-page" value={page.value} onChange={(e) => (page.value = (e.target as HTMLSelectElement).value)}>
                {pages.value.map((p, i) => (
                  <option key={p.id} value={p.id}>
                    {i + 1} of {pages.value.length}
                  </option>
                ))}
              </select>
            </label>
            {source.canRestore && (
              <button type="button" class="danger" onClick={restore} data-testid="restore">
                Restore to this moment…
              </button>
            )}
          </div>
          <input
            type="range"
            aria-label="Timeline"
            data-testid="timeline"
            min={0}
            max={entries.value.length - 1}
            value={index.value}
            onInput={(e) => ((playing.value = false), (index.value = Number((e.target as HTMLInputElement).value)))}
          />
          <p class="muted" data-testid="moment">
            #{entry?.seq} · {entry && new Date(entry.at).toLocaleString()} · {entry?.author ?? 'server'}
          </p>
          <ul class="adm-legend">
            {authors.map((a) => (
              <li key={a}>
                <span class="adm-swatch" style={{ background: colourOf(authors, a) }} /> {a || 'server'}
              </li>
            ))}
          </ul>
          {shown.value && !shown.value.exists && (
            <p class="muted" data-testid="no-page">
              This page did not exist yet at this moment (or had been removed). Move the timeline on, or pick another page.
            </p>
          )}
          <div
            class="adm-board"
            ref={boardRef}
            data-testid="replay-board"
            data-seq={shown.value?.seq ?? ''}
            data-page={shown.value?.page ?? ''}
            data-shapes={shown.value?.ids.join(',') ?? ''}
          />
        </>
      )}
    </section>
  )
}

// -- the screen -------------------------------------------------------------------------

const TAB_NAMES: Record<Tab, string> = { rooms: 'Rooms', people: 'Users and classrooms', document: 'Document', replay: 'Replay' }

function Admin() {
  const input = useSignal(docName.value)
  return (
    <Screen wide>
      <div class="topline">
        <a class="link" href="/">
          ← Home
        </a>
        <nav class="adm-tabs">
          {(['rooms', 'people', 'document', 'replay'] as const).map((t) => (
            <button key={t} type="button" class={tab.value === t ? 'adm-tab active' : 'adm-tab'} onClick={() => (tab.value = t)}>
              {TAB_NAMES[t]}
            </button>
          ))}
        </nav>
      </div>
      <form
        class="adm-doc"
        onSubmit={(e) => {
          e.preventDefault()
          docName.value = input.value.trim()
          history.replaceState(null, '', `/admin?doc=${encodeURIComponent(docName.value)}`)
        }}
      >
        <label>
          Document <input value={input.value} onInput={(e) => (input.value = (e.target as HTMLInputElement).value)} placeholder="c1/board" />
        </label>
        <button type="submit">Open</button>
      </form>
      {tab.value === 'rooms' ? <Rooms /> : tab.value === 'people' ? <People /> : tab.value === 'document' ? <DocumentView key={docName.value} /> : <Replay key={docName.value} name={docName.value} source={adminSource(docName.value)} />}
    </Screen>
  )
}

export function renderAdmin(mount: HTMLElement): void {
  render(<Admin />, mount)
}

/** ``/replay/{C}``: a tutor reviews their classroom's board, read-only (no restore). */
export function renderClassroomReplay(mount: HTMLElement, classroom: string): void {
  render(
    <Screen wide>
      <div class="topline">
        <a class="link" href="/">
          ← Home
        </a>
        <span>Replay of {classroom}</span>
      </div>
      <Replay name={`${classroom}/board`} source={classroomSource(classroom)} />
    </Screen>,
    mount,
  )
}
