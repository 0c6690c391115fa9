// A stock Node y-websocket client: what any other Yjs program sees of a document.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

/**
 * A stroke's points as ints, from either form the board stores: plain numbers, or
 * Uint8Array chunks of zigzag varints (frontend/src/ink.ts packInts).
 */
export function inkInts(items) {
  const out = []
  for (const item of items ?? []) {
    if (typeof item === 'number') out.push(item)
    else if (item instanceof Uint8Array) {
      let z = 0
      let shift = 0
      for (const b of item) {
        z |= (b & 0x7f) << shift
        if (b & 0x80) {
          shift += 7
          continue
        }
        z >>>= 0
        out.push((z >>> 1) ^ -(z & 1))
        z = 0
        shift = 0
      }
    }
  }
  return out
}

export async function readDocument(wsBase, name, token, { timeout = 10_000 } = {}) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(wsBase, name, doc, {
    WebSocketPolyfill: WebSocket,
    params: { token },
    disableBc: true,
  })
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no sync of ${name} within ${timeout} ms`)), timeout)
      provider.once('sync', (synced) => {
        if (synced) {
          clearTimeout(timer)
          resolve()
        }
      })
    })
    const shapes = {}
    for (const [id, m] of doc.getMap('shapes').entries()) {
      const json = m.toJSON()
      if (m.get('pts') instanceof Y.Array) json.pts = inkInts(m.get('pts').toArray())
      shapes[id] = json
    }
    return { shapes, state: doc.getMap('state').toJSON(), update: Y.encodeStateAsUpdate(doc) }
  } finally {
    provider.awareness.destroy()
    provider.destroy()
    doc.destroy()
  }
}
