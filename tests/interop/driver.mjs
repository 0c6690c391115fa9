// Stock Yjs clients (yjs + y-websocket) driven by the Python interop tests.
//
// Protocol: one JSON object per line. Requests on stdin are {id, cmd, ...args}; every request
// gets exactly one reply on stdout, {id, ok: true, result} or {id, ok: false, error}. Requests
// run concurrently, so a pending `wait` does not hold up edits. The first line written is
// {event: "ready"}. Closing stdin (or the `exit` command) destroys every provider and exits.
//
// Nothing here sleeps and hopes: a `wait` re-checks its condition whenever one of the client's
// events fires (provider 'sync', 'status', 'connection-close', 'closed', doc 'update', awareness
// 'change', a permission-denied message) and fails with a snapshot when its deadline passes.

import * as readline from 'node:readline'
import * as Y from 'yjs'
import { WebsocketProvider, messageAuth } from 'y-websocket'
import * as auth from 'y-protocols/auth'
import WebSocket from 'ws'

// Everything on stdout is protocol: route stray logging to stderr.
console.log = console.error
console.info = console.error

const DEFAULT_SHAPE = { map: 'map', array: 'array', text: 'text' }
const DEFAULT_TIMEOUT_MS = 5000

/** One Y.Doc with its WebsocketProvider and a record of what the provider reported. */
class Client {
  constructor (name, { url, room, token, shape = DEFAULT_SHAPE, connect = true, maxBackoffTime }) {
    this.name = name
    this.shape = shape
    this.doc = new Y.Doc()
    for (const [key, kind] of Object.entries(shape)) sharedType(this.doc, key, kind)
    this.waiters = new Set()
    this.sockets = 0
    this.statuses = []
    this.syncEvents = 0
    this.closes = []
    this.terminal = []
    this.denied = []
    const client = this
    // Counts connection attempts: a provider that reconnects constructs a new socket.
    class CountingWebSocket extends WebSocket {
      constructor (...args) {
        super(...args)
        client.sockets++
      }
    }
    const options = { WebSocketPolyfill: CountingWebSocket, disableBc: true, connect: false }
    if (token !== undefined && token !== null) options.params = { token }
    if (maxBackoffTime !== undefined) options.maxBackoffTime = maxBackoffTime
    this.provider = new WebsocketProvider(url, room, this.doc, options)
    // The stock handler only logs a warning; record the reason as well.
    this.provider.messageHandlers[messageAuth] = (_encoder, decoder) => {
      auth.readAuthMessage(decoder, this.doc, (_doc, reason) => {
        this.denied.push(reason)
        this.notify()
      })
    }
    this.provider.on('status', ({ status }) => { this.statuses.push(status); this.notify() })
    this.provider.on('sync', (synced) => { if (synced) this.syncEvents++; this.notify() })
    this.provider.on('connection-close', (event) => {
      // `event` is null when the provider closed the socket itself (disconnect, watchdog).
      this.closes.push(event === null ? { code: null, reason: 'local' } : { code: event.code, reason: event.reason })
      this.notify()
    })
    this.provider.on('closed', ({ code, reason }) => { this.terminal.push({ code, reason }); this.notify() })
    this.doc.on('update', () => this.notify())
    this.provider.awareness.on('change', () => this.notify())
    if (connect) this.provider.connect()
  }

  notify () {
    for (const waiter of [...this.waiters]) waiter()
  }

  snapshot () {
    const json = {}
    for (const [key, kind] of Object.entries(this.shape)) json[key] = sharedType(this.doc, key, kind).toJSON()
    const awareness = []
    for (const [client, state] of this.provider.awareness.getStates()) awareness.push({ client, state })
    const clocks = {}
    for (const [client, clock] of stateVector(this.doc)) clocks[client] = clock
    return {
      clientId: this.doc.clientID,
      status: this.statuses.at(-1) ?? null,
      statuses: this.statuses,
      synced: this.provider.synced,
      syncEvents: this.syncEvents,
      closes: this.closes,
      terminal: this.terminal,
      denied: this.denied,
      sockets: this.sockets,
      shouldConnect: this.provider.shouldConnect,
      awareness,
      json,
      stateVector: Buffer.from(Y.encodeStateVector(this.doc)).toString('base64'),
      clocks
    }
  }

