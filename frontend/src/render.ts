// Canvas rendering for large boards on slow phones.
//
// * Static layer: finished shapes of the current page, drawn once per view from a cached
//   Path2D per shape (keyed on the shape's revision), culled to the visible area. A new
//   stroke that lands on top is painted incrementally; anything else marks the layer
//   dirty. While a gesture pans or zooms, the layer is moved with a CSS transform and
//   repainted only when the view settles.
// * Live layer: strokes being drawn (ours and others'), previews, laser trails and the
//   selection; small, repainted on the animation frame after a change.

import { type Board, type ShapeView, PAGE_H, PAGE_W } from './board'
import { type Box, type Point, boxesOverlap } from './ink'
import { HIGHLIGHT_ALPHA, inkOutline, outlinePath, shapePath } from './shapes'

export interface View {
  /** CSS px per page unit */
  scale: number
  /** page coordinates at the top-left corner of the screen */
  ox: number
  oy: number
}

export interface LiveStroke {
  t: 'p' | 'h'
  c: string
  w: number
  points: Point[]
  pressure: boolean
}

export interface Preview {
  shape: ShapeView
  alpha: number
}

export interface LaserTrail {
  c: string
  points: Array<{ x: number; y: number; at: number }>
}

const LASER_FADE_MS = 900
/** Pages with more visible shapes than this are repainted in slices. */
const DIRECT_PAINT_MAX = 600
const SLICE_MS = 8
/**
 * Decoding a page's strokes when it is first shown: this much per frame (3,000 strokes
 * take 100-150 ms at 4x CPU, so a few frames; painting them takes seconds, sliced).
 */
const DECODE_MS = 32
/**
 * New strokes on top beyond this many are painted in slices too, in frames: painted in
 * the document's observer, the ~20 strokes of a stored record (or ~40 of a first-sync
 * slice) made the task applying it 100-300 ms at 4x CPU (their outlines, ~1 ms each
 * unloaded). A stroke someone finishes is painted at once.
 */
const APPEND_AT_ONCE_MAX = 4
/**
 * Outlines not yet built (perfect-freehand, then Path2D) cost about a millisecond each at
 * 4x CPU; a repaint needing more than this many is sliced even on a small page.
 */
const UNCACHED_AT_ONCE_MAX = 48

interface PaintJob {
  view: View
  page: string
  list: ShapeView[]
  next: number
  ctx: CanvasRenderingContext2D
  ids: Set<string>
  topZ: string
  direct: boolean
}

function paintOrderOf(a: ShapeView, b: ShapeView): number {
  return a.z < b.z ? -1 : a.z > b.z ? 1 : a.id < b.id ? -1 : 1
}

export class Renderer {
  readonly root: HTMLElement
  readonly staticCanvas: HTMLCanvasElement
  readonly liveCanvas: HTMLCanvasElement
  private sctxMade: CanvasRenderingContext2D | null = null
  private lctxMade: CanvasRenderingContext2D | null = null
  view: View = { scale: 1, ox: 0, oy: 0 }
  page = ''
  private rendered: View | null = null
  private renderedPage = ''
  private renderedTopZ = ''
  private staticDirty = true
  private liveDirty = true
  private settleTimer = 0
  private frame = 0
  private paths = new Map<string, { rev: number; path: Path2D; fill: boolean }>()
  private width = 0
  private height = 0
  private dpr = 1
  /** Shapes drawn on the live layer instead (being moved by us). */
  hidden = new Set<string>()
  local: LiveStroke | null = null
  previews: Preview[] = []
  /** Others' drags and shapes in progress, from awareness. */
  remotePreviews: Preview[] = []
  selection: Box | null = null
  lasers = new Map<string, LaserTrail>()
  /** Frame callback for the benchmark: time spent painting, in ms. */
  onFrame: ((paintMs: number) => void) | null = null
  staticPaints = 0

  constructor(
    root: HTMLElement,
    private board: Board,
  ) {
    this.root = root
    this.staticCanvas = makeCanvas('layer-static')
    this.liveCanvas = makeCanvas('layer-live')
    root.append(this.staticCanvas, this.liveCanvas)
    // Sized by the observer's first call, made after the frame's layout: measuring here
    // would force the page's whole first layout into the board's set-up task (80-100 ms
    // at 4x CPU). Nothing is painted until then (see `paint`).
    new ResizeObserver(() => this.resize()).observe(root)
    board.onShapes((changed, removed) => this.onShapes(changed, removed))
  }

