// The board document `{classroom}/board`: every page of one classroom's whiteboard.
// See docs/board-model.md for the schema and why it has this shape.

import * as Y from 'yjs'
import { generateKeyBetween } from 'fractional-indexing'
import { type Box, type Point, boundsOf, decodeInk, inkInts, packInts } from './ink'

/** Transaction origin of this user's own edits: the only origin undo tracks. */
export const LOCAL = Symbol('local')

export const PAGE_W = 1600
export const PAGE_H = 1200
export const FIRST_PAGE = 'p0'

export type ShapeType = 'p' | 'h' | 'r' | 'e' | 'l' | 'a' | 'x'
export const INK_TYPES: ReadonlySet<ShapeType> = new Set(['p', 'h'])

/** A decoded, render-ready view of one shape; rebuilt when its Y.Map changes. */
export interface ShapeView {
  id: string
  t: ShapeType
  pg: string
  z: string
  a: string
  c: string
  w: number
  x: number
  y: number
  /** Ink: absolute points. */
  points?: Point[]
  pressure?: boolean
  done: boolean
  /** Rect/ellipse/line/arrow: end relative to (x, y). */
  ex?: number
  ey?: number
  /** Text. */
  tx?: string
  fs?: number
  box: Box
  /** Bumped on every change: renderers key caches on it. */
  rev: number
}

export interface PageView {
  id: string
  o: string
}

let counter = 0

export class Board {
  readonly doc: Y.Doc
  readonly shapes: Y.Map<Y.Map<unknown>>
  readonly pages: Y.Map<Y.Map<unknown>>
  private views = new Map<string, ShapeView>()
  /**
   * Shapes of pages other than the one in view: only their page is known. Decoding a
   * stroke (its points, its bounds) is most of what a loading board costs the page, so
   * the page the student is on is decoded as it arrives and the others when shown.
   */
  private lazy = new Map<string, string>()
  private focused = FIRST_PAGE
  private byPage = new Map<string, Set<string>>()
  private sorted = new Map<string, ShapeView[]>()
  private maxZ: string | null = null
  /** Ink strokes still being written (done not set yet). */
  readonly unfinished = new Set<string>()
  private listeners = new Set<(changed: Set<string>, removed: Set<string>) => void>()
  private pageListeners = new Set<() => void>()

  constructor(doc: Y.Doc) {
    this.doc = doc
    this.shapes = doc.getMap('shapes')
    this.pages = doc.getMap('pages')
    this.shapes.forEach((_m, id) => this.refresh(id))
    this.shapes.observeDeep((events) => {
      const changed = new Set<string>()
      const removed = new Set<string>()
      for (const ev of events) {
        if (ev.target === this.shapes) {
          for (const [key, change] of ev.changes.keys) {
            if (change.action === 'delete') removed.add(key)
            else changed.add(key)
          }
        } else {
          // A field of a shape, or its points array: walk up to the shape's key.
          let t: Y.AbstractType<unknown> | null = ev.target as Y.AbstractType<unknown>
          while (t && t.parent !== this.shapes) t = t.parent as Y.AbstractType<unknown> | null
          const key = t ? (t._item?.parentSub ?? null) : null
          if (key) changed.add(key)
        }
      }
      for (const id of removed) {
        if (this.shapes.has(id)) {
          removed.delete(id)
          changed.add(id)
        } else this.forget(id)
      }
      for (const id of changed) this.refresh(id)
      for (const fn of this.listeners) fn(changed, removed)
    })
    this.pages.observeDeep(() => {
      for (const fn of this.pageListeners) fn()
    })
  }

