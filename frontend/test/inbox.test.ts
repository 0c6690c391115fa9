import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import { Inbox, splitSyncMessage } from '../src/inbox'

/** A board of `n` strokes with points, as the server would hold it. */
function board(n: number): Y.Doc {
  const doc = new Y.Doc()
  const shapes = doc.getMap<Y.Map<unknown>>('shapes')
  for (let i = 0; i < n; i++) {
    doc.transact(() => {
      const m = new Y.Map<unknown>()
      m.set('x', i)
      const pts = new Y.Array<number>()
      pts.push(Array.from({ length: 40 }, (_, k) => (k * 7 + i) % 13))
      m.set('pts', pts)
      shapes.set(`s${i}`, m)
    })
  }
  shapes.delete('s3') // a delete set, which travels in the last piece
  return doc
}

function syncMessage(type: 'step2' | 'update', update: Uint8Array): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0)
  encoding.writeVarUint(e, type === 'step2' ? syncProtocol.messageYjsSyncStep2 : syncProtocol.messageYjsUpdate)
  encoding.writeVarUint8Array(e, update)
  return encoding.toUint8Array(e)
}

/** What the stock provider does with one sync message: apply it, note whether it was SyncStep2. */
function applyLikeProvider(doc: Y.Doc, msg: Uint8Array): number {
  const d = decoding.createDecoder(msg)
  expect(decoding.readVarUint(d)).toBe(0)
  return syncProtocol.readSyncMessage(d, encoding.createEncoder(), doc, 'server')
}

/** A yield the test releases by hand, and a clock it moves. */
function manualTurns() {
  const turns: (() => void)[] = []
  let t = 0
  return {
    yieldToPage: () => new Promise<void>((r) => turns.push(r)),
    now: () => t,
    advance: (ms: number) => {
      t += ms
    },
    async turn() {
      const r = turns.shift()
      if (!r) throw new Error('no task is waiting for a turn')
      r()
      await Promise.resolve()
      await Promise.resolve()
    },
    get waiting() {
      return turns.length
    },
  }
}

describe('splitSyncMessage', () => {
  it('cuts a large SyncStep2 into SyncUpdates and a last SyncStep2 that rebuild the board', () => {
    const src = board(300)
    const msg = syncMessage('step2', Y.encodeStateAsUpdate(src))
    const pieces = splitSyncMessage(msg, 2048, 3072)
    expect(pieces).not.toBeNull()
    expect(pieces!.length).toBeGreaterThan(5)
    const doc = new Y.Doc()
    const types = pieces!.map((p) => applyLikeProvider(doc, p))
    expect(types.slice(0, -1).every((t) => t === syncProtocol.messageYjsUpdate)).toBe(true)
    expect(types.at(-1)).toBe(syncProtocol.messageYjsSyncStep2)
    expect(doc.getMap('shapes').toJSON()).toEqual(src.getMap('shapes').toJSON())
    expect(doc.getMap('shapes').has('s3')).toBe(false)
  })

  it('keeps a large SyncUpdate a SyncUpdate', () => {
    const pieces = splitSyncMessage(syncMessage('update', Y.encodeStateAsUpdate(board(100))), 2048, 3072)
    expect(pieces!.every((p) => p[0] === 0 && p[1] === syncProtocol.messageYjsUpdate)).toBe(true)
  })

  it('leaves small messages, other types and undecodable updates whole', () => {
    const small = syncMessage('update', Y.encodeStateAsUpdate(board(2)))
    expect(splitSyncMessage(small, 2048, 3072)).toBeNull()
    const step1 = encoding.createEncoder()
    encoding.writeVarUint(step1, 0)
    syncProtocol.writeSyncStep1(step1, board(100))
    expect(splitSyncMessage(encoding.toUint8Array(step1), 1, 1)).toBeNull()
    const awareness = new Uint8Array(5000).fill(1)
    expect(splitSyncMessage(awareness, 2048, 3072)).toBeNull()
    const garbage = new Uint8Array(5000).fill(7)
    garbage[0] = 0
    garbage[1] = 2
    expect(splitSyncMessage(garbage, 2048, 3072)).toBeNull()
  })
})

