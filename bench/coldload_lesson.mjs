// A lesson's worth of ink for bench/coldload.py: stock y-websocket clients (the ones the
// e2e tests use) drawing strokes the way the web client writes them (frontend/src/tools.ts
// flushInk, frontend/src/board.ts create/appendInk): a stroke is a Y.Map in `shapes` with an
// append-only `pts` Y.Array, and every flush appends one packed chunk of zigzag varints
// (frontend/src/ink.ts packInts) of the points drawn since the last one.
//
// The web client flushes every 100 ms while the pen moves (6-12 points at 60-120 Hz); here
// each writer flushes every `interval_ms`, so a lesson's hour fits in a minute, with the
// same updates on the wire. Writing stops once the writers together sent `target_bytes` of
// updates; then a fresh reader syncs until it holds every writer's last clock (the server
// has applied everything it was sent). The last stdout line is JSON:
// {sent_bytes, updates, strokes, seconds}.
//
// Usage: node bench/coldload_lesson.mjs @config.json
//   config: {urls: [ws url per writer], reader_url, target_bytes, interval_ms, seed}

import fs from 'node:fs'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
// Both from tests/e2e's install, so y-websocket and this script share one copy of Yjs.
import * as Y from '../tests/e2e/node_modules/yjs/dist/yjs.mjs'
import { WebsocketProvider } from '../tests/e2e/node_modules/y-websocket/src/y-websocket.js'

const arg = process.argv[2]
const cfg = JSON.parse(arg.startsWith('@') ? fs.readFileSync(arg.slice(1), 'utf8') : arg)
const TARGET = cfg.target_bytes
const INTERVAL = cfg.interval_ms ?? 2
let seed = cfg.seed ?? 7
const rand = () => {
  // mulberry32: the same lesson on every run
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1))

function packInts(ints) {
  const out = new Uint8Array(ints.length * 5)
  let n = 0
  for (const i of ints) {
    let z = ((i << 1) ^ (i >> 31)) >>> 0
    while (z >= 0x80) {
      out[n++] = (z & 0x7f) | 0x80
      z >>>= 7
    }
    out[n++] = z
  }
  return out.slice(0, n)
}

function connect(url, doc) {
  // The token is in the url's query: y-websocket appends the room name to the base.
  const u = new URL(url)
  const name = u.pathname.replace(/^\/ws\//, '')
  const base = `${u.protocol}//${u.host}/ws`
  return new WebsocketProvider(base, name, doc, {
    WebSocketPolyfill: WebSocket,
    params: Object.fromEntries(u.searchParams),
    disableBc: true,
  })
}

function synced(provider, ms = 30_000) {
  return new Promise((resolve, reject) => {
    if (provider.synced) return resolve()
    const timer = setTimeout(() => reject(new Error(`no sync within ${ms} ms`)), ms)
    provider.on('sync', (s) => {
      if (s) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
}

let sent = 0
let updates = 0
let strokes = 0

class Writer {
  constructor(url, user) {
    this.doc = new Y.Doc()
    this.user = user
    this.provider = connect(url, this.doc)
    this.doc.on('update', (update, origin) => {
      if (origin !== this.provider) {
        sent += update.length
        updates++
      }
    })
    this.stroke = null
  }

  // One flush of the web client: a new stroke with its first points, or more points.
  flush() {
    const shapes = this.doc.getMap('shapes')
    const points = int(6, 12)
    const ints = []
    for (let i = 0; i < points; i++) ints.push(int(-9, 9), int(-9, 9), int(-3, 3))
    if (this.stroke === null || this.stroke.left <= 0) {
      const id = `${this.user}-${strokes++}`
      this.doc.transact(() => {
        if (this.stroke !== null) this.stroke.map.set('done', true)
        const m = new Y.Map()
        const fields = { t: 'p', pg: 'p0', z: `a${strokes}`, a: this.user, c: '#1e3a8a', w: 3, x: int(0, 1600), y: int(0, 1200), pr: 1 }
        for (const [k, v] of Object.entries(fields)) m.set(k, v)
        const arr = new Y.Array()
        arr.push([packInts(ints)])
        m.set('pts', arr)
        shapes.set(id, m)
        this.stroke = { map: m, arr, left: int(4, 20) }
      })
    } else {
      this.doc.transact(() => this.stroke.arr.push([packInts(ints)]))
      this.stroke.left--
    }
  }
}

const writers = cfg.urls.map((url, i) => new Writer(url, `w${i}`))
await Promise.all(writers.map((w) => synced(w.provider)))
const started = performance.now()
await new Promise((resolve) => {
  const tick = () => {
    for (const w of writers) w.flush()
    if (sent >= TARGET) return resolve()
    setTimeout(tick, INTERVAL)
  }
  tick()
})
const seconds = (performance.now() - started) / 1000
for (const w of writers) if (w.stroke) w.doc.transact(() => w.stroke.map.set('done', true))

// Everything sent has reached the server once a fresh reader holds each writer's clock.
const reader = new Y.Doc()
const deadline = performance.now() + 120_000
let complete = false
while (!complete && performance.now() < deadline) {
  const provider = connect(cfg.reader_url, reader)
  await synced(provider, 60_000)
  complete = writers.every((w) => Y.getState(reader.store, w.doc.clientID) === Y.getState(w.doc.store, w.doc.clientID))
  provider.destroy()
  if (!complete) await new Promise((r) => setTimeout(r, 200))
}
for (const w of writers) w.provider.destroy()
if (!complete) {
  console.error('the server never held every update the writers sent')
  process.exit(1)
}
console.log(JSON.stringify({ sent_bytes: sent, updates, strokes, seconds: +seconds.toFixed(2), shapes: reader.getMap('shapes').size }))
process.exit(0)