  // The contexts are made on first use, in a frame: making them (tens of milliseconds
  // at 4x CPU, the live one's low-latency mode most) is no part of setting the board up.
  private get sctx(): CanvasRenderingContext2D {
    return (this.sctxMade ??= this.staticCanvas.getContext('2d', { alpha: false })!)
  }

  private get lctx(): CanvasRenderingContext2D {
    return (this.lctxMade ??= (this.liveCanvas.getContext('2d', { desynchronized: true }) ??
      this.liveCanvas.getContext('2d'))!)
  }

  get size(): { width: number; height: number } {
    return { width: this.width, height: this.height }
  }

  /** The CSS-px scale at which the page width fills the screen (zoom 1). */
  fitScale(): number {
    return Math.max(0.05, this.width / PAGE_W)
  }

  toPage(sx: number, sy: number): { x: number; y: number } {
    return { x: sx / this.view.scale + this.view.ox, y: sy / this.view.scale + this.view.oy }
  }

  visibleBox(): Box {
    const v = this.view
    return { minX: v.ox, minY: v.oy, maxX: v.ox + this.width / v.scale, maxY: v.oy + this.height / v.scale }
  }

  setPage(pg: string): void {
    if (pg === this.page) return
    this.page = pg
    this.staticDirty = true
    this.liveDirty = true
    this.request()
  }

  /** Changes the view; `settling` false while a gesture is still moving. */
  setView(v: View, settling = true): void {
    // Before the first size there is nothing to clamp against; the first size fits the
    // page and calls onResize (which re-applies a followed view).
    if (!this.sized) return
    this.view = clampView(v, this.width, this.height)
    this.liveDirty = true
    clearTimeout(this.settleTimer)
    if (settling) {
      this.staticDirty = true
    } else {
      this.settleTimer = window.setTimeout(() => {
        this.staticDirty = true
        this.request()
      }, 120)
    }
    this.request()
  }

  fitPage(): void {
    // A portrait phone shows the page's full width and scrolls; wider screens show it all.
    const s =
      this.height > this.width
        ? this.width / PAGE_W
        : Math.min(this.width / PAGE_W, this.height / PAGE_H) * 0.98
    this.setView({
      scale: s,
      ox: -(this.width / s - PAGE_W) / 2,
      oy: this.height > this.width ? -8 / s : -(this.height / s - PAGE_H) / 2,
    })
  }

  invalidate(staticToo = false): void {
    this.liveDirty = true
    if (staticToo) this.staticDirty = true
    this.request()
  }

  private request(): void {
    if (!this.frame) this.frame = requestAnimationFrame((t) => this.paint(t))
  }

  /** False until the stage has been measured (the observer's first call). */
  sized = false
  /** Called after the stage changes size (and once it is first measured). */
  onResize: (() => void) | null = null

  private resize(): void {
    const rect = this.root.getBoundingClientRect()
    this.width = Math.max(1, Math.round(rect.width))
    this.height = Math.max(1, Math.round(rect.height))
    // Past 2 the pixels cost more than they show on a phone.
    this.dpr = Math.min(2, window.devicePixelRatio || 1)
    const w = Math.round(this.width * this.dpr)
    const h = Math.round(this.height * this.dpr)
    // The observer's first call repeats the constructor's: a canvas given its own size
    // again is cleared and reallocated (tens of milliseconds at 4x CPU), so skip it.
    if (this.sized && this.staticCanvas.width === w && this.staticCanvas.height === h) return
    this.sized = true
    for (const c of [this.staticCanvas, this.liveCanvas]) {
      c.width = w
      c.height = h
      c.style.width = `${this.width}px`
      c.style.height = `${this.height}px`
    }
    // A resized canvas is blank again.
    this.liveBlank = true
    if (this.rendered === null) this.fitPage()
    this.staticDirty = true
    this.liveDirty = true
    this.request()
    this.onResize?.()
  }