  /** Resolves with a snapshot once every condition in `until` holds, re-checked on each event. */
  wait (until, timeoutMs) {
    return new Promise((resolve, reject) => {
      let timer = null
      const check = () => {
        try {
          const unmet = unmetConditions(this, until)
          if (unmet.length === 0) { finish(); resolve(this.snapshot()) }
          return unmet
        } catch (error) {
          finish(); reject(error)
        }
      }
      const finish = () => { this.waiters.delete(check); clearTimeout(timer) }
      const unmet = check()
      if (unmet === undefined || unmet.length === 0) return
      this.waiters.add(check)
      timer = setTimeout(() => {
        finish()
        const error = new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${JSON.stringify(check())}`)
        error.snapshot = this.snapshot()
        reject(error)
      }, timeoutMs)
    })
  }

  destroy () {
    this.provider.destroy()
    this.doc.destroy()
  }
}

function stateVector (doc) {
  return Y.decodeStateVector(Y.encodeStateVector(doc))
}

function sharedType (doc, key, kind) {
  switch (kind) {
    case 'map': return doc.getMap(key)
    case 'array': return doc.getArray(key)
    case 'text': return doc.getText(key)
    default: throw new Error(`unknown shared type kind ${JSON.stringify(kind)}`)
  }
}

/** The conditions of `until` that do not hold yet (an empty list when all do). */
function unmetConditions (client, until) {
  const unmet = []
  const provider = client.provider
  for (const [condition, expected] of Object.entries(until)) {
    let met
    switch (condition) {
      case 'synced': met = provider.synced === expected; break
      case 'status': met = client.statuses.at(-1) === expected; break
      case 'syncEvents': met = client.syncEvents >= expected; break
      case 'closes': met = client.closes.length >= expected; break
      case 'terminal': met = client.terminal.length >= expected; break
      case 'denied': met = client.denied.length >= expected; break
      case 'json': met = deepEqual(client.snapshot().json, expected); break
      case 'clocks': {
        // Every {clientID: clock} in `expected` is covered by the doc's state vector.
        const sv = stateVector(client.doc)
        met = Object.entries(expected).every(([id, clock]) => (sv.get(Number(id)) ?? 0) >= clock)
        break
      }
      case 'present': {
        // {clientID: partial state}: each client is present with at least these fields.
        const states = provider.awareness.getStates()
        met = Object.entries(expected).every(([id, fields]) => {
          const state = states.get(Number(id))
          return state !== undefined && Object.entries(fields).every(([k, v]) => deepEqual(state[k], v))
        })
        break
      }
      case 'absent': {
        const states = provider.awareness.getStates()
        met = expected.every((id) => !states.has(id))
        break
      }
      default: throw new Error(`unknown wait condition ${JSON.stringify(condition)}`)
    }
    if (!met) unmet.push(condition)
  }
  return unmet
}

function deepEqual (a, b) {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b))
}

function canonical (value) {
  if (Array.isArray(value)) return value.map(canonical)
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]))
  }
  return value
}

const clients = new Map()

function get (name) {
  const client = clients.get(name)
  if (client === undefined) throw new Error(`no client named ${JSON.stringify(name)}`)
  return client
}

const commands = {
  create ({ name, ...options }) {
    if (clients.has(name)) throw new Error(`client ${JSON.stringify(name)} exists`)
    const client = new Client(name, options)
    clients.set(name, client)
    return client.snapshot()
  },
  connect ({ name }) { get(name).provider.connect(); return null },
  disconnect ({ name }) { get(name).provider.disconnect(); return null },
  reconnect ({ name }) {
    const provider = get(name).provider
    provider.disconnect()
    provider.connect()
    return null
  },
  destroy ({ name }) { get(name).destroy(); clients.delete(name); return null },
  read ({ name }) { return get(name).snapshot() },
  map_set ({ name, key, value, map = 'map' }) { get(name).doc.getMap(map).set(key, value); return null },
  array_push ({ name, values, array = 'array' }) { get(name).doc.getArray(array).push(values); return null },
  text_insert ({ name, index, content, text = 'text' }) {
    const type = get(name).doc.getText(text)
    type.insert(index ?? type.length, content)
    return null
  },
  awareness_set ({ name, state }) { get(name).provider.awareness.setLocalState(state); return null },
  wait ({ name, until, timeoutMs = DEFAULT_TIMEOUT_MS }) { return get(name).wait(until, timeoutMs) },
  outlast_reconnect ({ name }) {
    // A closed provider schedules its next attempt with setTimeout after at most
    // maxBackoffTime ms. Node runs timers in deadline order, so a timer armed now for longer
    // fires after that attempt would have started (`sockets` and `statuses` would show it).
    const client = get(name)
    return new Promise((resolve) => setTimeout(() => resolve(client.snapshot()), client.provider.maxBackoffTime + 50))
  },
  exit () { shutdown(0); return null }
}

function reply (message) {
  process.stdout.write(JSON.stringify(message) + '\n')
}

async function handle (line) {
  let request
  try {
    request = JSON.parse(line)
  } catch (error) {
    reply({ id: null, ok: false, error: `bad request line: ${error.message}` })
    return
  }
  const { id, cmd, ...args } = request
  try {
    const command = commands[cmd]
    if (command === undefined) throw new Error(`unknown command ${JSON.stringify(cmd)}`)
    const result = await command(args)
    reply({ id, ok: true, result: result ?? null })
  } catch (error) {
    reply({ id, ok: false, error: error.message, snapshot: error.snapshot ?? null })
  }
}

let exiting = false
function shutdown (code) {
  if (exiting) return
  exiting = true
  // Destroying a provider sends its `null` awareness state: a graceful goodbye.
  for (const client of clients.values()) client.destroy()
  clients.clear()
  // Let the reply and the goodbyes reach their sockets before leaving.
  setImmediate(() => process.stdout.write('', () => process.exit(code)))
}

const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
input.on('line', (line) => { if (line.trim() !== '') handle(line) })
input.on('close', () => shutdown(0))

reply({ event: 'ready', pid: process.pid, node: process.version })
