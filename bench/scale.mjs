// Load driver for bench/scale.py: stock y-websocket clients over raw `ws`, three modes.
//
// Usage: node bench/scale.mjs @config.json   (scale.py writes the config)
//
//   storm  One writer fills a room with a board document of about `doc_bytes` (strokes in
//          the `shapes` map, as the web client writes them, built from a fixed seed so all
//          servers get identical bytes) and stays connected. A checker joins until the
//          server hands back the whole document. Then `joiners` clients open at once; for
//          each, the time from `new WebSocket` to the server's SyncStep2, and the server's
//          CPU over the storm.
//   idle   One host connection per room opens the rooms, then `connections` clients
//          connect (spread over the rooms) and sync: server CPU for those accepts, RSS
//          before and after, then `idle_s` seconds idle with the server's CPU over them.
//   hold   Connects like `idle`, prints `ready` on stdout and holds the connections until
//          stdin closes or SIGTERM (10,000 idle connections beside a classroom load).
//
// Every client does the stock handshake: sends SyncStep1 (empty state vector) on open,
// answers the server's SyncStep1 with an empty SyncStep2, and is synced on the server's
// SyncStep2. Clients may bind to several loopback source addresses (`local_addresses`),
// so that many connections never run out of ephemeral ports.
// The last stdout line is one JSON object with the results.

import fs from 'node:fs'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { cpuTicks, descendants, machineTicks, rssKb } from './procstat.mjs'

const arg = process.argv[2]
const cfg = JSON.parse(arg.startsWith('@') ? fs.readFileSync(arg.slice(1), 'utf8') : arg)
const CLK_TCK = cfg.clk_tck ?? 100

const MSG_SYNC = 0
const SYNC_STEP1 = 0
const SYNC_STEP2 = 1
const SYNC_UPDATE = 2

function syncMessage (type, payload) {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MSG_SYNC)
  encoding.writeVarUint(enc, type)
  encoding.writeVarUint8Array(enc, payload)
  return encoding.toUint8Array(enc)
}
const EMPTY_STEP1 = syncMessage(SYNC_STEP1, new Uint8Array([0]))
const EMPTY_STEP2 = syncMessage(SYNC_STEP2, new Uint8Array([0, 0]))

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const log = (...args) => process.stderr.write('[scale] ' + args.join(' ') + '\n')
const serverPids = () => [].concat(cfg.server_pid).flatMap((pid) => descendants(pid))
const cpuSeconds = (pids) => cpuTicks(pids) / CLK_TCK

let stopped = false
let addressTurn = 0

// One stock client. `doc`: a Y.Doc to send our state from and apply the server's into
// (the writer, the checker); without one the client is empty and only keeps what it is
// told to (`keep`: the received sync payloads, for a verifier).
class Client {
  constructor (url, { doc = null, keep = false, want = 0 } = {}) {
    this.url = url
    this.want = want // bytes of sync payload that make the whole document
    this.tFull = 0
    this.doc = doc
    this.keep = keep
    this.kept = []
    this.ws = null
    this.synced = false
    this.tOpen = 0
    this.tStep2 = 0
    this.step2Bytes = 0
    this.syncBytes = 0 // step2 + update payloads received
    this.closedEarly = false
    this.error = null
  }

  connect () {
    return new Promise((resolve, reject) => {
      const opts = { perMessageDeflate: false }
      const addrs = cfg.local_addresses
      if (addrs && addrs.length) opts.localAddress = addrs[addressTurn++ % addrs.length]
      this.tOpen = performance.now()
      const ws = new WebSocket(this.url, opts)
      this.ws = ws
      ws.binaryType = 'nodebuffer'
      ws.on('open', () => {
        ws.send(this.doc ? syncMessage(SYNC_STEP1, Y.encodeStateVector(this.doc)) : EMPTY_STEP1)
      })
      ws.on('message', (data) => {
        if (data[0] !== MSG_SYNC) return // awareness, auth
        const dec = decoding.createDecoder(data)
        decoding.readVarUint(dec)
        const type = decoding.readVarUint(dec)
        const payload = decoding.readVarUint8Array(dec)
        if (type === SYNC_STEP1) {
          ws.send(this.doc ? syncMessage(SYNC_STEP2, Y.encodeStateAsUpdate(this.doc, payload)) : EMPTY_STEP2)
          return
        }
        this.syncBytes += payload.length
        if (this.doc) Y.applyUpdate(this.doc, payload)
        else if (this.keep) this.kept.push(payload)
        const now = performance.now()
        if (type === SYNC_STEP2 && !this.synced) {
          this.synced = true
          this.tStep2 = now
          this.step2Bytes = payload.length
        }
        // Whole: SyncStep2 seen and about the document's bytes received, whether the
        // server sends it in one SyncStep2 or as updates (slices) around it.
        if (this.synced && !this.tFull && this.syncBytes >= 0.98 * this.want) {
          this.tFull = now
          resolve(this)
        }
      })
      ws.on('error', (err) => { if (!this.synced) { this.error = err.message; reject(err) } })
      ws.on('close', (code) => {
        if (!this.synced) { this.error ??= `closed ${code} before sync`; reject(new Error(this.error)) }
        else if (!stopped) this.closedEarly = true
      })
    })
  }
}