  private onShapes(changed: Set<string>, removed: Set<string>): void {
    let incremental: ShapeView[] | null = []
    for (const id of removed) {
      this.paths.delete(id)
      incremental = null
    }
    const job = this.job
    const ids = job ? job.ids : this.renderedIds
    const topZ = job ? job.topZ : this.renderedTopZ
    const visible = this.visibleBox()
    for (const id of changed) {
      // Shapes of other pages are not decoded for this (board.ts: visible page first).
      const v = this.board.pageOf(id) === this.page ? this.board.view(id) : undefined
      if (!v || v.pg !== this.page) {
        if (ids.has(id) || this.renderedIds.has(id)) incremental = null
        continue
      }
      this.liveDirty = true
      if (!v.done) continue
      if (ids.has(id) || this.renderedIds.has(id) || v.z < topZ || this.hidden.has(id)) incremental = null
      else if (!boxesOverlap(v.box, visible)) {
        // Off screen: nothing to paint (a settled pan or zoom repaints from the board).
        if (job) job.ids.add(id)
        else this.renderedIds.add(id)
      } else incremental?.push(v)
    }
    if (incremental === null) this.staticDirty = true
    else if (incremental.length && !this.staticDirty) {
      // New strokes on top: paint them over what is there (or queue them on the repaint).
      incremental.sort(paintOrderOf)
      if (job) {
        job.list.push(...incremental)
        for (const v of incremental) job.ids.add(v.id)
        job.topZ = incremental[incremental.length - 1].z
      } else if (this.rendered && incremental.length <= APPEND_AT_ONCE_MAX) {
        this.applyTransform(this.sctx, this.rendered)
        for (const v of incremental) {
          this.drawShape(this.sctx, v)
          this.renderedIds.add(v.id)
        }
        this.renderedTopZ = incremental[incremental.length - 1].z
      } else if (this.rendered) {
        // Many strokes at once (a slice of a board that is loading): painted over what is
        // there a few milliseconds per frame, so the page fills in without freezing.
        this.job = {
          view: this.rendered,
          page: this.renderedPage,
          list: incremental,
          next: 0,
          ctx: this.sctx,
          ids: this.renderedIds,
          topZ: incremental[incremental.length - 1].z,
          direct: true,
        }
        for (const v of incremental) this.renderedIds.add(v.id)
      }
    }
    this.request()
  }

  private renderedIds = new Set<string>()
  private job: PaintJob | null = null

  /** True while a sliced repaint of the static layer is under way. */
  get repainting(): boolean {
    return this.job !== null || this.staticDirty
  }

  private back: HTMLCanvasElement | null = null

  private paint(_t: number): void {
    this.frame = 0
    // Not measured yet: the observer's first call sizes the canvases and asks again.
    if (!this.sized) return
    const start = performance.now()
    if (this.staticDirty || this.page !== this.renderedPage) {
      // A page not shown yet may hold thousands of shapes not decoded (board.ts: visible
      // page first): they are decoded a slice per frame, on a blank page, then painted.
      if (this.board.decodePage(this.page, start + DECODE_MS)) this.startStatic()
      else {
        this.job = null
        this.blankPage()
        this.request()
      }
    }
    if (this.job) this.continueStatic(start)
    this.placeStatic()
    if (this.liveDirty) this.paintLive()
    if (this.lasers.size || this.job) this.request()
    this.onFrame?.(performance.now() - start)
  }

  private applyTransform(ctx: CanvasRenderingContext2D, v: View): void {
    const k = this.dpr * v.scale
    ctx.setTransform(k, 0, 0, k, -v.ox * k, -v.oy * k)
  }

  /**
   * Starts repainting the static layer for the current view. Small pages are painted at
   * once; large ones into a back buffer a few milliseconds per frame, so drawing and
   * panning stay smooth while the old bitmap (moved by CSS) stands in.
   */
  private startStatic(): void {
    this.staticPaints += 1
    this.staticDirty = false
    this.blanked = ''
    const v = { ...this.view }
    const box = this.visibleBox()
    const all = this.board.pageShapes(this.page)
    const list = all.filter((s) => s.done && !this.hidden.has(s.id) && boxesOverlap(s.box, box))
    let uncached = 0
    for (const s of list) if (this.paths.get(s.id)?.rev !== s.rev && ++uncached > UNCACHED_AT_ONCE_MAX) break
    const atOnce = list.length <= DIRECT_PAINT_MAX && uncached <= UNCACHED_AT_ONCE_MAX
    // Sliced repaints of a page already on screen go to a back buffer (the old bitmap
    // stands in); a page shown for the first time fills in on screen.
    const direct = atOnce || this.renderedPage !== this.page
    let target: HTMLCanvasElement = this.staticCanvas
    if (!direct) {
      if (!this.back) this.back = document.createElement('canvas')
      target = this.back
      if (target.width !== this.staticCanvas.width || target.height !== this.staticCanvas.height) {
        target.width = this.staticCanvas.width
        target.height = this.staticCanvas.height
      }
    }
    // willReadFrequently keeps the back buffer unaccelerated and undeferred: each slice is
    // rasterised when it is drawn, not all at once when the buffer is copied.
    const ctx = target === this.staticCanvas ? this.sctx : target.getContext('2d', { alpha: false, willReadFrequently: true })!
    ctx.setTransform(1, 0, 0, 1, 0, 0)
    ctx.fillStyle = '#e7e9ee'
    ctx.fillRect(0, 0, target.width, target.height)
    this.applyTransform(ctx, v)
    ctx.fillStyle = '#ffffff'
    ctx.fillRect(0, 0, PAGE_W, PAGE_H)
    this.job = {
      view: v,
      page: this.page,
      list,
      next: 0,
      ctx,
      ids: new Set(),
      topZ: all.length ? all[all.length - 1].z : '',
      direct,
    }
    if (direct) {
      this.rendered = v
      this.renderedPage = this.page
      this.staticCanvas.style.transform = ''
      // A page shown for the first time fills in on screen, slice by slice, when large.
      if (atOnce) this.continueStatic(Infinity)
    }
  }

