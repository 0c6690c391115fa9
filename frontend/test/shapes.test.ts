import { describe, expect, it } from 'vitest'
import type { ShapeView } from '../src/board'
import { hitShape, inkOutline, outlinePath, shapePath } from '../src/shapes'

const base = { id: 's', pg: 'p0', z: 'a0', a: 'u', c: '#000', w: 4, done: true, rev: 1 }

describe('hit testing', () => {
  const rect: ShapeView = { ...base, t: 'r', x: 100, y: 100, ex: 200, ey: 100, box: { minX: 98, minY: 98, maxX: 302, maxY: 202 } }
  it('hits a rectangle on its edge, not in its empty middle', () => {
    expect(hitShape(rect, 100, 150, 4)).toBe(true)
    expect(hitShape(rect, 303, 201, 4)).toBe(true)
    expect(hitShape(rect, 200, 150, 4)).toBe(false)
    expect(hitShape(rect, 500, 500, 4)).toBe(false)
  })

  it('hits ink near its points', () => {
    const points = [0, 10, 20, 30].map((x) => ({ x, y: x, p: 0.5 }))
    const ink: ShapeView = { ...base, t: 'p', x: 0, y: 0, points, box: { minX: -2, minY: -2, maxX: 32, maxY: 32 } }
    expect(hitShape(ink, 15, 16, 2)).toBe(true)
    expect(hitShape(ink, 30, 0, 2)).toBe(false)
  })

  it('hits an ellipse on its outline', () => {
    const e: ShapeView = { ...base, t: 'e', x: 0, y: 0, ex: 100, ey: 50, box: { minX: -2, minY: -2, maxX: 102, maxY: 52 } }
    expect(hitShape(e, 100, 25, 3)).toBe(true)
    expect(hitShape(e, 50, 25, 3)).toBe(false)
  })
})

describe('paths', () => {
  it('draws a closed freehand outline and line shapes as SVG path data', () => {
    const pts = Array.from({ length: 12 }, (_, i) => ({ x: i * 5, y: Math.sin(i) * 5, p: 0.5 }))
    const outline = inkOutline(pts, 4, false, false, true)
    expect(outline.length).toBeGreaterThan(4)
    expect(outlinePath(outline)).toMatch(/^M[-\d.]+/)
    const line: ShapeView = { ...base, t: 'l', x: 1, y: 2, ex: 3, ey: 4, box: { minX: 0, minY: 0, maxX: 5, maxY: 7 } }
    expect(shapePath(line).d).toContain('M')
  })
})
