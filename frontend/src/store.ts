// This device's copy of a document in IndexedDB, loaded without freezing the page.
//
// y-indexeddb applied the whole stored board in one transaction: a 5,000-stroke board
// was a single task of about a second at 4x CPU on every reload. Here:
//
// * every update the document makes is stored as its own record (a first sync arrives
//   in 16 KiB slices, so it is stored as slices too);
// * loading applies the records in order, as many per task as fit in TASK_MS, and
//   yields to the page between tasks, so the board fills in and the page stays live;
// * compaction (merging the records into the document's state) runs in a worker and
//   writes the state back as SLICE_BYTES slices, never as one large update. A copy
//   written by y-indexeddb (same database layout) is compacted first, in the worker.
//
// Loading sends nothing: the connection opens after it, and the state vector it sends
// then is that of everything stored here, so the server answers with the diff.

import * as Y from 'yjs'
import { UPDATES, done, openDb, readAll } from './idb'
import { sliceUpdate } from './slices'
import type { CompactRequest, CompactResult } from './store-worker'

/** Work per task while loading; records are applied whole, so one may run over. */
const TASK_MS = 16
/**
 * Slices written by compaction: one applies well inside a task at 4x CPU (about a dozen
 * strokes; a 16 KiB slice of the first sync takes 100-200 ms there).
 */
export const SLICE_BYTES = 4 * 1024
/** A stored record this large is compacted (into slices) before it is applied. */
const LARGE_RECORD = 24 * 1024
/** Compacts once this many records have piled up (after the burst that brought them). */
const COMPACT_RECORDS = 400
/** ...or at once past this many, even mid-burst, so the record count stays bounded. */
const COMPACT_RECORDS_NOW = 4000
const COMPACT_DEADLINE_MS = 60_000
/** Large records (a first sync's slices) are compacted this long after the last one. */
const COMPACT_LARGE_AFTER_MS = 2000
/** Records larger than this (a first sync's 8 KiB slices) call for a compaction. */
const LARGE_WRITE = 1.5 * SLICE_BYTES
/** Updates are written in one transaction per this much time. */
const WRITE_DELAY_MS = 50

/** Gives the page a turn: input, rendering and other tasks run before we continue. */
export function yieldToPage(): Promise<void> {
  const s = (globalThis as { scheduler?: { yield?: () => Promise<void> } }).scheduler
  if (s?.yield) return s.yield()
  return new Promise((resolve) => {
    const ch = new MessageChannel()
    ch.port1.onmessage = () => resolve()
    ch.port2.postMessage(null)
  })
}

export class LocalStore {
  readonly whenLoaded: Promise<void>
  private db: IDBDatabase | null = null
  private destroyed = false
  private records = 0
  private compacting: Promise<void> | null = null

  constructor(
    readonly name: string,
    readonly doc: Y.Doc,
  ) {
    doc.on('update', this.onUpdate)
    window.addEventListener('pagehide', this.flush)
    this.whenLoaded = this.load()
  }

  /** Compacts in a worker now unless one is running; resolves when it is done. */
  compact(): Promise<void> {
    if (!this.compacting) {
      this.compacting = runCompaction(this.name).finally(() => {
        this.compacting = null
      })
    }
    return this.compacting
  }

  destroy(): void {
    this.flush()
    this.destroyed = true
    clearTimeout(this.largeTimer)
    window.removeEventListener('pagehide', this.flush)
    this.doc.off('update', this.onUpdate)
    this.db?.close()
    this.db = null
  }

