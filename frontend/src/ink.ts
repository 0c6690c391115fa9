// Ink encoding: integer page units, delta-encoded, quantised pressure.
//
// A stroke's points live in an append-only Y.Array. With pressure (a pen) each point is
// three ints (dx, dy, dp); without (finger, mouse) two (dx, dy). Each batch of ints is
// appended as one packed chunk (packInts); strokes written before that hold plain numbers. Deltas are taken
// from the previous point, and the first point from the stroke's origin (x, y), so a
// stroke moves by rewriting two numbers. Small ints cost 2 bytes in Yjs' encoding against
// 9 for a float, and consecutive appends from one client merge into one item at rest.

/** Pressure is stored in 0..PRESSURE_LEVELS-1. */
export const PRESSURE_LEVELS = 16
export const DEFAULT_PRESSURE = 0.5

export interface Point {
  x: number
  y: number
  p: number // 0..1
}

export function quantisePressure(p: number): number {
  const clamped = Math.min(1, Math.max(0, Number.isFinite(p) ? p : DEFAULT_PRESSURE))
  return Math.round(clamped * (PRESSURE_LEVELS - 1))
}

export function pressureOf(level: number): number {
  return level / (PRESSURE_LEVELS - 1)
}

/**
 * Streams points of one stroke into deltas. It remembers the last *stored* (quantised)
 * point, so rounding errors never accumulate, and drops points that quantise onto the
 * previous one.
 */
export class InkEncoder {
  private lx: number
  private ly: number
  private lp: number
  readonly stride: 2 | 3

  constructor(originX: number, originY: number, withPressure: boolean) {
    this.lx = Math.round(originX)
    this.ly = Math.round(originY)
    this.lp = 0
    this.stride = withPressure ? 3 : 2
  }

  /** Returns the ints to append for this point, or null when it adds nothing. */
  push(x: number, y: number, p: number, force = false): number[] | null {
    // `| 0` also turns -0 into 0: Yjs would store -0 as a 9-byte float.
    const qx = Math.round(x) | 0
    const qy = Math.round(y) | 0
    const dx = (qx - this.lx) | 0
    const dy = (qy - this.ly) | 0
    if (this.stride === 2) {
      if (!force && dx === 0 && dy === 0) return null
      this.lx = qx
      this.ly = qy
      return [dx, dy]
    }
    const qp = quantisePressure(p)
    const dp = (qp - this.lp) | 0
    if (!force && dx === 0 && dy === 0 && dp === 0) return null
    this.lx = qx
    this.ly = qy
    this.lp = qp
    return [dx, dy, dp]
  }
}

/**
 * Packs ints as zigzag varints: one byte for a delta within ±63, two within ±8191. Stored
 * as a Uint8Array a stroke's points cost about half what Yjs' number encoding costs (a
 * tag byte and a varint per int): 30-point strokes went from 314 to 246 B each.
 */
export function packInts(ints: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(ints.length * 5)
  let n = 0
  for (let i = 0; i < ints.length; i++) {
    const v = ints[i] | 0
    let z = ((v << 1) ^ (v >> 31)) >>> 0
    while (z >= 0x80) {
      out[n++] = (z & 0x7f) | 0x80
      z >>>= 7
    }
    out[n++] = z
  }
  return out.slice(0, n)
}

function unpackInto(bytes: Uint8Array, out: number[]): void {
  let z = 0
  let shift = 0
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]
    z |= (b & 0x7f) << shift
    if (b & 0x80) {
      shift += 7
      // A corrupt peer's run of continuation bytes must not shift past 32 bits.
      if (shift > 28) shift = 28
      continue
    }
    z >>>= 0
    out.push((z >>> 1) ^ -(z & 1))
    z = 0
    shift = 0
  }
}

/**
 * A stroke's ints from its `pts` array, which holds either forms: plain numbers (strokes
 * written before packing) and Uint8Array chunks of packed ints (one per batch).
 */
export function inkInts(items: readonly unknown[]): number[] {
  const out: number[] = []
  for (const item of items) {
    if (typeof item === 'number') out.push(item | 0)
    else if (item instanceof Uint8Array) unpackInto(item, out)
  }
  return out
}

/**
 * Decodes deltas back to absolute page points. Tolerates a trailing partial point
 * (a batch cut mid-point never happens locally, but a corrupt peer must not crash us).
 */
export function decodeInk(
  originX: number,
  originY: number,
  data: ArrayLike<number>,
  stride: 2 | 3,
): Point[] {
  const out: Point[] = []
  let x = originX
  let y = originY
  let p = 0
  const n = data.length - (data.length % stride)
  for (let i = 0; i < n; i += stride) {
    x += data[i] | 0
    y += data[i + 1] | 0
    if (stride === 3) p += data[i + 2] | 0
    out.push({ x, y, p: stride === 3 ? pressureOf(p) : DEFAULT_PRESSURE })
  }
  return out
}

export interface Box {
  minX: number
  minY: number
  maxX: number
  maxY: number
}

export function boundsOf(points: readonly Point[], pad: number): Box {
  let minX = Infinity
  let minY = Infinity
  let maxX = -Infinity
  let maxY = -Infinity
  for (const pt of points) {
    if (pt.x < minX) minX = pt.x
    if (pt.y < minY) minY = pt.y
    if (pt.x > maxX) maxX = pt.x
    if (pt.y > maxY) maxY = pt.y
  }
  if (minX === Infinity) return { minX: 0, minY: 0, maxX: 0, maxY: 0 }
  return { minX: minX - pad, minY: minY - pad, maxX: maxX + pad, maxY: maxY + pad }
}

export function boxesOverlap(a: Box, b: Box): boolean {
  return a.minX <= b.maxX && a.maxX >= b.minX && a.minY <= b.maxY && a.maxY >= b.minY
}

/** Squared distance from point (px, py) to segment a-b. */
export function segmentDistance2(
  px: number,
  py: number,
  ax: number,
  ay: number,
  bx: number,
  by: number,
): number {
  const vx = bx - ax
  const vy = by - ay
  const len2 = vx * vx + vy * vy
  let t = len2 === 0 ? 0 : ((px - ax) * vx + (py - ay) * vy) / len2
  t = Math.max(0, Math.min(1, t))
  const cx = ax + t * vx - px
  const cy = ay + t * vy - py
  return cx * cx + cy * cy
}
