// One document's connection: IndexedDB first (store.ts), then the stock y-websocket provider,
// plus what the stock client lacks for phones on 3G:
//
// * dead-link detection in seconds. The stock watchdog waits 30 s of silence. Here, after
//   HEARTBEAT_IDLE of silence we bump our own awareness clock; the server echoes awareness
//   to its sender. The link is dead (a tunnel, a black-holed NAT) when a probe is out and
//   *nothing at all* has arrived for HEARTBEAT_TIMEOUT: then the socket is dropped and
//   reopened at once. A link that is delivering is alive even when the echo is late: on
//   3G the echo can wait behind a large first sync (the server sends it in slices, each a
//   message, so a loading board keeps proving the link every fraction of a second).
// * "N changes waiting". Every local transaction is pending until the server has
//   processed it. The same awareness echo is the acknowledgement: the server handles a
//   connection's frames in order, so the echo of a probe sent after our updates (on the
//   same, synced socket) proves the updates before it were received.
// * "saved". A change the server has received is not yet stored (it saves on a short
//   debounce). After each acknowledged burst the link asks the server, with Inkroom's
//   opt-in message (type 100, docs/collab.md), to say when everything it received on this
//   socket is committed to the database; `unsaved` counts what is received, not stored.
// * permanent refusals (close codes 44xx: bad or expired token, forbidden document) stop
//   the retry loop; the provider emits 'closed'. A messageAuth permission-denied (a
//   locked board, a read-only role) is surfaced instead of only logged.
// * no long task while a board streams in: the provider's sockets hand their messages to
//   an Inbox (inbox.ts), which applies a large sync in pieces across tasks, in order.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { LocalStore } from './store'
import * as awarenessProtocol from 'y-protocols/awareness'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as authProtocol from 'y-protocols/auth'
import { Inbox } from './inbox'
import { yieldToPage } from './store'

export const HEARTBEAT_IDLE = 2500
export const HEARTBEAT_TIMEOUT = 4000
/** A handshake through a dead link hangs until TCP gives up; we give up sooner. */
export const CONNECT_TIMEOUT = 8000
/** How long IndexedDB may take to load this device's copy before we connect anyway. */
const LOCAL_DEADLINE = 15000
/**
 * Reconnect backoff: doubling from 200 ms up to this cap, each delay drawn at random
 * from its upper half (jitter), so a class whose network flapped at once does not
 * reconnect in lockstep and every attempt costs only a state-vector exchange.
 */
export const MAX_BACKOFF = 6000
const ACK_DELAY = 400
/** Inkroom's extension message: ask (0) and hear (1) when changes are stored. */
const MESSAGE_SAVED = 100
const SAVED_REQUEST = 0
const SAVED_ACK = 1

export type LinkStatus = 'local' | 'connecting' | 'online' | 'offline' | 'refused'

export interface LinkState {
  status: LinkStatus
  /** local changes the server has not confirmed receiving ("sending") */
  pending: number
  /** changes the server received but has not yet confirmed storing ("sent") */
  unsaved: number
  /** the server has confirmed storing this session's changes at least once */
  saved: boolean
  rttMs: number | null
  denied: string | null
  refused: string | null
}

interface Probe {
  clock: number
  seq: number
  ws: WebSocket
  sentAt: number
  acks: boolean
}

/**
 * A WebSocket whose `onmessage` (the provider sets it once per socket, and null when it
 * lets the socket go) receives the messages through an Inbox. `onArrive` runs as each
 * message arrives, before it may wait in the queue.
 */
function inboxSocket(onArrive: (ws: WebSocket) => void): typeof WebSocket {
  return class InboxSocket extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols)
      let handler: ((this: WebSocket, ev: MessageEvent) => unknown) | null = null
      const inbox = new Inbox(
        // The provider reads `new Uint8Array(event.data)`: a copy of the piece, a few KiB.
        (msg) => handler?.call(this, new MessageEvent('message', { data: msg })),
        { yieldToPage },
      )
      Object.defineProperty(this, 'onmessage', {
        get: () => handler,
        set: (fn: typeof handler) => {
          handler = fn
          if (fn === null) inbox.close()
        },
      })
      this.addEventListener('message', (ev: MessageEvent) => {
        onArrive(this)
        if (ev.data instanceof ArrayBuffer) inbox.push(new Uint8Array(ev.data))
        else console.warn('inkroom: a text frame from the server was ignored')
      })
    }
  }
}

