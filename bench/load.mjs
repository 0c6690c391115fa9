// Load generator for bench/relay.py: one process, many y-websocket clients over raw `ws`.
//
// Usage: node bench/load.mjs '<json config>'   (relay.py builds the config)
//
// Every room has one writer and R readers. Each client does the y-websocket handshake
// (answers the server's SyncStep1 with SyncStep2, sends its own SyncStep1 and waits for
// the server's SyncStep2) before any update is written. Writers append one batch of
// small integers to a Y.Array per update (one Item of ITEMS entries, ~50 bytes on the
// wire) and send it as a sync Update message.
//
// Counting is by content, not by frames: a reader reads the writer's end clock from each
// received update (Y.parseUpdateMeta) and counts the batches it newly covers, so a
// server that merges several updates into one message is counted correctly, and a gap
// (a lost update) is detected. One reader per room (the verifier) also applies every
// message to a real Y.Doc; at the end its array must equal what the writer wrote.
//
// Latency: writer and readers live in this process, so the writer records
// performance.now() per batch and a reader computes receive time minus send time.
//
// CPU: utime+stime of the server process tree from /proc/PID/stat at the start and end
// of the measured window, read here so that the window is exactly the counting window.
// The last stdout line is one JSON object with the results.

import fs from 'node:fs'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { cpuTicks, descendants, machineTicks, rssKb } from './procstat.mjs'

// The config is JSON, inline or as @file (30 rooms of per-connection tokens exceed argv).
const arg = process.argv[2]
const cfg = JSON.parse(arg.startsWith('@') ? fs.readFileSync(arg.slice(1), 'utf8') : arg)
const ITEMS = cfg.items ?? 8 // integers per update, the first is the sequence number
const CLK_TCK = cfg.clk_tck ?? 100
const HIST_RES_MS = 0.01 // latency histogram bucket
const HIST_MAX_MS = 20000
const hist = new Uint32Array(Math.ceil(HIST_MAX_MS / HIST_RES_MS) + 1)
let histOverflow = 0

const MSG_SYNC = 0
const SYNC_STEP1 = 0
const SYNC_STEP2 = 1
const SYNC_UPDATE = 2
const EMPTY_STEP2 = syncMessage(SYNC_STEP2, new Uint8Array([0, 0]))
const EMPTY_STEP1 = syncMessage(SYNC_STEP1, new Uint8Array([0]))

function syncMessage (type, payload) {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MSG_SYNC)
  encoding.writeVarUint(enc, type)
  encoding.writeVarUint8Array(enc, payload)
  return encoding.toUint8Array(enc)
}

function log (...args) {
  process.stderr.write('[load] ' + args.join(' ') + '\n')
}

// -- state ------------------------------------------------------------------------------

const state = {
  measuring: false,
  t0: 0,
  t1: 0,
  delivered: 0, // updates newly covered at readers during the window
  frames: 0, // update-carrying frames received by readers during the window
  bytesIn: 0,
  gaps: 0,
  stopped: false,
  timeline: [] // updates delivered per TIMELINE_MS slot of the window (stalls show as dips)
}
const TIMELINE_MS = 250

function record (latencyMs) {
  const b = Math.round(latencyMs / HIST_RES_MS)
  if (b < 0) hist[0]++
  else if (b >= hist.length) histOverflow++
  else hist[b]++
}

function percentile (p) {
  let total = histOverflow
  for (let i = 0; i < hist.length; i++) total += hist[i]
  if (total === 0) return null
  const target = Math.ceil(total * p)
  let seen = 0
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]
    if (seen >= target) return i * HIST_RES_MS
  }
  return HIST_MAX_MS
}

class Room {
  constructor (name, url, readers, readerUrl) {
    this.name = name
    this.url = url
    // Readers may sit on another node than the writer, each with a URL (a token, a user)
    // of its own (bench/multinode.py).
    this.readerUrls = readerUrl ?? [url]
    this.nextReader = 0
    this.nReaders = readers
    this.sendTimes = [] // per batch sequence number
    this.acks = [] // readers that have batch s
    this.fully = 0 // batches every reader has
    this.sent = 0
    this.writer = null
    this.readers = []
    this.writerClient = 0
  }

  ack (seq) {
    const a = ++this.acks[seq]
    if (a === this.nReaders && seq === this.fully) {
      while (this.fully < this.sent && this.acks[this.fully] === this.nReaders) this.fully++
      if (cfg.mode === 'window') this.writer.pump()
    }
  }
}

class Client {
  constructor (room, role) {
    this.room = room
    this.role = role // 'writer' | 'reader' | 'verifier'
    this.synced = false
    this.covered = 0 // writer clock covered
    this.ws = null
    this.doc = role === 'reader' ? null : new Y.Doc()
    this.onSynced = null
    this.closedEarly = false
  }