  private continueStatic(frameStart: number): void {
    const job = this.job!
    const budget = frameStart + SLICE_MS
    const { list, ctx } = job
    this.applyTransform(ctx, job.view)
    while (job.next < list.length) {
      const s = list[job.next++]
      this.drawShape(ctx, s)
      job.ids.add(s.id)
      if (frameStart === Infinity) continue
      // Canvas records draw calls and rasterises them later; reading one pixel makes
      // the raster happen now, inside this slice, so the time check sees its cost. A
      // stroke's outline costs about a millisecond at 4x CPU: check after every few.
      if ((job.next & 3) === 0 || performance.now() > budget) {
        ctx.getImageData(0, 0, 1, 1)
        if (performance.now() > budget) return
      }
    }
    this.job = null
    if (!job.direct) {
      this.sctx.setTransform(1, 0, 0, 1, 0, 0)
      this.sctx.drawImage(job.ctx.canvas, 0, 0)
      this.rendered = job.view
      this.renderedPage = job.page
    }
    this.renderedIds = job.ids
    this.renderedTopZ = job.topZ
    this.liveDirty = true
  }

  private blanked = ''

  /** An empty page in the current view, while the page's shapes are being decoded. */
  private blankPage(): void {
    const v = this.view
    const key = `${this.page} ${v.scale} ${v.ox} ${v.oy}`
    if (key === this.blanked) return
    this.blanked = key
    const ctx = this.sctx
    ctx.setTransform(1, 0, 0, 1, 0, 0)
    ctx.fillStyle = '#e7e9ee'
    ctx.fillRect(0, 0, this.staticCanvas.width, this.staticCanvas.height)
    this.applyTransform(ctx, v)
    ctx.fillStyle = '#ffffff'
    ctx.fillRect(0, 0, PAGE_W, PAGE_H)
    this.staticCanvas.style.transform = ''
  }

  /** Moves the static bitmap to where the current view wants it, until it repaints. */
  private placeStatic(): void {
    const r = this.rendered
    if (!r) return
    const v = this.view
    if (this.renderedPage !== this.page) return
    if (r.scale === v.scale && r.ox === v.ox && r.oy === v.oy) {
      if (this.staticCanvas.style.transform) this.staticCanvas.style.transform = ''
      return
    }
    const k = v.scale / r.scale
    const tx = (r.ox - v.ox) * v.scale
    const ty = (r.oy - v.oy) * v.scale
    this.staticCanvas.style.transform = `translate(${tx}px, ${ty}px) scale(${k})`
  }

  drawShape(ctx: CanvasRenderingContext2D, s: ShapeView, dx = 0, dy = 0, alpha = 1): void {
    if (s.t === 'x') {
      ctx.globalAlpha = alpha
      ctx.fillStyle = s.c
      ctx.font = `${s.fs}px system-ui, sans-serif`
      ctx.textBaseline = 'top'
      const lines = (s.tx ?? '').split('\n')
      lines.forEach((line, i) => ctx.fillText(line, s.x + dx, s.y + dy + i * s.fs! * 1.25))
      ctx.globalAlpha = 1
      return
    }
    let entry = dx || dy ? undefined : this.paths.get(s.id)
    if (!entry || entry.rev !== s.rev) {
      const { d, fill } = shapePath(s, dx, dy)
      entry = { rev: s.rev, path: new Path2D(d), fill }
      if (!dx && !dy && s.done) this.paths.set(s.id, entry)
    }
    ctx.globalAlpha = (s.t === 'h' ? HIGHLIGHT_ALPHA : 1) * alpha
    if (entry.fill) {
      ctx.fillStyle = s.c
      ctx.fill(entry.path)
    } else {
      ctx.strokeStyle = s.c
      ctx.lineWidth = s.w
      ctx.lineCap = 'round'
      ctx.lineJoin = 'round'
      ctx.stroke(entry.path)
    }
    ctx.globalAlpha = 1
  }

