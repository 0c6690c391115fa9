import { describe, expect, it } from 'vitest'
import { InkEncoder, boundsOf, boxesOverlap, decodeInk, quantisePressure, segmentDistance2 } from '../src/ink'

describe('ink encoding', () => {
  it('round-trips integer points through deltas, with pressure', () => {
    const pts = [
      [10, 20, 0.5],
      [13, 24, 0.6],
      [13, 24, 0.6],
      [20, 10, 1],
      [-5, -7, 0],
    ]
    const enc = new InkEncoder(10, 20, true)
    const data: number[] = []
    for (const [x, y, p] of pts) data.push(...(enc.push(x, y, p) ?? []))
    const back = decodeInk(10, 20, data, 3)
    // The repeated point adds nothing; the first point is the origin itself.
    expect(back.map((p) => [p.x, p.y])).toEqual([
      [10, 20],
      [13, 24],
      [20, 10],
      [-5, -7],
    ])
    expect(back.map((p) => quantisePressure(p.p))).toEqual([8, 9, 15, 0])
    expect(data.every(Number.isInteger)).toBe(true)
  })

  it('never accumulates rounding errors', () => {
    const enc = new InkEncoder(0, 0, false)
    const data: number[] = []
    for (let i = 1; i <= 1000; i++) data.push(...(enc.push(i * 0.7, i * 0.3, 0.5) ?? []))
    const last = decodeInk(0, 0, data, 2).at(-1)!
    expect([last.x, last.y]).toEqual([700, 300])
  })

  it('stores no negative zero and tolerates a truncated batch', () => {
    const enc = new InkEncoder(5, 5, false)
    const d = enc.push(5.2, 7, 0.5)!
    expect(Object.is(d[0], -0)).toBe(false)
    expect(decodeInk(0, 0, [1, 2, 3], 2)).toHaveLength(1)
  })

  it('bounds, overlap and distances', () => {
    const box = boundsOf([{ x: 0, y: 0, p: 0.5 }, { x: 10, y: 4, p: 0.5 }], 2)
    expect(box).toEqual({ minX: -2, minY: -2, maxX: 12, maxY: 6 })
    expect(boxesOverlap(box, { minX: 11, minY: 5, maxX: 20, maxY: 20 })).toBe(true)
    expect(boxesOverlap(box, { minX: 13, minY: 0, maxX: 20, maxY: 20 })).toBe(false)
    expect(segmentDistance2(5, 3, 0, 0, 10, 0)).toBe(9)
    expect(segmentDistance2(-3, 4, 0, 0, 10, 0)).toBe(25)
  })
})

describe('packed ink', () => {
  it('round-trips ints through zigzag varints, and reads old and new forms together', async () => {
    const { packInts, inkInts } = await import('../src/ink')
    const ints = [0, 0, 1, -1, 63, -64, 64, -65, 8191, -8192, 100000, -100000, 2 ** 30, -(2 ** 30)]
    const packed = packInts(ints)
    expect(packed.length).toBeLessThan(ints.length * 3)
    expect(packInts([3, -4, 5]).length).toBe(3)
    expect(inkInts([packed])).toEqual(ints)
    // A stroke started by an old client (numbers) and continued by a new one (chunks).
    expect(inkInts([1, 2, 3, packInts([4, -5]), 6])).toEqual([1, 2, 3, 4, -5, 6])
    // A truncated chunk from a corrupt peer yields what it holds, and no exception.
    expect(() => inkInts([new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])])).not.toThrow()
  })
})