  onShapes(fn: (changed: Set<string>, removed: Set<string>) => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  onPages(fn: () => void): () => void {
    this.pageListeners.add(fn)
    return () => this.pageListeners.delete(fn)
  }

  newId(): string {
    counter += 1
    return `${this.doc.clientID.toString(36)}.${counter.toString(36)}`
  }

  // -- pages ---------------------------------------------------------------------------

  pageList(): PageView[] {
    const list: PageView[] = []
    this.pages.forEach((m, id) => list.push({ id, o: String(m.get('o') ?? 'a0') }))
    if (!this.pages.has(FIRST_PAGE)) list.push({ id: FIRST_PAGE, o: 'a0' })
    list.sort((a, b) => (a.o < b.o ? -1 : a.o > b.o ? 1 : a.id < b.id ? -1 : 1))
    return list
  }

  addPage(after?: string): string {
    const list = this.pageList()
    const idx = after ? list.findIndex((p) => p.id === after) : list.length - 1
    const lo = idx >= 0 ? list[idx].o : null
    const hi = idx >= 0 && idx + 1 < list.length ? list[idx + 1].o : null
    const id = 'p' + this.newId()
    this.doc.transact(() => {
      if (!this.pages.has(FIRST_PAGE)) this.pages.set(FIRST_PAGE, pageMap('a0'))
      this.pages.set(id, pageMap(generateKeyBetween(lo, hi)))
    }, LOCAL)
    return id
  }

  // -- shapes --------------------------------------------------------------------------

  view(id: string): ShapeView | undefined {
    if (this.lazy.has(id)) this.decode(id)
    return this.views.get(id)
  }

  /** The page a shape is on, without decoding it. */
  pageOf(id: string): string | undefined {
    return this.views.get(id)?.pg ?? this.lazy.get(id)
  }

  /**
   * The page in view: its shapes are decoded as they arrive, the others' when asked for.
   * Shapes it already holds are not decoded here: the renderer decodes them a slice per
   * frame (`decodePage`), since a page of thousands of strokes would freeze the page for
   * a second if decoded in one go.
   */
  focus(pg: string): void {
    this.focused = pg
  }

  /**
   * Decodes shapes of page `pg` not decoded yet until `performance.now()` reaches
   * `until` (at least one); true once none is left.
   */
  decodePage(pg: string, until: number): boolean {
    if (!this.lazy.size) return true
    const ids = this.byPage.get(pg)
    if (!ids) return true
    let decoded = 0
    for (const id of ids) {
      if (!this.lazy.has(id)) continue
      if (decoded > 0 && (decoded & 7) === 0 && performance.now() >= until) return false
      this.decode(id)
      decoded += 1
    }
    return true
  }

  private decode(id: string): void {
    this.lazy.delete(id)
    this.refresh(id, true)
  }

  /** Shapes of a page in paint order (z, then id), cached until the page changes. */
  pageShapes(pg: string): ShapeView[] {
    if (this.lazy.size) {
      for (const id of this.byPage.get(pg) ?? []) if (this.lazy.has(id)) this.decode(id)
    }
    let list = this.sorted.get(pg)
    if (!list) {
      list = []
      for (const id of this.byPage.get(pg) ?? []) {
        const v = this.views.get(id)
        if (v) list.push(v)
      }
      list.sort(paintOrder)
      this.sorted.set(pg, list)
    }
    return list
  }

  count(): number {
    return this.views.size + this.lazy.size
  }

  nextZ(): string {
    const z = generateKeyBetween(this.maxZ, null)
    this.maxZ = z
    return z
  }

  /**
   * Creates a shape from plain fields; `pts` (ink) becomes an append-only Y.Array of
   * packed chunks. Fields equal to what readers assume when absent are not written.
   */
  create(fields: Record<string, unknown>, pts?: number[], id = this.newId()): string {
    const m = new Y.Map<unknown>()
    for (const [k, v] of Object.entries(fields)) if (v !== undefined && DEFAULTS[k] !== v) m.set(k, v)
    if (pts) {
      const arr = new Y.Array<unknown>()
      if (pts.length) arr.push([packInts(pts)])
      m.set('pts', arr)
    }
    this.shapes.set(id, m)
    return id
  }

  appendInk(id: string, ints: number[], done: boolean): void {
    const m = this.shapes.get(id)
    if (!m) return
    const arr = m.get('pts') as Y.Array<unknown> | undefined
    if (ints.length && arr) arr.push([packInts(ints)])
    if (done) m.set('done', true)
  }

  remove(ids: Iterable<string>): void {
    for (const id of ids) this.shapes.delete(id)
  }

  move(id: string, dx: number, dy: number): void {
    const m = this.shapes.get(id)
    if (!m) return
    m.set('x', Math.round(Number(m.get('x') ?? 0) + dx) | 0)
    m.set('y', Math.round(Number(m.get('y') ?? 0) + dy) | 0)
  }

  /** Every shape of a page, for "clear page" (one undoable transaction by the caller). */
  idsOnPage(pg: string): string[] {
    return [...(this.byPage.get(pg) ?? [])]
  }

  private forget(id: string): void {
    const lazyPage = this.lazy.get(id)
    if (lazyPage !== undefined) {
      this.lazy.delete(id)
      this.byPage.get(lazyPage)?.delete(id)
      this.sorted.delete(lazyPage)
    }
    const v = this.views.get(id)
    this.unfinished.delete(id)
    if (!v) return
    this.views.delete(id)
    this.byPage.get(v.pg)?.delete(id)
    this.sorted.delete(v.pg)
  }

  private refresh(id: string, now = false): void {
    const m = this.shapes.get(id)
    if (!(m instanceof Y.Map)) {
      this.forget(id)
      return
    }
    const prev = this.views.get(id)
    if (!now && (!prev || this.lazy.has(id)) && TYPES.has(str(m.get('t')))) {
      const pg = str(m.get('pg'), FIRST_PAGE)
      if (pg !== this.focused) {
        // Another page's shape: remember where it is, decode it when that page shows.
        const was = this.lazy.get(id)
        if (was !== undefined && was !== pg) this.forget(id)
        this.lazy.set(id, pg)
        let set = this.byPage.get(pg)
        if (!set) this.byPage.set(pg, (set = new Set()))
        set.add(id)
        this.sorted.delete(pg)
        const z = str(m.get('z'), 'a0')
        if (this.maxZ === null || z > this.maxZ) this.maxZ = z
        return
      }
      this.lazy.delete(id)
    }
    const v = toView(id, m, prev ? prev.rev + 1 : 0)
    if (!v) {
      this.forget(id)
      return
    }
    if (prev && prev.pg !== v.pg) this.forget(id)
    if (prev && (prev.z !== v.z || prev.pg !== v.pg)) this.sorted.delete(v.pg)
    this.views.set(id, v)
    if (v.done) this.unfinished.delete(id)
    else this.unfinished.add(id)
    let set = this.byPage.get(v.pg)
    if (!set) this.byPage.set(v.pg, (set = new Set()))
    if (!set.has(id)) {
      set.add(id)
      // The common case, a new stroke on top, extends the cached order instead of
      // re-sorting thousands of shapes.
      const list = this.sorted.get(v.pg)
      const last = list?.[list.length - 1]
      if (list && (!last || paintOrder(last, v) < 0)) list.push(v)
      else this.sorted.delete(v.pg)
    } else if (prev) {
      // Same page, same z: swap the view object in the cached order in place.
      const list = this.sorted.get(v.pg)
      if (list) {
        const i = list.indexOf(prev)
        if (i >= 0) list[i] = v
        else this.sorted.delete(v.pg)
      }
    }
    if (this.maxZ === null || v.z > this.maxZ) this.maxZ = v.z
  }
}

function pageMap(o: string): Y.Map<unknown> {
  const m = new Y.Map<unknown>()
  m.set('o', o)
  return m
}

function paintOrder(a: ShapeView, b: ShapeView): number {
  if (a.z !== b.z) return a.z < b.z ? -1 : 1
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/** What a shape's field means when it is absent (so `create` leaves it out). */
const DEFAULT_COLOUR = '#1f2933'
const DEFAULT_WIDTH = 4
const DEFAULTS: Record<string, unknown> = { pg: FIRST_PAGE, c: DEFAULT_COLOUR, w: DEFAULT_WIDTH }

const num = (v: unknown, d = 0): number => (typeof v === 'number' && Number.isFinite(v) ? v : d)
const str = (v: unknown, d = ''): string => (typeof v === 'string' ? v : d)
const TYPES = new Set(['p', 'h', 'r', 'e', 'l', 'a', 'x'])

function toView(id: string, m: Y.Map<unknown>, rev: number): ShapeView | null {
  const t = str(m.get('t')) as ShapeType
  if (!TYPES.has(t)) return null
  const w = Math.max(1, num(m.get('w'), DEFAULT_WIDTH))
  const v: ShapeView = {
    id,
    t,
    pg: str(m.get('pg'), FIRST_PAGE),
    z: str(m.get('z'), 'a0'),
    a: str(m.get('a')),
    c: str(m.get('c'), DEFAULT_COLOUR),
    w,
    x: num(m.get('x')),
    y: num(m.get('y')),
    done: m.get('done') === true,
    box: { minX: 0, minY: 0, maxX: 0, maxY: 0 },
    rev,
  }
  if (t === 'p' || t === 'h') {
    const arr = m.get('pts')
    const data = arr instanceof Y.Array ? inkInts(arr.toArray()) : []
    v.pressure = m.get('pr') === 1
    v.points = decodeInk(v.x, v.y, data, v.pressure ? 3 : 2)
    v.box = boundsOf(v.points, w)
  } else if (t === 'x') {
    v.tx = str(m.get('tx'))
    v.fs = Math.max(8, num(m.get('fs'), 32))
    const lines = v.tx.split('\n')
    const width = Math.max(...lines.map((l) => l.length)) * v.fs * 0.6
    v.box = { minX: v.x, minY: v.y, maxX: v.x + width, maxY: v.y + lines.length * v.fs * 1.25 }
    v.done = true
  } else {
    v.ex = num(m.get('ex'))
    v.ey = num(m.get('ey'))
    const pad = w + (t === 'a' ? w * 4 : 0)
    v.box = {
      minX: Math.min(v.x, v.x + v.ex) - pad,
      minY: Math.min(v.y, v.y + v.ey) - pad,
      maxX: Math.max(v.x, v.x + v.ex) + pad,
      maxY: Math.max(v.y, v.y + v.ey) + pad,
    }
    v.done = true
  }
  return v
}