  /** The live canvas holds nothing (never drawn since it was sized, or cleared). */
  private liveBlank = true

  private paintLive(): void {
    this.liveDirty = false
    // The first call on a canvas's context allocates its bitmap (30-50 ms at 4x CPU for
    // a phone's screen): a live layer with nothing on it is left untouched, so the
    // board's first paint allocates only the static layer, and this one waits for the
    // first stroke, preview, laser or selection.
    const idle =
      !this.board.unfinished.size &&
      !this.remotePreviews.length &&
      !this.previews.length &&
      !this.local?.points.length &&
      !this.selection &&
      !this.lasers.size
    if (idle && this.liveBlank) return
    this.liveBlank = idle
    const ctx = this.lctx
    ctx.setTransform(1, 0, 0, 1, 0, 0)
    ctx.clearRect(0, 0, this.liveCanvas.width, this.liveCanvas.height)
    this.applyTransform(ctx, this.view)
    const box = this.visibleBox()
    // Others' strokes still being written.
    for (const id of this.board.unfinished) {
      const s = this.board.view(id)
      if (!s || s.pg !== this.page || this.hidden.has(id) || !boxesOverlap(s.box, box)) continue
      this.drawShape(ctx, s)
    }
    for (const p of this.remotePreviews) this.drawShape(ctx, p.shape, 0, 0, p.alpha)
    for (const p of this.previews) this.drawShape(ctx, p.shape, 0, 0, p.alpha)
    const l = this.local
    if (l && l.points.length) {
      const d = outlinePath(inkOutline(l.points, l.w, l.pressure, l.t === 'h', false))
      ctx.globalAlpha = l.t === 'h' ? HIGHLIGHT_ALPHA : 1
      ctx.fillStyle = l.c
      ctx.fill(new Path2D(d))
      ctx.globalAlpha = 1
    }
    if (this.selection) {
      const b = this.selection
      ctx.strokeStyle = '#2563eb'
      ctx.lineWidth = 1.5 / this.view.scale
      ctx.setLineDash([6 / this.view.scale, 4 / this.view.scale])
      ctx.strokeRect(b.minX, b.minY, b.maxX - b.minX, b.maxY - b.minY)
      ctx.setLineDash([])
    }
    this.paintLasers(ctx)
  }

  private paintLasers(ctx: CanvasRenderingContext2D): void {
    const now = performance.now()
    for (const [key, trail] of this.lasers) {
      trail.points = trail.points.filter((p) => now - p.at < LASER_FADE_MS)
      if (!trail.points.length) {
        this.lasers.delete(key)
        continue
      }
      ctx.lineCap = 'round'
      ctx.lineJoin = 'round'
      for (let i = 1; i < trail.points.length; i++) {
        const a = trail.points[i - 1]
        const b = trail.points[i]
        ctx.globalAlpha = Math.max(0, 1 - (now - b.at) / LASER_FADE_MS)
        ctx.strokeStyle = trail.c
        ctx.lineWidth = 6 / this.view.scale
        ctx.beginPath()
        ctx.moveTo(a.x, a.y)
        ctx.lineTo(b.x, b.y)
        ctx.stroke()
      }
      const last = trail.points[trail.points.length - 1]
      ctx.globalAlpha = Math.max(0, 1 - (now - last.at) / LASER_FADE_MS)
      ctx.fillStyle = trail.c
      ctx.beginPath()
      ctx.arc(last.x, last.y, 7 / this.view.scale, 0, Math.PI * 2)
      ctx.fill()
      ctx.globalAlpha = 1
    }
    if (this.lasers.size) this.liveDirty = true
  }
}

function makeCanvas(cls: string): HTMLCanvasElement {
  const c = document.createElement('canvas')
  c.className = cls
  return c
}

/** Keeps at least a quarter of the page on screen and the zoom within sane bounds. */
export function clampView(v: View, width: number, height: number): View {
  const fit = Math.min(width / PAGE_W, height / PAGE_H)
  const scale = Math.min(Math.max(v.scale, fit * 0.25), fit * 16)
  const vw = width / scale
  const vh = height / scale
  const ox = Math.min(Math.max(v.ox, -vw * 0.75), PAGE_W - vw * 0.25)
  const oy = Math.min(Math.max(v.oy, -vh * 0.75), PAGE_H - vh * 0.25)
  return { scale, ox, oy }
}
