// The IndexedDB layout of this device's copy of a document, shared by the page (store.ts)
// and the compaction worker (store-worker.ts). It is y-indexeddb's layout, so a copy
// written by an earlier release (one large compacted update) still opens: a database per
// document, an `updates` store of v1 updates applied in key order, and `custom`.

export const UPDATES = 'updates'
const CUSTOM = 'custom'

export function openDb(name: string): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(name)
    req.onupgradeneeded = () => {
      const db = req.result
      if (!db.objectStoreNames.contains(UPDATES)) db.createObjectStore(UPDATES, { autoIncrement: true })
      if (!db.objectStoreNames.contains(CUSTOM)) db.createObjectStore(CUSTOM)
    }
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
    req.onblocked = () => reject(new Error('IndexedDB blocked'))
  })
}

export function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'))
  })
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })
}

/** Every stored update with its key, in key (= application) order. */
export async function readAll(db: IDBDatabase): Promise<{ keys: number[]; updates: Uint8Array[] }> {
  const tx = db.transaction(UPDATES, 'readonly')
  const store = tx.objectStore(UPDATES)
  const [keys, updates] = await Promise.all([
    request(store.getAllKeys()) as Promise<number[]>,
    request(store.getAll()) as Promise<Uint8Array[]>,
  ])
  return { keys, updates }
}

/**
 * Replaces the records `keys` (all read earlier, the last one the highest) by `slices`,
 * in one transaction. The slices take keys just below and at the last one, so records
 * written since (higher keys) still come after them.
 */
export async function replace(db: IDBDatabase, keys: number[], slices: Uint8Array[]): Promise<void> {
  const tx = db.transaction(UPDATES, 'readwrite')
  const store = tx.objectStore(UPDATES)
  const last = keys[keys.length - 1]
  for (const k of keys) store.delete(k)
  slices.forEach((s, i) => store.put(s, last - 1 + (i + 1) / slices.length))
  await done(tx)
}