export class Link {
  readonly doc: Y.Doc
  readonly name: string
  readonly provider: WebsocketProvider
  readonly awareness: awarenessProtocol.Awareness
  readonly local: LocalStore | null
  readonly whenLocal: Promise<void>
  private seq = 0
  /** key -> seq of the last local transaction that touched it */
  private pending = new Map<string, number>()
  private probe: Probe | null = null
  private ackTimer = 0
  private tick = 0
  private listeners = new Set<(s: LinkState) => void>()
  private storageKey: string
  /** seqs of transactions the server received, not yet confirmed stored */
  private received: number[] = []
  state: LinkState = {
    status: 'local',
    pending: 0,
    unsaved: 0,
    saved: false,
    rttMs: null,
    denied: null,
    refused: null,
  }

  constructor(opts: {
    serverUrl: string
    name: string
    doc: Y.Doc
    token: string
    storeName: string | null
    /** A permanent close (44xx). 4401 (token expired) waits for `setToken`. */
    onClosed?: (code: number, reason: string) => void
  }) {
    this.doc = opts.doc
    this.name = opts.name
    this.storageKey = `inkroom.pending.${opts.storeName ?? opts.name}`
    this.restorePending()
    this.local = opts.storeName ? new LocalStore(opts.storeName, this.doc) : null
    // Connect only once this device's copy is loaded: the state vector we send then asks
    // for the diff, not the whole document again (a 5,000-stroke board takes seconds to
    // load from IndexedDB on an old phone). The deadline is for a broken IndexedDB.
    this.whenLocal = this.local
      ? Promise.race([
          this.local.whenLoaded,
          new Promise<void>((r) => setTimeout(r, LOCAL_DEADLINE)),
        ])
      : Promise.resolve()
    this.awareness = new awarenessProtocol.Awareness(this.doc)
    this.provider = new WebsocketProvider(opts.serverUrl, opts.name, this.doc, {
      connect: false,
      awareness: this.awareness,
      params: { token: opts.token },
      disableBc: true,
      maxBackoffTime: MAX_BACKOFF,
      WebSocketPolyfill: inboxSocket((ws) => {
        // Arriving bytes prove the link, even while they wait behind a large sync.
        if (this.provider.ws === ws) this.provider.wsLastMessageReceived = Date.now()
      }),
    })
    // The provider computes min(2^n * 100 ms, maxBackoffTime) right after this event:
    // setting the cap to a random point below the next step gives that delay jitter.
    this.provider.on('connection-close', () => {
      const next = Math.min(2 ** (this.provider.wsUnsuccessfulReconnects + 1) * 100, MAX_BACKOFF)
      this.provider.maxBackoffTime = next * (0.5 + Math.random() * 0.5)
    })
    this.installHandlers()
    this.doc.on('afterTransaction', (tr: Y.Transaction) => this.onTransaction(tr))
    this.provider.on('status', ({ status }) => {
      if (status === 'connecting') this.connectingSince = performance.now()
      if (status === 'connected') this.set({ status: 'connecting', denied: null })
      else if (status === 'disconnected') {
        this.probe = null
        this.set({ status: this.state.refused ? 'refused' : 'offline' })
      }
    })
    this.provider.on('sync', (synced: boolean) => {
      if (synced) {
        this.set({ status: 'online' })
        this.sendProbe(true)
      }
    })
    this.provider.on('closed', (ev: { code: number; reason: string }) => {
      if (ev.code === 4401) {
        // The token ran out: not a refusal yet. The page renews it and calls setToken.
        this.waitingForToken = true
        this.set({ status: 'connecting' })
      } else {
        this.set({ status: 'refused', refused: ev.reason || `closed with code ${ev.code}` })
      }
      opts.onClosed?.(ev.code, ev.reason)
    })
    this.tick = window.setInterval(() => this.onTick(), 500)
    window.addEventListener('online', this.onOnline)
    document.addEventListener('visibilitychange', this.onVisible)
  }

