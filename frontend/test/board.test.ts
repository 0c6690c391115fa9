import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Board } from '../src/board'

function remoteBoard(): Uint8Array {
  const doc = new Y.Doc()
  const b = new Board(doc)
  doc.transact(() => {
    for (let i = 0; i < 6; i++) {
      b.create({ t: 'p', pg: i % 2 ? 'p1' : 'p0', z: b.nextZ(), a: 'u', c: '#1f2933', w: 4, x: 10 * i, y: 5, done: true }, [0, 0, 3, -2, 4, 1])
    }
  })
  return Y.encodeStateAsUpdate(doc)
}

describe('Board', () => {
  it('decodes the page in view as it arrives and other pages when they are shown', () => {
    const doc = new Y.Doc()
    const board = new Board(doc)
    const seen: string[][] = []
    board.onShapes((changed) => seen.push([...changed]))
    Y.applyUpdate(doc, remoteBoard())
    expect(board.count()).toBe(6)
    expect(seen.flat().length).toBe(6)
    // Other-page shapes are known by page only until asked for.
    const other = [...doc.getMap('shapes').keys()].filter((id) => board.pageOf(id) === 'p1')
    expect(other.length).toBe(3)
    expect(board.pageShapes('p0').map((s) => s.points!.length)).toEqual([3, 3, 3])
    const p1 = board.pageShapes('p1')
    expect(p1.map((s) => s.id).sort()).toEqual(other.sort())
    expect(p1.every((s) => s.points!.length === 3 && s.pg === 'p1')).toBe(true)
    expect(board.idsOnPage('p1').length).toBe(3)
  })

  it('decodes a page shown later in slices: focus decodes nothing, decodePage a slice at a time', () => {
    const src = new Y.Doc()
    const b = new Board(src)
    src.transact(() => {
      for (let i = 0; i < 40; i++) b.create({ t: 'p', pg: 'p1', z: b.nextZ(), a: 'u', x: i, y: 5, done: true }, [0, 0, 3, -2])
    })
    const doc = new Y.Doc()
    const board = new Board(doc)
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(src))
    const decoded = () => board.idsOnPage('p1').filter((id) => (board as unknown as { views: Map<string, unknown> }).views.has(id)).length
    board.focus('p1')
    expect(decoded()).toBe(0)
    // A deadline already past: a slice of 8, then it stops and says so.
    expect(board.decodePage('p1', 0)).toBe(false)
    expect(decoded()).toBe(8)
    let calls = 1
    for (;;) {
      calls += 1
      if (board.decodePage('p1', 0)) break
    }
    expect(calls).toBe(5)
    expect(decoded()).toBe(40)
    expect(board.decodePage('p1', 0)).toBe(true)
    expect(board.decodePage('p9', 0)).toBe(true)
    expect(board.pageShapes('p1').map((s) => s.x)).toEqual(Array.from({ length: 40 }, (_, i) => i))
    // A stroke arriving on the page in view is decoded at once.
    const id = b.create({ t: 'p', pg: 'p1', z: b.nextZ(), a: 'u', x: 99, y: 5, done: true }, [0, 0])
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(src, Y.encodeStateVector(doc)))
    expect(board.view(id)?.x).toBe(99)
    expect(decoded()).toBe(41)
  })

  it('reads packed and plain points, and leaves default fields out', () => {
    const doc = new Y.Doc()
    const board = new Board(doc)
    const id = board.create({ t: 'p', pg: 'p0', z: board.nextZ(), a: 'u', c: '#1f2933', w: 4, x: 100, y: 50 }, [0, 0, 5, 5])
    board.appendInk(id, [1, -1], true)
    const m = board.shapes.get(id)!
    expect([...m.keys()].sort()).toEqual(['a', 'done', 't', 'x', 'y', 'z', 'pts'].sort())
    // An older client's plain numbers appended to the same stroke are read too.
    ;(m.get('pts') as Y.Array<unknown>).push([2, 2])
    expect(board.view(id)!.points!.map((p) => [p.x, p.y])).toEqual([
      [100, 50],
      [105, 55],
      [106, 54],
      [108, 56],
    ])
    expect(board.view(id)!.c).toBe('#1f2933')
    expect(board.view(id)!.w).toBe(4)
  })
})
