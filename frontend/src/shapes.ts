// Geometry shared by the canvas renderer, hit testing and SVG export.

import { getStroke } from 'perfect-freehand'
import type { ShapeView } from './board'
import { type Point, segmentDistance2 } from './ink'

export const HIGHLIGHT_ALPHA = 0.35

/** perfect-freehand options: pens use their pressure, fingers and mice a simulated one. */
export function inkOutline(points: readonly Point[], w: number, pressure: boolean, highlighter: boolean, done: boolean): number[][] {
  const input = points.map((p) => [p.x, p.y, p.p])
  return getStroke(input, {
    size: w,
    // A simulated pressure (finger, mouse) thins fast strokes; keep that mild.
    thinning: highlighter ? 0 : pressure ? 0.6 : 0.35,
    smoothing: 0.5,
    streamline: 0.5,
    simulatePressure: !pressure && !highlighter,
    last: done,
    start: { cap: true },
    end: { cap: true },
  })
}

/** An outline polygon as SVG path data with quadratic midpoints (smooth, compact). */
export function outlinePath(outline: number[][]): string {
  const n = outline.length
  if (n === 0) return ''
  if (n < 3) {
    const [x, y] = outline[0]
    return `M${r(x)} ${r(y)}h0.01Z`
  }
  let d = `M${r(outline[0][0])} ${r(outline[0][1])}Q`
  for (let i = 0; i < n; i++) {
    const [x0, y0] = outline[i]
    const [x1, y1] = outline[(i + 1) % n]
    d += `${r(x0)} ${r(y0)} ${r((x0 + x1) / 2)} ${r((y0 + y1) / 2)} `
  }
  return d + 'Z'
}

const r = (v: number) => Math.round(v * 10) / 10

/** SVG path data for a shape: filled outline for ink, stroked path for the others. */
export function shapePath(s: ShapeView, dx = 0, dy = 0): { d: string; fill: boolean } {
  const x = s.x + dx
  const y = s.y + dy
  switch (s.t) {
    case 'p':
    case 'h': {
      const pts = dx || dy ? s.points!.map((p) => ({ x: p.x + dx, y: p.y + dy, p: p.p })) : s.points!
      return { d: outlinePath(inkOutline(pts, s.w, !!s.pressure, s.t === 'h', s.done)), fill: true }
    }
    case 'r': {
      const x0 = Math.min(x, x + s.ex!)
      const y0 = Math.min(y, y + s.ey!)
      return { d: `M${x0} ${y0}h${Math.abs(s.ex!)}v${Math.abs(s.ey!)}h${-Math.abs(s.ex!)}Z`, fill: false }
    }
    case 'e': {
      const rx = Math.abs(s.ex!) / 2
      const ry = Math.abs(s.ey!) / 2
      const cx = x + s.ex! / 2
      const cy = y + s.ey! / 2
      return {
        d: `M${cx - rx} ${cy}a${rx} ${ry} 0 1 0 ${2 * rx} 0a${rx} ${ry} 0 1 0 ${-2 * rx} 0Z`,
        fill: false,
      }
    }
    case 'l':
      return { d: `M${x} ${y}L${x + s.ex!} ${y + s.ey!}`, fill: false }
    case 'a': {
      const x2 = x + s.ex!
      const y2 = y + s.ey!
      const ang = Math.atan2(s.ey!, s.ex!)
      const head = Math.max(12, s.w * 4)
      const ax = x2 - head * Math.cos(ang - 0.45)
      const ay = y2 - head * Math.sin(ang - 0.45)
      const bx = x2 - head * Math.cos(ang + 0.45)
      const by = y2 - head * Math.sin(ang + 0.45)
      return { d: `M${x} ${y}L${x2} ${y2}M${r(ax)} ${r(ay)}L${x2} ${y2}L${r(bx)} ${r(by)}`, fill: false }
    }
    default:
      return { d: '', fill: false }
  }
}

/** Is page point (px, py) within `tol` page units of the shape? */
export function hitShape(s: ShapeView, px: number, py: number, tol: number): boolean {
  const b = s.box
  if (px < b.minX - tol || px > b.maxX + tol || py < b.minY - tol || py > b.maxY + tol) return false
  if (s.t === 'x') return true
  const lim = (s.w / 2 + tol) ** 2
  const segs = outlineSegments(s)
  for (let i = 0; i + 3 < segs.length; i += 4) {
    if (segmentDistance2(px, py, segs[i], segs[i + 1], segs[i + 2], segs[i + 3]) <= lim) return true
  }
  return false
}

/** The shape as line segments [ax, ay, bx, by, ...] for hit testing. */
function outlineSegments(s: ShapeView): number[] {
  const out: number[] = []
  const add = (ax: number, ay: number, bx: number, by: number) => out.push(ax, ay, bx, by)
  if (s.points) {
    const p = s.points
    if (p.length === 1) add(p[0].x, p[0].y, p[0].x, p[0].y)
    for (let i = 1; i < p.length; i++) add(p[i - 1].x, p[i - 1].y, p[i].x, p[i].y)
    return out
  }
  const x = s.x
  const y = s.y
  const ex = s.ex ?? 0
  const ey = s.ey ?? 0
  if (s.t === 'r') {
    add(x, y, x + ex, y)
    add(x + ex, y, x + ex, y + ey)
    add(x + ex, y + ey, x, y + ey)
    add(x, y + ey, x, y)
  } else if (s.t === 'e') {
    const cx = x + ex / 2
    const cy = y + ey / 2
    let px = cx + ex / 2
    let py = cy
    for (let i = 1; i <= 32; i++) {
      const a = (i / 32) * Math.PI * 2
      const nx = cx + (Math.cos(a) * ex) / 2
      const ny = cy + (Math.sin(a) * ey) / 2
      add(px, py, nx, ny)
      px = nx
      py = ny
    }
  } else add(x, y, x + ex, y + ey)
  return out
}