  connect(): void {
    this.set({ status: 'connecting', refused: null })
    this.provider.connect()
  }

  private waitingForToken = false

  /** The token for the next (re)connection; reconnects now if a 4401 stopped the link. */
  setToken(token: string, reconnect = false): void {
    this.provider.params.token = token
    if (this.waitingForToken || (reconnect && !this.provider.wsconnected && !this.provider.wsconnecting)) {
      this.waitingForToken = false
      this.connect()
    }
  }

  onChange(fn: (s: LinkState) => void): () => void {
    this.listeners.add(fn)
    fn(this.state)
    return () => this.listeners.delete(fn)
  }

  /** Sends a probe now if the socket is synced; used by the app after a burst of edits. */
  flushAck(): void {
    this.sendProbe(true)
  }

  destroy(): void {
    clearInterval(this.tick)
    clearTimeout(this.ackTimer)
    window.removeEventListener('online', this.onOnline)
    document.removeEventListener('visibilitychange', this.onVisible)
    this.provider.destroy()
    this.awareness.destroy()
    this.local?.destroy()
  }

  private set(patch: Partial<LinkState>): void {
    this.state = { ...this.state, ...patch }
    for (const fn of this.listeners) fn(this.state)
  }

  // -- pending changes -------------------------------------------------------------------

  private onTransaction(tr: Y.Transaction): void {
    // Remote updates (provider, IndexedDB) are applied with local=false.
    if (!tr.local || tr.deleteSet.clients.size + tr.afterState.size === 0) return
    let changed = false
    for (const [client, clock] of tr.afterState) {
      if ((tr.beforeState.get(client) ?? 0) !== clock) changed = true
    }
    if (!changed && tr.deleteSet.clients.size === 0) return
    this.seq += 1
    const key = (tr.meta.get('key') as string | undefined) ?? `t${this.seq}`
    this.pending.set(key, this.seq)
    this.savePending()
    this.set({ pending: this.pending.size })
    if (this.provider.synced) {
      clearTimeout(this.ackTimer)
      this.ackTimer = window.setTimeout(() => this.sendProbe(true), ACK_DELAY)
    }
  }

  private restorePending(): void {
    try {
      const n = Number(localStorage.getItem(this.storageKey) ?? 0)
      for (let i = 0; i < n; i++) this.pending.set(`restored${i}`, 0)
      this.state.pending = this.pending.size
    } catch {
      /* no storage: the count starts at zero */
    }
  }

  private savePending(): void {
    try {
      if (this.pending.size) localStorage.setItem(this.storageKey, String(this.pending.size))
      else localStorage.removeItem(this.storageKey)
    } catch {
      /* ignore */
    }
  }

  // -- heartbeat and acknowledgements ----------------------------------------------------

  private sendProbe(acks: boolean): void {
    const ws = this.provider.ws
    if (!ws || !this.provider.wsconnected || ws.readyState !== WebSocket.OPEN) return
    if (this.probe && this.probe.ws === ws) {
      // One probe in flight at a time; its echo is followed by another if needed.
      this.probeAgain = this.probeAgain || acks
      return
    }
    const state = this.awareness.getLocalState() ?? {}
    this.awareness.setLocalState(state) // bumps the clock; the provider sends it
    const meta = this.awareness.meta.get(this.doc.clientID)
    this.probe = {
      clock: meta ? meta.clock : 0,
      seq: this.seq,
      ws,
      sentAt: performance.now(),
      acks: acks && this.provider.synced,
    }
  }

  private probeAgain = false