async function connectAll (clients, concurrency) {
  let next = 0
  const worker = async () => {
    while (next < clients.length) await clients[next++].connect()
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, clients.length) }, worker))
}

function withDeadline (promise, seconds, what) {
  let timer
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result after ${seconds} s`)), seconds * 1000)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function quantile (sorted, p) {
  if (!sorted.length) return null
  const v = sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)]
  return Number.isFinite(v) ? v : null // null: beyond the deadline
}

function finish (result) {
  stopped = true
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}

// -- storm ----------------------------------------------------------------------------

// A deterministic pseudo-random sequence (mulberry32), so every server gets the same doc.
function rng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// Writes strokes the way the web client does (docs/board-model.md): a Y.Map per shape in
// the `shapes` root with short keys and a Y.Array of integer deltas. One transaction per
// `batch` strokes, each sent as its own update; until the state reaches `bytes`.
function buildBoard (doc, bytes) {
  const random = rng(13)
  const shapes = doc.getMap('shapes')
  const pages = doc.getMap('pages')
  doc.transact(() => pages.set('p0', new Y.Map([['o', 'a0']])))
  let n = 0
  const batch = 50
  while (Y.encodeStateAsUpdate(doc).length < bytes) {
    doc.transact(() => {
      for (let i = 0; i < batch; i++, n++) {
        const s = new Y.Map()
        s.set('t', 'p')
        s.set('pg', 'p0')
        s.set('z', 'a' + n.toString(36))
        s.set('a', 'tutor')
        s.set('c', '#1e3a8a')
        s.set('w', 3)
        s.set('x', Math.floor(random() * 1600))
        s.set('y', Math.floor(random() * 1200))
        const pts = new Y.Array()
        const points = []
        const count = 40 + Math.floor(random() * 80)
        for (let k = 0; k < count; k++) {
          points.push(Math.floor(random() * 15) - 7, Math.floor(random() * 15) - 7, Math.floor(random() * 16))
        }
        pts.push(points)
        s.set('pts', pts)
        s.set('pr', 1)
        s.set('done', true)
        shapes.set(doc.clientID.toString(36) + '.' + n, s)
      }
    })
  }
  return n
}

async function storm () {
  const urls = cfg.urls // writer, checker, then one per joiner
  const writerDoc = new Y.Doc()
  writerDoc.clientID = 424242 // fixed: identical bytes for every server
  const writer = new Client(urls[0], { doc: writerDoc })
  await withDeadline(writer.connect(), cfg.connect_timeout_s, 'writer sync')
  const updates = []
  writerDoc.on('update', (u) => updates.push(u))
  const strokes = buildBoard(writerDoc, cfg.doc_bytes)
  const state = Y.encodeStateAsUpdate(writerDoc)
  const tSend = performance.now()
  for (const u of updates) {
    writer.ws.send(syncMessage(SYNC_UPDATE, u))
    // Keep the socket's buffer bounded, as a browser's client would.
    while (writer.ws.bufferedAmount > 1 << 20) await sleep(5)
  }
  // The server holds the document when a newcomer gets all of it.
  const want = Y.encodeStateVector(writerDoc)
  const deadline = performance.now() + cfg.preload_timeout_s * 1000
  let loaded = false
  while (!loaded && performance.now() < deadline) {
    const checker = new Client(urls[1], { doc: new Y.Doc() })
    await withDeadline(checker.connect(), cfg.connect_timeout_s, 'checker sync')
    loaded = Buffer.compare(Buffer.from(Y.encodeStateVector(checker.doc)), Buffer.from(want)) === 0
    checker.ws.terminate()
    if (!loaded) await sleep(250)
  }
  if (!loaded) throw new Error('the server never held the whole preloaded document')
  log(`preloaded ${strokes} strokes, ${state.length} bytes in ${updates.length} updates, ` +
    `${((performance.now() - tSend) / 1000).toFixed(1)} s`)
  await sleep(cfg.settle_s * 1000)

  const pids = serverPids()
  // One join alone first: its time and CPU, a floor for every joiner of the storm.
  const solo = new Client(urls[1], { want: state.length })
  const soloCpu0 = cpuSeconds(pids)
  await withDeadline(solo.connect(), cfg.storm_timeout_s, 'solo join')
  const soloMs = solo.tFull - solo.tOpen
  await sleep(cfg.tail_s * 1000)
  const soloCpuMs = (cpuSeconds(pids) - soloCpu0) * 1000
  solo.ws.terminate()
  await sleep(cfg.settle_s * 1000)

  const joiners = urls.slice(2).map((url, i) => new Client(url, { keep: i === 0, want: state.length }))
  const rss0 = rssKb(pids)
  const cpu0 = cpuSeconds(pids)
  const machine0 = machineTicks()
  const self0 = process.cpuUsage()
  const t0 = performance.now()
  // All at once: every WebSocket is opened in this one turn of the event loop. A joiner
  // not whole by the deadline counts as a timeout (infinitely slow) in the percentiles.
  const settled = Promise.allSettled(joiners.map((c) => c.connect()))
  let timer
  await Promise.race([settled, new Promise((resolve) => { timer = setTimeout(resolve, cfg.storm_timeout_s * 1000) })])
  clearTimeout(timer)
  const tLast = performance.now()
  await sleep(cfg.tail_s * 1000) // what the server still does for the joins after sending
  const cpu1 = cpuSeconds(pids)
  const machine1 = machineTicks()
  const self1 = process.cpuUsage(self0)
  const rss1 = rssKb(pids)
  const wall = (performance.now() - t0) / 1000

  const failed = joiners.filter((c) => c.error)
  const ok = joiners.filter((c) => c.tFull)
  const late = (t) => (t ? t : Infinity)
  const times = joiners.map((c) => late(c.tStep2) - c.tOpen).sort((a, b) => a - b)
  const full = joiners.map((c) => late(c.tFull) - c.tOpen).sort((a, b) => a - b)
  // The verifier's step2 (and anything after it) must rebuild the writer's document.
  const check = new Y.Doc()
  for (const p of joiners[0].kept) Y.applyUpdate(check, p)
  const verified = joiners[0].synced &&
    Buffer.compare(Buffer.from(Y.encodeStateVector(check)), Buffer.from(want)) === 0 &&
    check.getMap('shapes').size === strokes
  const closedEarly = joiners.filter((c) => c.closedEarly).length
  for (const c of joiners) if (c.ws) c.ws.terminate()
  writer.ws.terminate()
  finish({
    mode: 'storm',
    doc_bytes: state.length,
    strokes,
    joiners: joiners.length,
    synced: ok.length,
    failed: failed.length,
    timed_out: joiners.length - ok.length - failed.length,
    storm_timeout_s: cfg.storm_timeout_s,
    first_error: failed.length ? failed[0].error : null,
    step2_p50_ms: quantile(times, 0.5),
    step2_p99_ms: quantile(times, 0.99),
    step2_max_ms: quantile(times, 1),
    // To the whole document: the same as step2 unless the server sends part of the
    // document after its SyncStep2.
    full_p50_ms: quantile(full, 0.5),
    full_p99_ms: quantile(full, 0.99),
    all_synced_s: (tLast - t0) / 1000,
    // Joiners whose SyncStep2 alone carried less than 90 % of the document (the rest
    // came as updates around it: Inkroom's slices come before its SyncStep2).
    partial_step2: ok.filter((c) => c.step2Bytes < 0.9 * state.length).length,
    min_sync_bytes: ok.length ? Math.min(...ok.map((c) => c.syncBytes)) : null,
    solo_join_ms: soloMs,
    solo_join_cpu_ms: soloCpuMs,
    server_cpu_s: cpu1 - cpu0,
    storm_s: wall,
    server_cpu_ms_per_join: ok.length ? (cpu1 - cpu0) * 1000 / ok.length : null,
    server_rss_kb_before: rss0,
    server_rss_kb_after: rss1,
    load_cpu_util: (self1.user + self1.system) / 1e6 / wall,
    other_cpu_util: (machine1.busy - machine0.busy) / CLK_TCK / wall - (cpu1 - cpu0) / wall -
      (self1.user + self1.system) / 1e6 / wall,
    verified,
    closed_early: closedEarly
  })
}

// -- idle / hold ------------------------------------------------------------------------

// rooms: [{name, urls: [host url, then one per connection]}]
function clientsOf (rooms) {
  const hosts = rooms.map((r) => new Client(r.urls[0]))
  const rest = []
  const perRoom = rooms.map((r) => r.urls.slice(1))
  // Interleave the rooms, as a school's joins would come.
  for (let i = 0; perRoom.some((u) => i < u.length); i++) {
    for (const u of perRoom) if (i < u.length) rest.push(new Client(u[i]))
  }
  return { hosts, rest }
}

async function connectRooms (hosts, rest) {
  // The first client of each room joins alone: pycrdt-websocket 0.16.5 never answers a
  // client that joins while the room is still starting (YRoom.start holds its lock).
  for (const c of hosts) await c.connect()
  await connectAll(rest, cfg.concurrency)
}

async function idle () {
  const { hosts, rest } = clientsOf(cfg.rooms)
  await withDeadline(connectAll(hosts, 1), cfg.connect_timeout_s, 'room hosts')
  await sleep(cfg.settle_s * 1000)
  const pids = serverPids()
  const rss0 = rssKb(pids)
  const cpu0 = cpuSeconds(pids)
  const t0 = performance.now()
  await withDeadline(connectAll(rest, cfg.concurrency), cfg.connect_timeout_s, 'connections')
  const connectS = (performance.now() - t0) / 1000
  await sleep(cfg.tail_s * 1000)
  const cpu1 = cpuSeconds(pids)
  const rssSynced = rssKb(pids)
  // Idle: nobody writes; the server's pings and the clients' pongs are all that moves.
  const machine0 = machineTicks()
  const self0 = process.cpuUsage()
  const t1 = performance.now()
  await sleep(cfg.idle_s * 1000)
  const idleS = (performance.now() - t1) / 1000
  const cpu2 = cpuSeconds(pids)
  const machine1 = machineTicks()
  const self1 = process.cpuUsage(self0)
  const rss1 = rssKb(pids)
  const all = hosts.concat(rest)
  const closedEarly = all.filter((c) => c.closedEarly).length
  for (const c of all) c.ws.terminate()
  const n = rest.length
  finish({
    mode: 'idle',
    rooms: hosts.length,
    connections: n,
    connect_s: connectS,
    accept_cpu_s: cpu1 - cpu0,
    accept_cpu_ms_per_conn: (cpu1 - cpu0) * 1000 / n,
    server_rss_kb_before: rss0,
    server_rss_kb_synced: rssSynced,
    server_rss_kb_after_idle: rss1,
    rss_kb_per_conn: (rss1 - rss0) / n,
    rss_kb_per_conn_synced: (rssSynced - rss0) / n,
    idle_s: idleS,
    idle_cpu_s: cpu2 - cpu1,
    idle_cpu_pct: (cpu2 - cpu1) / idleS * 100,
    load_cpu_util: (self1.user + self1.system) / 1e6 / idleS,
    other_cpu_util: (machine1.busy - machine0.busy) / CLK_TCK / idleS - (cpu2 - cpu1) / idleS -
      (self1.user + self1.system) / 1e6 / idleS,
    closed_early: closedEarly,
    verified: closedEarly === 0
  })
}

async function hold () {
  const { hosts, rest } = clientsOf(cfg.rooms)
  const t0 = performance.now()
  await withDeadline(connectRooms(hosts, rest), cfg.connect_timeout_s, 'connections')
  const all = hosts.concat(rest)
  process.stdout.write(JSON.stringify({ ready: all.length, connect_s: (performance.now() - t0) / 1000 }) + '\n')
  const self0 = process.cpuUsage()
  const t1 = performance.now()
  const end = () => {
    const closedEarly = all.filter((c) => c.closedEarly).length
    const self1 = process.cpuUsage(self0)
    for (const c of all) c.ws.terminate()
    finish({
      mode: 'hold',
      connections: all.length,
      closed_early: closedEarly,
      held_s: (performance.now() - t1) / 1000,
      load_cpu_s: (self1.user + self1.system) / 1e6
    })
  }
  process.on('SIGTERM', end)
  process.stdin.on('end', end)
  process.stdin.resume()
  // Bounded: a forgotten holder ends by itself.
  setTimeout(end, cfg.hold_max_s * 1000)
}

const modes = { storm, idle, hold }
modes[cfg.mode]().catch((err) => {
  log('failed:', err && err.stack ? err.stack : err)
  process.exit(2)
})