  private onUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === this || this.destroyed) return
    this.queued.push(update)
    // One transaction per burst (a first sync is a few hundred messages), written soon:
    // a transaction still open when the page unloads is lost, so pagehide flushes too.
    if (this.db && !this.flushTimer) this.flushTimer = setTimeout(this.flush, WRITE_DELAY_MS)
  }

  private queued: Uint8Array[] = []
  private flushTimer: ReturnType<typeof setTimeout> | undefined
  private inflight = 0

  private flush = (): void => {
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    const db = this.db
    const updates = this.queued
    if (!db || !updates.length) return
    this.queued = []
    const tx = db.transaction(UPDATES, 'readwrite')
    const store = tx.objectStore(UPDATES)
    let large = false
    for (const u of updates) {
      store.add(u)
      large ||= u.length > LARGE_WRITE
    }
    this.records += updates.length
    this.inflight += 1
    done(tx)
      .catch(() => undefined)
      .finally(() => (this.inflight -= 1))
    if (this.records > COMPACT_RECORDS_NOW) {
      this.records = 0
      clearTimeout(this.largeTimer)
      this.largeTimer = undefined
      void this.compact().then(() => this.count())
    } else if (large || this.records > COMPACT_RECORDS) {
      // A first sync or a large catch-up: once it has all arrived, rewrite it as small
      // slices in the background, so the next reload applies it in short tasks. Not
      // while it streams in (a first sync applied in pieces is ~800 records): with the
      // compaction started mid-stream, a reload right after the board showed found this
      // copy behind and asked the server for 52-65 KB again (2 of 3 runs).
      clearTimeout(this.largeTimer)
      this.largeTimer = setTimeout(() => {
        this.largeTimer = undefined
        void this.compact().then(() => this.count())
      }, COMPACT_LARGE_AFTER_MS)
    }
  }

  /** True once everything is written and no compaction is due (tests wait for it). */
  get settled(): boolean {
    return (
      this.largeTimer === undefined &&
      this.compacting === null &&
      this.flushTimer === undefined &&
      this.inflight === 0 &&
      this.queued.length === 0
    )
  }

  private largeTimer: ReturnType<typeof setTimeout> | undefined

  private async count(): Promise<void> {
    const db = this.db
    if (!db) return
    const req = db.transaction(UPDATES, 'readonly').objectStore(UPDATES).count()
    this.records = await new Promise<number>((resolve) => {
      req.onsuccess = () => resolve(req.result)
      req.onerror = () => resolve(this.records)
    })
  }

  private async load(): Promise<void> {
    let db: IDBDatabase
    try {
      db = await openDb(this.name)
    } catch {
      return // no IndexedDB (private mode): the board comes from the server alone
    }
    if (this.destroyed) {
      db.close()
      return
    }
    let updates: Uint8Array[]
    try {
      ;({ updates } = await readAll(db))
      if (updates.some((u) => u.length > LARGE_RECORD)) {
        // A copy stored as one large update (y-indexeddb, or a record too large to apply
        // in one task): the worker rewrites it as slices first.
        await this.compact().catch(() => undefined)
        ;({ updates } = await readAll(db))
      }
    } catch {
      updates = [] // unreadable: the board comes from the server; new updates are kept
    }
    this.records = updates.length
    // Records not compacted yet (a first sync's 8 KiB slices, when the page reloads
    // within seconds of it) are cut here into SLICE_BYTES pieces: decoding 8 KiB costs
    // a few milliseconds, applying it whole 100-250 ms at 4x CPU.
    const pieces = (function* () {
      for (const u of updates) {
        let parts = [u]
        try {
          if (u.length > LARGE_WRITE) parts = sliceUpdate(u, SLICE_BYTES)
        } catch {
          /* not sliceable: applied whole below */
        }
        yield* parts
      }
    })()
    let next = pieces.next()
    while (!next.done && !this.destroyed) {
      const start = performance.now()
      // One transaction per piece: the board's observers run inside the time budget.
      do {
        try {
          Y.applyUpdate(this.doc, next.value, this)
        } catch (err) {
          // A damaged record must not keep the board from opening: the server has it all.
          console.warn(`inkroom: a stored update of ${this.name} is unreadable`, err)
        }
        next = pieces.next()
      } while (!next.done && performance.now() - start < TASK_MS)
      if (!next.done) await yieldToPage()
    }
    if (this.destroyed) {
      db.close()
      return
    }
    this.db = db
    this.flush()
  }
}

function runCompaction(name: string): Promise<void> {
  return new Promise((resolve) => {
    let worker: Worker
    try {
      worker = new Worker(new URL('./store-worker.ts', import.meta.url), { type: 'module' })
    } catch {
      resolve()
      return
    }
    const finish = () => {
      clearTimeout(timer)
      worker.terminate()
      resolve()
    }
    const timer = setTimeout(finish, COMPACT_DEADLINE_MS)
    worker.onmessage = (e: MessageEvent<CompactResult>) => {
      if (!e.data.ok) console.warn(`inkroom: compacting ${name} failed: ${e.data.error}`)
      finish()
    }
    worker.onerror = finish
    worker.postMessage({ name, sliceBytes: SLICE_BYTES } satisfies CompactRequest)
  })
}
