import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { sliceUpdate } from '../src/slices'

/** Two writers, strokes with points, moves, and deletes (tombstones and a delete set). */
function board(): Y.Doc {
  const a = new Y.Doc()
  const b = new Y.Doc()
  const sync = () => {
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)))
    Y.applyUpdate(a, Y.encodeStateAsUpdate(b, Y.encodeStateVector(a)))
  }
  for (let i = 0; i < 400; i++) {
    const doc = i % 3 ? a : b
    const shapes = doc.getMap<Y.Map<unknown>>('shapes')
    doc.transact(() => {
      const m = new Y.Map<unknown>()
      m.set('t', 'p')
      m.set('x', i)
      const pts = new Y.Array<number>()
      pts.push(Array.from({ length: 40 }, (_, k) => (k * 7 + i) % 13))
      m.set('pts', pts)
      shapes.set(`s${i}`, m)
    })
    if (i % 10 === 0) sync()
    if (i % 7 === 0 && i > 20) {
      // b moves and erases a's strokes: items whose origins belong to the other writer.
      sync()
      const bs = b.getMap<Y.Map<unknown>>('shapes')
      bs.get(`s${i - 5}`)?.set('x', -i)
      bs.delete(`s${i - 13}`)
    }
  }
  sync()
  return a
}

describe('sliceUpdate', () => {
  it('cuts an update into bounded, valid updates that rebuild the same document', () => {
    const doc = board()
    const whole = Y.encodeStateAsUpdate(doc)
    const slices = sliceUpdate(whole, 4096)
    expect(slices.length).toBeGreaterThan(10)
    // Each struct slice stays within the bound plus one struct.
    for (const s of slices.slice(0, -1)) expect(s.length).toBeLessThan(4096 + 1024)
    const copy = new Y.Doc()
    for (const s of slices) Y.applyUpdate(copy, s)
    expect(copy.getMap('shapes').toJSON()).toEqual(doc.getMap('shapes').toJSON())
    expect(Y.encodeStateVector(copy)).toEqual(Y.encodeStateVector(doc))
    // Nothing is left waiting for a missing dependency.
    expect(copy.store.pendingStructs).toBeNull()
    expect(copy.store.pendingDs).toBeNull()
    expect(Y.encodeStateAsUpdate(copy)).toEqual(whole)
  })

  it('returns a small update unchanged', () => {
    const doc = new Y.Doc()
    doc.getMap('m').set('k', 1)
    const u = Y.encodeStateAsUpdate(doc)
    expect(sliceUpdate(u, 4096)).toEqual([u])
  })
})
