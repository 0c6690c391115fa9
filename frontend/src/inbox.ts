// Incoming WebSocket messages, handed to the provider in order without one long task.
//
// The server sends a board's first sync as 8 KiB slices, each its own message; the stock
// y-websocket provider applies a message whole, inside its message handler, and one 8 KiB
// slice took up to 236 ms at 4x CPU (Yjs plus the board's observers painting). Here a
// large SyncStep2 or SyncUpdate is cut (slices.ts) into smaller updates that the provider
// applies one at a time, as many per task as fit in TASK_MS. Whatever arrives meanwhile
// (sync, awareness, auth, the saved ack) waits in the queue and is handled after them, in
// arrival order, as the provider would have. A small message arriving at an idle inbox is
// handled at once: a live stroke gets no added latency.

import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { sliceUpdate } from './slices'

/** Pieces of about this size: one applies in a few tens of ms at 4x CPU. */
export const PIECE_BYTES = 2 * 1024
/** A sync message larger than this is applied in pieces. */
export const LARGE_SYNC = 3 * 1024
/** Work per task while pieces are pending; a piece is applied whole, so one may run over. */
export const TASK_MS = 16

const MESSAGE_SYNC = 0
const SYNC_STEP2 = 1
const SYNC_UPDATE = 2

/**
 * A large SyncStep2 or SyncUpdate message as several messages, each carrying a piece of
 * its update: SyncUpdates, then the last piece with the original type, so a SyncStep2
 * marks the provider synced only once every piece is applied. Null for any other
 * message, a small one, or an update that cannot be decoded (the provider then handles
 * it whole and reports the error as it always does).
 */
export function splitSyncMessage(
  msg: Uint8Array,
  pieceBytes = PIECE_BYTES,
  largeBytes = LARGE_SYNC,
): Uint8Array[] | null {
  // Both leading varUints are below 128, hence one byte each.
  if (msg.length <= largeBytes || msg[0] !== MESSAGE_SYNC) return null
  const type = msg[1]
  if (type !== SYNC_STEP2 && type !== SYNC_UPDATE) return null
  let pieces: Uint8Array[]
  try {
    const d = decoding.createDecoder(msg)
    decoding.readVarUint(d)
    decoding.readVarUint(d)
    pieces = sliceUpdate(decoding.readVarUint8Array(d), pieceBytes)
  } catch {
    return null
  }
  if (pieces.length < 2) return null
  return pieces.map((piece, i) => {
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, MESSAGE_SYNC)
    encoding.writeVarUint(e, i === pieces.length - 1 ? type : SYNC_UPDATE)
    encoding.writeVarUint8Array(e, piece)
    return encoding.toUint8Array(e)
  })
}

export interface InboxOptions {
  split?: (msg: Uint8Array) => Uint8Array[] | null
  taskMs?: number
  /** Gives the page a turn between tasks. */
  yieldToPage: () => Promise<void>
  now?: () => number
}

/**
 * One socket's incoming messages. `deliver` is the provider's handling of one message;
 * the queue holds only what the socket has already delivered to the page (the browser
 * would otherwise hold it in its task queue), and `close` drops it with the socket.
 */
export class Inbox {
  private queue: Uint8Array[] = []
  private draining = false
  private closed = false
  private readonly split: (msg: Uint8Array) => Uint8Array[] | null
  private readonly taskMs: number
  private readonly now: () => number

  constructor(
    private readonly deliver: (msg: Uint8Array) => void,
    private readonly opts: InboxOptions,
  ) {
    this.split = opts.split ?? ((m) => splitSyncMessage(m))
    this.taskMs = opts.taskMs ?? TASK_MS
    this.now = opts.now ?? (() => performance.now())
  }

  /** Messages waiting behind a large one (for tests and diagnostics). */
  get waiting(): number {
    return this.queue.length
  }

  get busy(): boolean {
    return this.draining
  }

  push(msg: Uint8Array): void {
    if (this.closed) return
    if (this.draining) {
      this.queue.push(msg)
      return
    }
    const start = this.now()
    const pieces = this.split(msg)
    if (pieces === null) {
      this.deliver(msg) // the immediate path, as the stock provider does
      return
    }
    this.draining = true
    void this.drain(pieces, start)
  }

  /** The socket is gone: nothing more is delivered (a reconnection syncs afresh). */
  close(): void {
    this.closed = true
    this.queue = []
  }

  /** `start`: when this task began; cutting a message (a few tens of ms) counts too. */
  private async drain(first: Uint8Array[], start: number): Promise<void> {
    let pieces = first
    try {
      for (;;) {
        for (const piece of pieces) {
          if (this.now() - start >= this.taskMs) {
            await this.opts.yieldToPage()
            if (this.closed) return
            start = this.now()
          }
          this.safeDeliver(piece)
          if (this.closed) return
        }
        const next = this.queue.shift()
        if (next === undefined) return
        pieces = this.split(next) ?? [next]
      }
    } finally {
      this.draining = false
    }
  }

  private safeDeliver(msg: Uint8Array): void {
    // Off the socket's own task, a throw would end the drain and strand the queue; the
    // stock handler's errors (a bad update) are logged, as the browser would have.
    try {
      this.deliver(msg)
    } catch (err) {
      console.error('inkroom: a message from the server could not be handled', err)
    }
  }
}