  connect () {
    return new Promise((resolve, reject) => {
      const urls = this.room.readerUrls
      const url = this.role === 'writer' ? this.room.url : urls[this.room.nextReader++ % urls.length]
      const ws = new WebSocket(url, { perMessageDeflate: false })
      this.ws = ws
      ws.binaryType = 'nodebuffer'
      this.onSynced = resolve
      ws.on('open', () => {
        // Our own SyncStep1 (readers are empty: the empty state vector).
        ws.send(this.doc ? syncMessage(SYNC_STEP1, Y.encodeStateVector(this.doc)) : EMPTY_STEP1)
      })
      ws.on('message', (data) => this.onMessage(data))
      ws.on('error', (err) => { if (!this.synced) reject(err); else log('ws error', this.room.name, err.message) })
      ws.on('close', (code) => {
        if (!this.synced) reject(new Error(`closed ${code} before sync`))
        else if (!state.stopped) { this.closedEarly = true; log('closed early', this.room.name, this.role, code) }
      })
    })
  }

  onMessage (data) {
    if (data[0] !== MSG_SYNC) return // awareness, auth: not part of the measurement
    const dec = decoding.createDecoder(data)
    decoding.readVarUint(dec)
    const syncType = decoding.readVarUint(dec)
    const payload = decoding.readVarUint8Array(dec)
    if (syncType === SYNC_UPDATE) {
      if (this.role !== 'writer') this.onUpdate(payload, data.length)
    } else if (syncType === SYNC_STEP1) {
      this.ws.send(this.doc ? syncMessage(SYNC_STEP2, Y.encodeStateAsUpdate(this.doc, payload)) : EMPTY_STEP2)
    } else if (syncType === SYNC_STEP2) {
      if (this.doc) Y.applyUpdate(this.doc, payload)
      if (!this.synced) {
        this.synced = true
        this.onSynced()
      }
    }
  }

  onUpdate (payload, frameBytes) {
    const now = performance.now()
    if (this.doc) Y.applyUpdate(this.doc, payload)
    const room = this.room
    const meta = Y.parseUpdateMeta(payload)
    const from = meta.from.get(room.writerClient)
    const to = meta.to.get(room.writerClient)
    if (to === undefined) return
    if (to <= this.covered) return
    if (from > this.covered) state.gaps++
    const first = Math.max(from, this.covered) / ITEMS
    const last = to / ITEMS
    this.covered = to
    const inWindow = state.measuring
    if (inWindow) {
      const slot = Math.floor((now - state.t0) / TIMELINE_MS)
      state.timeline[slot] = (state.timeline[slot] || 0) + (last - first)
      state.frames++
      state.bytesIn += frameBytes
      state.delivered += last - first
    }
    for (let s = first; s < last; s++) {
      if (inWindow) record(now - room.sendTimes[s])
      room.ack(s)
    }
  }
}

class Writer extends Client {
  constructor (room) {
    super(room, 'writer')
    this.array = this.doc.getArray('strokes')
    this.pending = null
    this.doc.on('update', (update) => { this.pending = update })
    this.x = 0
  }

  sendOne () {
    const room = this.room
    const seq = room.sent
    const batch = [seq]
    for (let i = 1; i < ITEMS; i++) batch.push(((this.x += 7) % 4000) + (i & 1 ? 0 : 1000))
    this.array.push(batch)
    const msg = syncMessage(SYNC_UPDATE, this.pending)
    room.sendTimes.push(performance.now())
    room.acks.push(0)
    room.sent++
    this.ws.send(msg)
  }

  pump () {
    if (state.stopped || !this.running) return
    const room = this.room
    while (room.sent - room.fully < cfg.window) this.sendOne()
  }

  startRate (rate, phase) {
    // Send what is due by an ideal schedule; timers fire every ~tickMs.
    this.running = true
    const start = performance.now() + phase
    const tickMs = Math.max(1, Math.min(20, 1000 / rate))
    const tick = () => {
      if (state.stopped || !this.running) return
      const due = Math.floor(((performance.now() - start) / 1000) * rate)
      while (this.room.sent < due) this.sendOne()
      setTimeout(tick, tickMs)
    }
    setTimeout(tick, Math.max(0, phase))
  }

  startWindow () {
    this.running = true
    this.pump()
  }
}