  private onEcho(clock: number): void {
    const p = this.probe
    if (!p || clock < p.clock || p.ws !== this.provider.ws) return
    this.probe = null
    const rtt = Math.round(performance.now() - p.sentAt)
    if (p.acks && !this.state.denied) {
      for (const [key, seq] of this.pending) {
        if (seq <= p.seq) {
          this.pending.delete(key)
          this.received.push(seq)
        }
      }
      this.savePending()
      // Everything before the probe was received; ask to hear when it is stored.
      if (this.received.length) this.requestSaved(p.ws, p.seq)
    }
    this.set({ rttMs: rtt, pending: this.pending.size, unsaved: this.received.length })
    if (this.probeAgain || (this.pending.size && this.provider.synced)) {
      this.probeAgain = false
      if (this.pending.size) this.ackTimer = window.setTimeout(() => this.sendProbe(true), ACK_DELAY)
    }
  }

  private requestSaved(ws: WebSocket, marker: number): void {
    if (ws.readyState !== WebSocket.OPEN) return
    const enc = encoding.createEncoder()
    encoding.writeVarUint(enc, MESSAGE_SAVED)
    encoding.writeVarUint(enc, SAVED_REQUEST)
    encoding.writeVarUint(enc, marker)
    ws.send(encoding.toUint8Array(enc))
  }

  private onSaved(marker: number): void {
    this.received = this.received.filter((seq) => seq > marker)
    this.set({ unsaved: this.received.length, saved: true })
  }

  private connectingSince = 0

  private onTick(): void {
    const ws = this.provider.ws
    const now = performance.now()
    if (ws && this.provider.wsconnecting && now - this.connectingSince > CONNECT_TIMEOUT) {
      this.drop('connect timeout')
      return
    }
    if (!ws || !this.provider.wsconnected) return
    const silentMs = Date.now() - this.provider.wsLastMessageReceived
    if (
      this.probe &&
      this.probe.ws === ws &&
      now - this.probe.sentAt > HEARTBEAT_TIMEOUT &&
      silentMs > HEARTBEAT_TIMEOUT
    ) {
      this.drop('heartbeat timeout')
      return
    }
    if (!this.probe && silentMs > HEARTBEAT_IDLE) this.sendProbe(this.pending.size > 0)
  }

  /** Drops a socket that is open in name only and reconnects immediately. */
  private drop(reason: string): void {
    const ws = this.provider.ws
    this.probe = null
    if (!ws) return
    // The provider's own close path detaches the socket and schedules a reconnect; a
    // synthetic close event gets there without waiting for a TCP close that never comes.
    const handler = ws.onclose
    if (handler) handler.call(ws, new CloseEvent('close', { code: 4000, reason }))
    else ws.close()
  }

  private onOnline = (): void => {
    if (this.state.refused) return
    if (!this.provider.wsconnected) {
      this.provider.wsUnsuccessfulReconnects = 0
      if (this.provider.ws) this.drop('network back')
      else this.provider.connect()
    } else this.sendProbe(this.pending.size > 0)
  }

  private onVisible = (): void => {
    if (document.visibilityState === 'visible' && this.provider.wsconnected) {
      this.sendProbe(this.pending.size > 0)
    }
  }

  private installHandlers(): void {
    const provider = this.provider
    // Awareness: watch for the echo of our own state before applying the update.
    provider.messageHandlers[1] = (_enc, decoder, prov) => {
      const update = decoding.readVarUint8Array(decoder)
      const d = decoding.createDecoder(update)
      const n = decoding.readVarUint(d)
      let echo = -1
      for (let i = 0; i < n; i++) {
        const client = decoding.readVarUint(d)
        const clock = decoding.readVarUint(d)
        decoding.readVarString(d)
        if (client === this.doc.clientID) echo = clock
      }
      awarenessProtocol.applyAwarenessUpdate(prov.awareness, update, prov)
      if (echo >= 0) this.onEcho(echo)
    }
    provider.messageHandlers[MESSAGE_SAVED] = (_enc, decoder) => {
      if (decoding.readVarUint(decoder) === SAVED_ACK) this.onSaved(decoding.readVarUint(decoder))
    }
    provider.messageHandlers[2] = (_enc, decoder, prov) => {
      authProtocol.readAuthMessage(decoder, prov.doc, (_doc, reason) => {
        this.set({ denied: reason || 'permission denied' })
      })
    }
  }
}
