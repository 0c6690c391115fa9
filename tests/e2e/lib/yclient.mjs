// A stock Node y-websocket client: what any other Yjs program sees of a document.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

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
      shapes[id] = json
    }
    return { shapes, state: doc.getMap('state').toJSON(), update: Y.encodeStateAsUpdate(doc) }
  } finally {
    provider.awareness.destroy()
    provider.destroy()
    doc.destroy()
  }
}
