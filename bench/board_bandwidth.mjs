// Uplink bandwidth of one user writing continuously: 60 points per second (2 s strokes,
// 0.3 s pen-up gaps in which the pointer hovers, so live cursors are included), on a
// 3G-shaped link (150 ms each way, 384 kbit/s up, 1.6 Mbit/s down, shaped by the TCP proxy,
// because CDP network emulation does not slow WebSockets down). A second participant
// watches, as in a lesson.
//
// Bytes are counted by a TCP proxy between the writer's browser and the server: the
// WebSocket frames with their headers (no TLS, no TCP/IP headers: an estimate of those
// is printed separately). CDP WebSocket frame events split them into ink and presence.
//
//   node bench/board_bandwidth.mjs [--seconds 30] [--idle 20] [--static-dir other/dist]

import { parseArgs } from 'node:util'
import { startServer } from '../tests/e2e/lib/server.mjs'
import { startProxy } from '../tests/e2e/lib/proxy.mjs'
import { DESKTOP, PHONE, launch, openClassroom, waitOnline } from '../tests/e2e/lib/browser.mjs'
import { installSynth } from '../tests/e2e/lib/synth.mjs'

const { values: opts } = parseArgs({
  options: { seconds: { type: 'string', default: '30' }, idle: { type: 'string', default: '20' }, 'static-dir': { type: 'string' } },
})
const SECONDS = Number(opts.seconds)
const IDLE = Number(opts.idle)
const THREE_G = { latencyMs: 150, upBps: 384_000 / 8, downBps: 1_600_000 / 8 }
// Per WebSocket frame on a real 3G link: TLS 1.3 record (22 B) + TCP/IPv4 with timestamps (52 B).
const WIRE_OVERHEAD = 74

function classify(payloadB64) {
  const b = Buffer.from(payloadB64, 'base64')
  // y-websocket: 0 sync (1 = step 2 / 2 = update), 1 awareness, 3 query awareness.
  return { kind: b[0] === 0 ? 'ink' : b[0] === 1 ? 'presence' : 'other', bytes: b.length }
}

const wsHeader = (n) => 2 + 4 + (n > 125 ? 2 : 0) // client frames are masked

async function run(browser, server, proxy, { kind, token, observerToken, classroom }) {
  const observerCtx = await browser.newContext(DESKTOP)
  const observer = await openClassroom(observerCtx, server.base, classroom, observerToken)
  const ctx = await browser.newContext(PHONE)
  const page = await openClassroom(ctx, `http://127.0.0.1:${proxy.port}`, classroom, token)
  await installSynth(page)
  const cdp = await ctx.newCDPSession(page)
  await cdp.send('Network.enable')
  const sent = { ink: { frames: 0, bytes: 0 }, presence: { frames: 0, bytes: 0 }, other: { frames: 0, bytes: 0 } }
  let counting = false
  cdp.on('Network.webSocketFrameSent', (e) => {
    if (!counting) return
    const c = classify(e.response.payloadData)
    sent[c.kind].frames += 1
    sent[c.kind].bytes += c.bytes + wsHeader(c.bytes)
  })
  await waitOnline(page)
  const before = await observer.evaluate(() => window.inkroom.board.count())
  proxy.resetCounters()
  counting = true
  const t0 = Date.now()
  const synth = await page.evaluate((o) => window.__synth(o), { seconds: SECONDS, hz: 60, kind, hover: true })
  const elapsed = (Date.now() - t0) / 1000
  const up = proxy.counters.up
  const down = proxy.counters.down
  counting = false
  await waitOnline(page, 30_000)
  await observer.waitForFunction((n) => window.inkroom.board.count() >= n, before + synth.strokes, { timeout: 30_000 })
  const rtt = await page.evaluate(() => window.inkroom.boardLink.state.rttMs)
  const frames = sent.ink.frames + sent.presence.frames + sent.other.frames
  const row = {
    input: kind === 'pen' ? 'pen (x, y, pressure)' : 'finger (x, y)',
    seconds: +elapsed.toFixed(1),
    points: synth.points,
    strokes: synth.strokes,
    upBytesPerSec: Math.round(up / elapsed),
    inkBytesPerSec: Math.round(sent.ink.bytes / elapsed),
    presenceBytesPerSec: Math.round(sent.presence.bytes / elapsed),
    framesPerSec: +(frames / elapsed).toFixed(1),
    onWireEstimateBytesPerSec: Math.round((up + frames * WIRE_OVERHEAD) / elapsed),
    downBytesPerSec: Math.round(down / elapsed),
    bytesPerPoint: +(up / synth.points).toFixed(1),
    probeRttMs: rtt,
  }
  await ctx.close()
  await observerCtx.close()
  return row
}

async function idle(browser, server, proxy, { token, observerToken, classroom }) {
  const observerCtx = await browser.newContext(DESKTOP)
  await openClassroom(observerCtx, server.base, classroom, observerToken)
  const ctx = await browser.newContext(PHONE)
  const page = await openClassroom(ctx, `http://127.0.0.1:${proxy.port}`, classroom, token)
  await waitOnline(page)
  proxy.resetCounters()
  const t0 = Date.now()
  // Idle on purpose: nothing happens but heartbeats. Measured over a fixed window.
  await new Promise((r) => setTimeout(r, IDLE * 1000))
  const elapsed = (Date.now() - t0) / 1000
  const row = { input: 'idle (heartbeats only)', seconds: +elapsed.toFixed(1), upBytesPerSec: +(proxy.counters.up / elapsed).toFixed(1), downBytesPerSec: +(proxy.counters.down / elapsed).toFixed(1) }
  await ctx.close()
  await observerCtx.close()
  return row
}

// --static-dir: another build of the web client (e.g. the one before a change).
const server = await startServer({ staticDir: opts['static-dir'] ?? null })
const browser = await launch()
const proxy = await startProxy(server.port)
proxy.shape(THREE_G)
try {
  const rows = []
  for (const kind of ['touch', 'pen']) {
    const classroom = `bench-bw-${kind}`
    const [token, observerToken] = await Promise.all([
      server.token(classroom, 'student', 'writer', 'Writer'),
      server.token(classroom, 'tutor', 'watcher', 'Watcher'),
    ])
    rows.push(await run(browser, server, proxy, { kind, token, observerToken, classroom }))
    console.log(JSON.stringify(rows[rows.length - 1]))
  }
  {
    const classroom = 'bench-bw-idle'
    const [token, observerToken] = await Promise.all([
      server.token(classroom, 'student', 'writer', 'Writer'),
      server.token(classroom, 'tutor', 'watcher', 'Watcher'),
    ])
    rows.push(await idle(browser, server, proxy, { token, observerToken, classroom }))
    console.log(JSON.stringify(rows[rows.length - 1]))
  }
  for (const r of rows.filter((r) => r.points)) {
    console.log(`${r.input}: ${r.upBytesPerSec} B/s up (ink ${r.inkBytesPerSec}, presence ${r.presenceBytesPerSec}; ${r.framesPerSec} frames/s; ~${r.onWireEstimateBytesPerSec} B/s with TLS+TCP/IP) for ${Math.round(r.points / r.seconds)} points/s; target <= 2048 B/s: ${r.upBytesPerSec <= 2048 ? 'met' : 'NOT met'}`)
  }
} finally {
  await proxy.close()
  await browser.close()
  await server.stop()
}
