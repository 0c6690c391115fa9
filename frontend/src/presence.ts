// Presence over awareness, kept small because awareness re-sends the whole local state:
//
// * board awareness: cursor and transient drawing state only, at most 10 updates a
//   second and none while a stroke streams (the ink itself shows where the pen is):
//   {u: userId, g: pageId, x, y}  (+ l: 1 laser on, s: shape preview, m: move preview)
// * classroom awareness: the roster entry {u: userId, n: name, r: role, q: quality 0..2}.

import type { Awareness } from 'y-protocols/awareness'
import type { ShapeType } from './board'

export const CURSOR_INTERVAL_MS = 100

export interface CursorState {
  u: string
  g: string
  x?: number
  y?: number
  l?: 1
  /** shape preview: [type, x, y, ex, ey, width, colour] */
  s?: [ShapeType, number, number, number, number, number, string]
  /** move preview: [dx, dy, ...ids] */
  m?: Array<number | string>
}

export interface RosterEntry {
  u: string
  n: string
  r: string
  q: number
}

const PALETTE = ['#e11d48', '#2563eb', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4d7c0f']

export function userColour(userId: string): string {
  let h = 0x811c9dc5 // FNV-1a
  for (let i = 0; i < userId.length; i++) h = Math.imul(h ^ userId.charCodeAt(i), 0x01000193)
  return PALETTE[(h >>> 0) % PALETTE.length]
}

/** Throttles writes of the local board awareness state to CURSOR_INTERVAL_MS. */
export class CursorPublisher {
  private state: CursorState
  private last = 0
  private timer = 0
  private dirty = false

  constructor(
    private awareness: Awareness,
    userId: string,
    page: string,
  ) {
    this.state = { u: userId, g: page }
    awareness.setLocalState(this.state)
  }

  update(patch: Partial<CursorState>, immediate = false): void {
    const next: CursorState = { ...this.state, ...patch }
    for (const k of Object.keys(patch) as Array<keyof CursorState>) {
      if (patch[k] === undefined) delete next[k]
    }
    this.state = next
    this.dirty = true
    const wait = this.last + CURSOR_INTERVAL_MS - performance.now()
    if (immediate || wait <= 0) this.flush()
    else if (!this.timer) this.timer = window.setTimeout(() => this.flush(), wait)
  }

  hide(): void {
    this.update({ x: undefined, y: undefined, l: undefined, s: undefined, m: undefined })
  }

  private flush(): void {
    clearTimeout(this.timer)
    this.timer = 0
    if (!this.dirty) return
    this.dirty = false
    this.last = performance.now()
    this.awareness.setLocalState(this.state)
  }
}

export function rosterOf(awareness: Awareness): RosterEntry[] {
  const byUser = new Map<string, RosterEntry>()
  for (const [, st] of awareness.getStates()) {
    const s = st as Partial<RosterEntry>
    if (typeof s.u !== 'string') continue
    const prev = byUser.get(s.u)
    const entry = { u: s.u, n: String(s.n ?? s.u), r: String(s.r ?? ''), q: Number(s.q ?? 0) }
    if (!prev || entry.q < prev.q) byUser.set(s.u, entry)
  }
  const order = (r: string) => (r === 'tutor' ? 0 : r === 'admin' ? 1 : r === 'student' ? 2 : 3)
  return [...byUser.values()].sort((a, b) => order(a.r) - order(b.r) || a.n.localeCompare(b.n))
}

export function qualityOf(rttMs: number | null, online: boolean): number {
  if (!online) return 3
  if (rttMs === null || rttMs < 400) return 0
  return rttMs < 1200 ? 1 : 2
}

export const QUALITY_LABEL = ['good connection', 'slow connection', 'poor connection', 'offline']
