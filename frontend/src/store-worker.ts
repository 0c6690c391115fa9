// Compacts this device's copy of a document off the main thread: reads every stored
// update, merges them in a private Y.Doc, and writes the document back as slices of
// SLICE_BYTES (see store.ts for why slices). Runs in a dedicated worker, so a 5,000-stroke
// board (a second of decoding on an old phone) never blocks the page.

import * as Y from 'yjs'
import { openDb, readAll, replace } from './idb'
import { sliceUpdate } from './slices'

export interface CompactRequest {
  name: string
  sliceBytes: number
}

export interface CompactResult {
  ok: boolean
  records: number
  slices: number
  bytes: number
  error?: string
}

self.onmessage = async (e: MessageEvent<CompactRequest>) => {
  const { name, sliceBytes } = e.data
  let db: IDBDatabase | null = null
  try {
    db = await openDb(name)
    const { keys, updates } = await readAll(db)
    if (!keys.length) {
      postMessage({ ok: true, records: 0, slices: 0, bytes: 0 } satisfies CompactResult)
      return
    }
    const doc = new Y.Doc()
    doc.transact(() => {
      for (const u of updates) Y.applyUpdate(doc, u)
    })
    const whole = Y.encodeStateAsUpdate(doc)
    const slices = sliceUpdate(whole, sliceBytes)
    await replace(db, keys, slices)
    doc.destroy()
    postMessage({ ok: true, records: keys.length, slices: slices.length, bytes: whole.length } satisfies CompactResult)
  } catch (err) {
    postMessage({ ok: false, records: 0, slices: 0, bytes: 0, error: String(err) } satisfies CompactResult)
  } finally {
    db?.close()
  }
}