describe('Inbox', () => {
  const tag = (s: string) => new TextEncoder().encode(s)
  const name = (m: Uint8Array) => new TextDecoder().decode(m)
  // "big:N" stands for a large sync in N pieces; anything else is small.
  const split = (m: Uint8Array) => {
    const s = name(m)
    if (!s.startsWith('big:')) return null
    const [, id, n] = s.split(':')
    return Array.from({ length: Number(n) }, (_, i) => tag(`${id}.${i}`))
  }

  it('handles a small message at once when nothing is pending', () => {
    const got: string[] = []
    const turns = manualTurns()
    const inbox = new Inbox((m) => got.push(name(m)), { split, ...turns })
    inbox.push(tag('stroke'))
    expect(got).toEqual(['stroke'])
    expect(turns.waiting).toBe(0)
  })

  it('spreads pieces over tasks by time and keeps later messages in arrival order', async () => {
    const got: string[] = []
    const turns = manualTurns()
    // Each piece "costs" 10 ms: two fit in a 16 ms task (the second starts at 10 ms).
    const inbox = new Inbox(
      (m) => {
        got.push(name(m))
        turns.advance(10)
      },
      { split, taskMs: 16, ...turns },
    )
    inbox.push(tag('big:a:5'))
    expect(got).toEqual(['a.0', 'a.1'])
    inbox.push(tag('awareness'))
    inbox.push(tag('big:b:2'))
    inbox.push(tag('saved-ack'))
    expect(inbox.waiting).toBe(3)
    await turns.turn()
    expect(got).toEqual(['a.0', 'a.1', 'a.2', 'a.3'])
    await turns.turn()
    expect(got.slice(4)).toEqual(['a.4', 'awareness'])
    await turns.turn()
    expect(got.slice(6)).toEqual(['b.0', 'b.1'])
    await turns.turn()
    expect(got.slice(8)).toEqual(['saved-ack'])
    expect(inbox.busy).toBe(false)
    inbox.push(tag('stroke'))
    expect(got.at(-1)).toBe('stroke')
  })

  it('counts the time spent cutting a message in the task', async () => {
    const got: string[] = []
    const turns = manualTurns()
    const slowSplit = (m: Uint8Array) => {
      turns.advance(20) // decoding a large update
      return split(m)
    }
    const inbox = new Inbox((m) => got.push(name(m)), { split: slowSplit, taskMs: 16, ...turns })
    inbox.push(tag('big:a:2'))
    expect(got).toEqual([])
    await turns.turn()
    expect(got).toEqual(['a.0', 'a.1'])
    expect(inbox.busy).toBe(false)
  })

  it('drops what is pending when the socket goes', async () => {
    const got: string[] = []
    const turns = manualTurns()
    const inbox = new Inbox(
      (m) => {
        got.push(name(m))
        turns.advance(20)
      },
      { split, taskMs: 16, ...turns },
    )
    inbox.push(tag('big:a:3'))
    inbox.push(tag('awareness'))
    inbox.close()
    inbox.push(tag('late'))
    await turns.turn()
    expect(got).toEqual(['a.0'])
    expect(turns.waiting).toBe(0)
  })

  it('goes on after a message whose handling throws', async () => {
    const got: string[] = []
    const turns = manualTurns()
    const errors: unknown[] = []
    const error = console.error
    console.error = (...a: unknown[]) => errors.push(a)
    try {
      const inbox = new Inbox(
        (m) => {
          if (name(m) === 'a.0') throw new Error('bad update')
          got.push(name(m))
        },
        { split, ...turns },
      )
      inbox.push(tag('big:a:2'))
      inbox.push(tag('awareness'))
      expect(got).toEqual(['a.1', 'awareness'])
      expect(errors).toHaveLength(1)
      expect(inbox.busy).toBe(false)
    } finally {
      console.error = error
    }
  })

  it('applies a streamed first sync in pieces and reports SyncStep2 only after the last', async () => {
    const src = board(300)
    const doc = new Y.Doc()
    const turns = manualTurns()
    const types: number[] = []
    const inbox = new Inbox(
      (m) => {
        types.push(applyLikeProvider(doc, m))
        turns.advance(10)
      },
      { split: (m) => splitSyncMessage(m, 2048, 3072), taskMs: 16, ...turns },
    )
    inbox.push(syncMessage('step2', Y.encodeStateAsUpdate(src)))
    while (turns.waiting) await turns.turn()
    expect(types.filter((t) => t === syncProtocol.messageYjsSyncStep2)).toHaveLength(1)
    expect(types.at(-1)).toBe(syncProtocol.messageYjsSyncStep2)
    expect(doc.getMap('shapes').toJSON()).toEqual(src.getMap('shapes').toJSON())
  })
})