// -- run ----------------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function connectAll (clients, concurrency) {
  let next = 0
  const worker = async () => {
    while (next < clients.length) {
      const c = clients[next++]
      await c.connect()
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

async function main () {
  const rooms = cfg.rooms.map((r) => new Room(r.name, r.url, cfg.readers, r.reader_urls))
  const all = []
  for (const room of rooms) {
    room.writer = new Writer(room)
    room.writerClient = room.writer.doc.clientID
    for (let i = 0; i < cfg.readers; i++) {
      room.readers.push(new Client(room, i === 0 ? 'verifier' : 'reader'))
    }
    // Readers first, then the writer, so that nobody joins after the first update.
    all.push(...room.readers, room.writer)
  }
  const deadline = setTimeout(() => { log('handshake timeout'); process.exit(3) }, cfg.connect_timeout_s * 1000)
  const tConnect = performance.now()
  // The first client of each room joins alone: pycrdt-websocket 0.16.5 never answers a
  // client that joins while the room is still starting (YRoom.start holds its lock).
  for (const room of rooms) await room.readers[0].connect()
  await connectAll(all.filter((c) => !c.synced && c.ws === null), 20)
  clearTimeout(deadline)
  log(`${all.length} clients synced in ${(performance.now() - tConnect).toFixed(0)} ms`)

  const pids = [].concat(cfg.server_pid).flatMap((pid) => descendants(pid))
  await sleep(200)

  rooms.forEach((room, i) => {
    if (cfg.mode === 'rate') room.writer.startRate(cfg.rate, (i / rooms.length) * (1000 / cfg.rate))
    else room.writer.startWindow()
  })
  await sleep(cfg.warmup_s * 1000)

  const cpu0 = cpuTicks(pids)
  const machine0 = machineTicks()
  const self0 = process.cpuUsage()
  state.t0 = performance.now()
  state.measuring = true
  await sleep(cfg.measure_s * 1000)
  state.measuring = false
  state.t1 = performance.now()
  const cpu1 = cpuTicks(pids)
  const machine1 = machineTicks()
  const self1 = process.cpuUsage(self0)
  const rss = rssKb(pids)
  const elapsed = (state.t1 - state.t0) / 1000

  // Stop writing, let in-flight updates arrive, then check the verifiers' documents.
  for (const room of rooms) room.writer.running = false
  const drainUntil = performance.now() + cfg.drain_s * 1000
  while (performance.now() < drainUntil && rooms.some((r) => r.fully < r.sent)) await sleep(20)
  let verified = true
  let missing = 0
  for (const room of rooms) {
    missing += room.sent - room.fully
    const arr = room.readers[0].doc.getArray('strokes')
    if (arr.length !== room.sent * ITEMS) verified = false
    else {
      for (let s = 0; s < room.sent; s += Math.max(1, Math.floor(room.sent / 50))) {
        if (arr.get(s * ITEMS) !== s) { verified = false; break }
      }
    }
  }
  const closedEarly = all.filter((c) => c.closedEarly).length
  state.stopped = true
  for (const c of all) c.ws.terminate()

  const sent = rooms.reduce((n, r) => n + r.sent, 0)
  const result = {
    clients: all.length,
    elapsed_s: elapsed,
    updates_sent_total: sent,
    delivered: state.delivered,
    delivered_per_s: state.delivered / elapsed,
    frames_per_s: state.frames / elapsed,
    updates_per_frame: state.frames ? state.delivered / state.frames : null,
    bytes_per_frame: state.frames ? state.bytesIn / state.frames : null,
    server_cpu_s: (cpu1 - cpu0) / CLK_TCK,
    server_cpu_us_per_update: state.delivered ? ((cpu1 - cpu0) / CLK_TCK) * 1e6 / state.delivered : null,
    server_cpu_us_per_frame: state.frames ? ((cpu1 - cpu0) / CLK_TCK) * 1e6 / state.frames : null,
    server_cpu_util: (cpu1 - cpu0) / CLK_TCK / elapsed,
    load_cpu_util: (self1.user + self1.system) / 1e6 / elapsed,
    // Everything else on the machine (other users' jobs), in cores: the machine is shared.
    other_cpu_util: (machine1.busy - machine0.busy) / CLK_TCK / elapsed -
      (cpu1 - cpu0) / CLK_TCK / elapsed - (self1.user + self1.system) / 1e6 / elapsed,
    p50_ms: percentile(0.5),
    p99_ms: percentile(0.99),
    max_ms: percentile(1.0),
    server_rss_kb: rss,
    server_pids: pids,
    gaps: state.gaps,
    missing_after_drain: missing,
    verified,
    closed_early: closedEarly,
    timeline_ms: TIMELINE_MS,
    timeline: Array.from({ length: Math.ceil(elapsed * 1000 / TIMELINE_MS) }, (_, i) => state.timeline[i] || 0)
  }
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}

main().catch((err) => {
  log('failed:', err && err.stack ? err.stack : err)
  process.exit(2)
})
