// A large Yjs update cut into several smaller, valid updates: the browser's counterpart
// of the server's collab/slices.py. This device's copy of a board is stored as slices so
// a reload applies it a slice per task instead of freezing the page on one big update.
//
// Each slice holds a run of whole structs of the original, written back as they were
// decoded (the same encoding `Y.mergeUpdates` uses), with their (client, clock) position.
// The delete set travels alone in a last slice. Applied in order, the slices give the
// document the whole update gives: a struct whose origin is in a later slice waits in
// Yjs' pending set until it arrives.

import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'

interface Group {
  client: number
  clock: number
  count: number
  bytes: Uint8Array
}

function encodeSlice(groups: Group[]): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, groups.length)
  for (const g of groups) {
    encoding.writeVarUint(e, g.count)
    encoding.writeVarUint(e, g.client)
    encoding.writeVarUint(e, g.clock)
    encoding.writeUint8Array(e, g.bytes)
  }
  encoding.writeVarUint(e, 0) // no deletes: they come in the last slice
  return encoding.toUint8Array(e)
}

/**
 * `update` (v1) as valid updates of about `maxBytes` each, in order. A slice exceeds
 * `maxBytes` by at most one struct (a struct is never split). An update no larger than
 * `maxBytes` comes back as the only slice.
 */
export function sliceUpdate(update: Uint8Array, maxBytes: number): Uint8Array[] {
  if (maxBytes <= 0) throw new Error('maxBytes must be positive')
  if (update.length <= maxBytes) return [update]
  const { structs, ds } = Y.decodeUpdate(update)
  const out: Uint8Array[] = []
  let groups: Group[] = []
  let enc = new Y.UpdateEncoderV1()
  let client = -1
  let clock = 0
  let count = 0
  let size = 1
  const closeGroup = () => {
    if (count) groups.push({ client, clock, count, bytes: enc.toUint8Array() })
    enc = new Y.UpdateEncoderV1()
    count = 0
  }
  for (const s of structs) {
    if (s.id.client !== client) {
      closeGroup()
      client = s.id.client
      clock = s.id.clock
      size += 12
    }
    if (count === 0) clock = s.id.clock
    const before = encoding.length(enc.restEncoder)
    s.write(enc, 0)
    count += 1
    size += encoding.length(enc.restEncoder) - before
    if (size >= maxBytes) {
      closeGroup()
      out.push(encodeSlice(groups))
      groups = []
      size = 1 + 12
    }
  }
  closeGroup()
  if (groups.length) out.push(encodeSlice(groups))
  // The delete set as decoded above, written back (v1) in an update of its own: reading
  // it off the update again (diffUpdate against the update's own state vector) took two
  // more passes over every struct, as long as the whole decode.
  if (ds.clients.size) out.push(encodeDeletes(ds))
  return out
}

function encodeDeletes(ds: ReturnType<typeof Y.decodeUpdate>['ds']): Uint8Array {
  const e = encoding.createEncoder()
  encoding.writeVarUint(e, 0) // no structs
  encoding.writeVarUint(e, ds.clients.size)
  for (const [client, items] of ds.clients) {
    encoding.writeVarUint(e, client)
    encoding.writeVarUint(e, items.length)
    for (const item of items) {
      encoding.writeVarUint(e, item.clock)
      encoding.writeVarUint(e, item.len)
    }
  }
  return encoding.toUint8Array(e)
}

/** True for an update with no structs and no deletes (`[0, 0]`). */
export function isEmptyUpdate(update: Uint8Array): boolean {
  return update.length === 2 && update[0] === 0 && update[1] === 0
}
