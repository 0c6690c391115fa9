// Pointer input and tools: ink, shapes, eraser, select/move, text, laser, pan and pinch.

import * as Y from 'yjs'
import { type Board, INK_TYPES, LOCAL, type ShapeType, type ShapeView } from './board'
import { InkEncoder, type Point, type Box, boxesOverlap } from './ink'
import type { Renderer, View } from './render'
import type { CursorPublisher } from './presence'
import { hitShape } from './shapes'

export type Tool = 'select' | 'pen' | 'hl' | 'eraser' | 'r' | 'e' | 'l' | 'a' | 'text' | 'laser'
export const DRAWING_TOOLS: ReadonlySet<Tool> = new Set(['select', 'pen', 'hl', 'eraser', 'r', 'e', 'l', 'a', 'text'])

const FLUSH_MS = 100
/** Integer page units; `| 0` also maps -0 to 0, which Yjs would store as a float. */
const int = (v: number): number => Math.round(v) | 0
const SLOW_FLUSH_MS = 250

interface InkGesture {
  kind: 'ink'
  pointerId: number
  id: string | null
  key: string
  t: 'p' | 'h'
  encoder: InkEncoder
  buffer: number[]
  points: Point[]
  timer: number
  pressure: boolean
  origin: { x: number; y: number }
  touch: boolean
}

type Gesture =
  | InkGesture
  | { kind: 'shape'; pointerId: number; t: ShapeType; x: number; y: number; ex: number; ey: number }
  | { kind: 'erase'; pointerId: number }
  | { kind: 'laser'; pointerId: number }
  | { kind: 'move'; pointerId: number; ids: string[]; sx: number; sy: number; dx: number; dy: number }
  | { kind: 'marquee'; pointerId: number; sx: number; sy: number; box: Box }
  | { kind: 'pan'; pointerId: number; sx: number; sy: number; view: View }
  | { kind: 'pinch'; ids: [number, number]; d0: number; mid0: { x: number; y: number }; view: View }

export interface ToolHost {
  board: Board
  renderer: Renderer
  cursor: CursorPublisher
  undo: Y.UndoManager
  userId: string
  colour(): string
  width(): number
  canDraw(): boolean
  page(): string
  /** A slow link (high RTT, bytes queued) gets bigger ink batches. */
  slowLink(): boolean
  onViewChanged(settled: boolean): void
  onEdit(): void
}

export class Tools {
  tool: Tool = 'pen'
  penSeen = false
  private pointers = new Map<number, { x: number; y: number; type: string }>()
  private gesture: Gesture | null = null
  selected: string[] = []
  private el: HTMLElement

  constructor(private host: ToolHost) {
    this.el = host.renderer.liveCanvas
    const el = this.el
    el.addEventListener('pointerdown', (e) => this.down(e))
    el.addEventListener('pointermove', (e) => this.move(e))
    el.addEventListener('pointerup', (e) => this.up(e, false))
    el.addEventListener('pointercancel', (e) => this.up(e, true))
    el.addEventListener('pointerleave', (e) => {
      if (e.pointerType === 'mouse' && !this.gesture) host.cursor.hide()
    })
    el.addEventListener('wheel', (e) => this.wheel(e), { passive: false })
    el.addEventListener('contextmenu', (e) => e.preventDefault())
  }

  setTool(t: Tool): void {
    this.tool = t
    this.selected = []
    this.host.renderer.selection = null
    this.host.renderer.invalidate()
    this.el.dataset.tool = t
  }

  private local(e: PointerEvent): { x: number; y: number } {
    const r = this.el.getBoundingClientRect()
    return { x: e.clientX - r.left, y: e.clientY - r.top }
  }

  private down(e: PointerEvent): void {
    e.preventDefault()
    if (e.pointerType === 'pen') this.penSeen = true
    const pos = this.local(e)
    this.pointers.set(e.pointerId, { ...pos, type: e.pointerType })
    try {
      this.el.setPointerCapture(e.pointerId)
    } catch {
      /* synthetic events have no capturable pointer */
    }
    const touches = [...this.pointers.entries()].filter(([, p]) => p.type === 'touch')
    if (e.pointerType === 'touch' && touches.length === 2) {
      // A second finger: this is a pinch or a two-finger pan, never ink.
      this.cancelGesture()
      const [[ia, a], [ib, b]] = touches
      this.gesture = {
        kind: 'pinch',
        ids: [ia, ib],
        d0: Math.hypot(a.x - b.x, a.y - b.y) || 1,
        mid0: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 },
        view: { ...this.host.renderer.view },
      }
      return
    }
    if (this.gesture) return
    const panOnly =
      e.button === 1 ||
      (e.pointerType === 'mouse' && e.button === 2) ||
      // Pen seen: fingers (and palms) pan instead of drawing.
      (e.pointerType === 'touch' && this.penSeen) ||
      (!this.host.canDraw() && this.tool !== 'laser')
    if (panOnly) {
      this.gesture = { kind: 'pan', pointerId: e.pointerId, sx: pos.x, sy: pos.y, view: { ...this.host.renderer.view } }
      return
    }
    const p = this.host.renderer.toPage(pos.x, pos.y)
    this.host.undo.stopCapturing()
    switch (this.tool) {
      case 'pen':
      case 'hl':
        this.startInk(e, p)
        break
      case 'r':
      case 'e':
      case 'l':
      case 'a':
        this.gesture = { kind: 'shape', pointerId: e.pointerId, t: this.tool, x: p.x, y: p.y, ex: 0, ey: 0 }
        break
      case 'eraser':
        this.gesture = { kind: 'erase', pointerId: e.pointerId }
        this.eraseAt(p.x, p.y)
        break
      case 'laser':
        this.gesture = { kind: 'laser', pointerId: e.pointerId }
        this.laserAt(p.x, p.y)
        break
      case 'select':
        this.startSelect(e.pointerId, p)
        break
      case 'text':
        this.startText(pos, p)
        break
    }
  }

  private move(e: PointerEvent): void {
    const pos = this.local(e)
    if (this.pointers.has(e.pointerId)) this.pointers.set(e.pointerId, { ...pos, type: e.pointerType })
    const g = this.gesture
    const r = this.host.renderer
    if (!g) {
      if (e.pointerType !== 'touch') {
        const p = r.toPage(pos.x, pos.y)
        this.host.cursor.update({ g: this.host.page(), x: int(p.x), y: int(p.y) })
      }
      return
    }
    if (g.kind === 'pinch') {
      const a = this.pointers.get(g.ids[0])
      const b = this.pointers.get(g.ids[1])
      if (!a || !b) return
      const d = Math.hypot(a.x - b.x, a.y - b.y) || 1
      const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 }
      const scale = g.view.scale * (d / g.d0)
      const px = g.mid0.x / g.view.scale + g.view.ox
      const py = g.mid0.y / g.view.scale + g.view.oy
      r.setView({ scale, ox: px - mid.x / scale, oy: py - mid.y / scale }, false)
      this.host.onViewChanged(false)
      return
    }
    if ('pointerId' in g && g.pointerId !== e.pointerId) return
    if (g.kind === 'pan') {
      r.setView({ scale: g.view.scale, ox: g.view.ox - (pos.x - g.sx) / g.view.scale, oy: g.view.oy - (pos.y - g.sy) / g.view.scale }, false)
      this.host.onViewChanged(false)
      return
    }
    const events = typeof e.getCoalescedEvents === 'function' ? e.getCoalescedEvents() : []
    const samples = events.length ? events : [e]
    const rect = this.el.getBoundingClientRect()
    for (const s of samples) {
      const p = r.toPage(s.clientX - rect.left, s.clientY - rect.top)
      this.moveSample(g, p, s)
    }
  }

  private moveSample(g: Gesture, p: { x: number; y: number }, e: PointerEvent): void {
    const r = this.host.renderer
    switch (g.kind) {
      case 'ink': {
        const pr = g.pressure ? e.pressure : 0.5
        const ints = g.encoder.push(p.x - g.origin.x, p.y - g.origin.y, pr)
        if (!ints) return
        g.buffer.push(...ints)
        g.points.push({ x: p.x, y: p.y, p: pr })
        r.invalidate()
        return
      }
      case 'shape':
        g.ex = p.x - g.x
        g.ey = p.y - g.y
        r.previews = [{ shape: this.shapeFromGesture(g), alpha: 1 }]
        r.invalidate()
        this.host.cursor.update({
          g: this.host.page(),
          x: int(p.x),
          y: int(p.y),
          s: [g.t, int(g.x), int(g.y), int(g.ex), int(g.ey), this.host.width(), this.host.colour()],
        })
        return
      case 'erase':
        this.eraseAt(p.x, p.y)
        return
      case 'laser':
        this.laserAt(p.x, p.y)
        return
      case 'move': {
        g.dx = p.x - g.sx
        g.dy = p.y - g.sy
        this.showMovePreview(g.ids, g.dx, g.dy)
        this.host.cursor.update({
          g: this.host.page(),
          x: int(p.x),
          y: int(p.y),
          m: [int(g.dx), int(g.dy), ...g.ids.slice(0, 50)],
        })
        return
      }
      case 'marquee': {
        g.box = { minX: Math.min(g.sx, p.x), minY: Math.min(g.sy, p.y), maxX: Math.max(g.sx, p.x), maxY: Math.max(g.sy, p.y) }
        r.selection = g.box
        r.invalidate()
        return
      }
    }
  }

  private up(e: PointerEvent, cancelled: boolean): void {
    this.pointers.delete(e.pointerId)
    const g = this.gesture
    if (!g) return
    if (g.kind === 'pinch') {
      if (g.ids.includes(e.pointerId)) {
        this.gesture = null
        this.host.renderer.setView(this.host.renderer.view, true)
        this.host.onViewChanged(true)
      }
      return
    }
    if (g.pointerId !== e.pointerId) return
    this.gesture = null
    const r = this.host.renderer
    switch (g.kind) {
      case 'pan':
        r.setView(r.view, true)
        this.host.onViewChanged(true)
        break
      case 'ink':
        if (cancelled) this.dropInk(g)
        else this.finishInk(g)
        break
      case 'shape': {
        r.previews = []
        this.host.cursor.update({ s: undefined })
        if (!cancelled && Math.hypot(g.ex, g.ey) * r.view.scale > 4) {
          const s = this.shapeFromGesture(g)
          this.transact(() => {
            this.host.board.create({ t: s.t, pg: s.pg, z: this.host.board.nextZ(), a: s.a, c: s.c, w: s.w, x: s.x, y: s.y, ex: s.ex, ey: s.ey })
          })
        }
        r.invalidate()
        break
      }
      case 'laser':
        this.host.cursor.update({ l: undefined })
        break
      case 'move': {
        r.hidden.clear()
        r.previews = []
        this.host.cursor.update({ m: undefined })
        const dx = int(g.dx)
        const dy = int(g.dy)
        if (!cancelled && (dx || dy)) {
          this.transact(() => {
            for (const id of g.ids) this.host.board.move(id, dx, dy)
          })
        }
        this.updateSelectionBox()
        r.invalidate(true)
        break
      }
      case 'marquee': {
        const page = this.host.page()
        this.selected = this.host.board
          .pageShapes(page)
          .filter((s) => s.box.minX >= g.box.minX && s.box.maxX <= g.box.maxX && s.box.minY >= g.box.minY && s.box.maxY <= g.box.maxY)
          .map((s) => s.id)
        this.updateSelectionBox()
        r.invalidate()
        break
      }
      case 'erase':
        break
    }
  }

  private wheel(e: WheelEvent): void {
    e.preventDefault()
    const r = this.host.renderer
    const v = r.view
    const pos = { x: e.offsetX, y: e.offsetY }
    if (e.ctrlKey || e.metaKey) {
      const scale = v.scale * Math.exp(-e.deltaY * 0.01)
      const p = r.toPage(pos.x, pos.y)
      r.setView({ scale, ox: p.x - pos.x / scale, oy: p.y - pos.y / scale }, false)
    } else {
      r.setView({ scale: v.scale, ox: v.ox + e.deltaX / v.scale, oy: v.oy + e.deltaY / v.scale }, false)
    }
    this.host.onViewChanged(false)
    clearTimeout(this.wheelTimer)
    this.wheelTimer = window.setTimeout(() => this.host.onViewChanged(true), 200)
  }

  private wheelTimer = 0

  // -- ink -------------------------------------------------------------------------------

  private startInk(e: PointerEvent, p: { x: number; y: number }): void {
    const pressure = e.pointerType === 'pen'
    const origin = { x: int(p.x), y: int(p.y) }
    const encoder = new InkEncoder(0, 0, pressure)
    const pr = pressure ? e.pressure || 0.5 : 0.5
    const first = encoder.push(p.x - origin.x, p.y - origin.y, pr, true)!
    const g: InkGesture = {
      kind: 'ink',
      pointerId: e.pointerId,
      id: null,
      key: this.host.board.newId(),
      t: this.tool === 'hl' ? 'h' : 'p',
      encoder,
      buffer: first,
      points: [{ x: p.x, y: p.y, p: pr }],
      timer: 0,
      pressure,
      origin,
      touch: e.pointerType === 'touch',
    }
    this.gesture = g
    const w = this.host.width() * (g.t === 'h' ? 4 : 1)
    this.host.renderer.local = { t: g.t, c: this.host.colour(), w, points: g.points, pressure }
    this.host.renderer.invalidate()
    // Nothing is written for the first batch: a second finger within it makes this a
    // pinch and leaves no trace in the document.
    g.timer = window.setTimeout(() => this.flushInk(g, false), this.flushMs())
  }

  private flushMs(): number {
    return this.host.slowLink() ? SLOW_FLUSH_MS : FLUSH_MS
  }

  private flushInk(g: InkGesture, done: boolean): void {
    clearTimeout(g.timer)
    const board = this.host.board
    const ints = g.buffer
    g.buffer = []
    if (g.id === null) {
      const w = this.host.width() * (g.t === 'h' ? 4 : 1)
      this.transact(() => {
        g.id = board.create(
          {
            t: g.t,
            pg: this.host.page(),
            z: board.nextZ(),
            a: this.host.userId,
            c: this.host.colour(),
            w,
            x: g.origin.x,
            y: g.origin.y,
            pr: g.pressure ? 1 : undefined,
            done: done ? true : undefined,
          },
          ints,
          g.key,
        )
      }, g.key)
    } else if (ints.length || done) {
      const id = g.id
      this.transact(() => board.appendInk(id, ints, done), id)
    }
    if (!done && this.gesture === g) g.timer = window.setTimeout(() => this.flushInk(g, false), this.flushMs())
  }

  private finishInk(g: InkGesture): void {
    this.flushInk(g, true)
    this.host.renderer.local = null
    this.host.renderer.invalidate()
    const last = g.points[g.points.length - 1]
    this.host.cursor.update({ g: this.host.page(), x: int(last.x), y: int(last.y) })
  }

  private dropInk(g: InkGesture): void {
    clearTimeout(g.timer)
    if (g.id !== null) {
      const id = g.id
      this.transact(() => this.host.board.remove([id]), id)
    }
    this.host.renderer.local = null
    this.host.renderer.invalidate()
  }

  private cancelGesture(): void {
    const g = this.gesture
    this.gesture = null
    if (!g) return
    if (g.kind === 'ink') this.dropInk(g)
    if (g.kind === 'shape' || g.kind === 'move') {
      this.host.renderer.previews = []
      this.host.renderer.hidden.clear()
      this.host.cursor.update({ s: undefined, m: undefined })
      this.host.renderer.invalidate(true)
    }
  }

  // -- other tools -----------------------------------------------------------------------

  private transact(fn: () => void, key?: string): void {
    this.host.board.doc.transact((tr) => {
      if (key) tr.meta.set('key', key)
      fn()
    }, LOCAL)
    this.host.onEdit()
  }

  private shapeFromGesture(g: { t: ShapeType; x: number; y: number; ex: number; ey: number }): ShapeView {
    const w = this.host.width()
    const x = int(g.x)
    const y = int(g.y)
    const ex = int(g.ex)
    const ey = int(g.ey)
    return {
      id: '_preview',
      t: g.t,
      pg: this.host.page(),
      z: '',
      a: this.host.userId,
      c: this.host.colour(),
      w,
      x,
      y,
      ex,
      ey,
      done: true,
      box: { minX: Math.min(x, x + ex) - w * 5, minY: Math.min(y, y + ey) - w * 5, maxX: Math.max(x, x + ex) + w * 5, maxY: Math.max(y, y + ey) + w * 5 },
      rev: Math.random(),
    }
  }

  private eraseAt(x: number, y: number): void {
    const tol = 8 / this.host.renderer.view.scale
    const hits = this.hitAll(x, y, tol)
    if (hits.length) this.transact(() => this.host.board.remove(hits.map((s) => s.id)))
  }

  private hitAll(x: number, y: number, tol: number): ShapeView[] {
    const probe: Box = { minX: x - tol, minY: y - tol, maxX: x + tol, maxY: y + tol }
    return this.host.board.pageShapes(this.host.page()).filter((s) => boxesOverlap(s.box, probe) && hitShape(s, x, y, tol))
  }

  private laserAt(x: number, y: number): void {
    const r = this.host.renderer
    let trail = r.lasers.get('me')
    if (!trail) r.lasers.set('me', (trail = { c: '#ef4444', points: [] }))
    trail.points.push({ x, y, at: performance.now() })
    r.invalidate()
    this.host.cursor.update({ g: this.host.page(), x: int(x), y: int(y), l: 1 })
  }

  private startSelect(pointerId: number, p: { x: number; y: number }): void {
    const tol = 6 / this.host.renderer.view.scale
    const box = this.host.renderer.selection
    const inSelection = box && this.selected.length && p.x >= box.minX && p.x <= box.maxX && p.y >= box.minY && p.y <= box.maxY
    if (!inSelection) {
      const hits = this.hitAll(p.x, p.y, tol)
      const top = hits[hits.length - 1]
      this.selected = top ? [top.id] : []
      this.updateSelectionBox()
    }
    if (this.selected.length) {
      this.gesture = { kind: 'move', pointerId, ids: [...this.selected], sx: p.x, sy: p.y, dx: 0, dy: 0 }
      for (const id of this.selected) this.host.renderer.hidden.add(id)
      this.showMovePreview(this.selected, 0, 0)
      this.host.renderer.invalidate(true)
    } else {
      this.gesture = { kind: 'marquee', pointerId, sx: p.x, sy: p.y, box: { minX: p.x, minY: p.y, maxX: p.x, maxY: p.y } }
    }
  }

  private showMovePreview(ids: string[], dx: number, dy: number): void {
    const r = this.host.renderer
    r.previews = ids
      .map((id) => this.host.board.view(id))
      .filter((v): v is ShapeView => !!v)
      .map((v) => ({ shape: shifted(v, dx, dy), alpha: 1 }))
    const b = this.selectionBox()
    r.selection = b ? { minX: b.minX + dx, minY: b.minY + dy, maxX: b.maxX + dx, maxY: b.maxY + dy } : null
    r.invalidate()
  }

  private selectionBox(): Box | null {
    const views = this.selected.map((id) => this.host.board.view(id)).filter((v): v is ShapeView => !!v)
    if (!views.length) return null
    return {
      minX: Math.min(...views.map((v) => v.box.minX)),
      minY: Math.min(...views.map((v) => v.box.minY)),
      maxX: Math.max(...views.map((v) => v.box.maxX)),
      maxY: Math.max(...views.map((v) => v.box.maxY)),
    }
  }

  updateSelectionBox(): void {
    this.selected = this.selected.filter((id) => this.host.board.view(id))
    this.host.renderer.selection = this.selectionBox()
    this.host.renderer.invalidate()
  }

  deleteSelection(): void {
    if (!this.selected.length) return
    const ids = this.selected
    this.host.undo.stopCapturing()
    this.transact(() => this.host.board.remove(ids))
    this.selected = []
    this.updateSelectionBox()
  }

  private startText(screen: { x: number; y: number }, p: { x: number; y: number }): void {
    const r = this.host.renderer
    const fs = Math.max(16, this.host.width() * 6)
    const box = document.createElement('textarea')
    box.className = 'text-entry'
    box.style.left = `${screen.x}px`
    box.style.top = `${screen.y}px`
    box.style.fontSize = `${fs * r.view.scale}px`
    box.style.color = this.host.colour()
    box.setAttribute('aria-label', 'Text')
    r.root.append(box)
    let committed = false
    const commit = () => {
      if (committed) return
      committed = true
      const text = box.value.replace(/\s+$/, '')
      box.remove()
      if (!text) return
      this.host.undo.stopCapturing()
      this.transact(() => {
        this.host.board.create({ t: 'x', pg: this.host.page(), z: this.host.board.nextZ(), a: this.host.userId, c: this.host.colour(), w: 1, x: int(p.x), y: int(p.y), tx: text.slice(0, 2000), fs })
      })
    }
    box.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey) {
        ev.preventDefault()
        commit()
      } else if (ev.key === 'Escape') {
        committed = true
        box.remove()
      }
    })
    box.addEventListener('blur', commit)
    setTimeout(() => box.focus(), 0)
  }
}

function shifted(v: ShapeView, dx: number, dy: number): ShapeView {
  if (!dx && !dy) return { ...v, id: '_m' + v.id }
  return {
    ...v,
    id: '_m' + v.id,
    x: v.x + dx,
    y: v.y + dy,
    points: v.points?.map((p) => ({ x: p.x + dx, y: p.y + dy, p: p.p })),
    box: { minX: v.box.minX + dx, minY: v.box.minY + dy, maxX: v.box.maxX + dx, maxY: v.box.maxY + dy },
    rev: Math.random(),
  }
}

export { INK_TYPES }
