// Frame-time benchmark: drawing on a board of 5,000 strokes with the CPU throttled 4x
// (CDP Emulation.setCPUThrottlingRate), on a 360 px phone (DPR 2) and a desktop.
// Prints frames per second and frame-interval percentiles while a finger writes at
// 60 points/s; also the cost of a full repaint of the static layer (after a pan/zoom).
// Measured, printed, not asserted.
//
//   node bench/board_frames.mjs [--strokes 5000] [--rate 4] [--seconds 6]
//
// Dependencies come from tests/e2e (npm ci there); the frontend must be built.

import { parseArgs } from 'node:util'
import { startServer } from '../tests/e2e/lib/server.mjs'
import { DESKTOP, PHONE, launch, openClassroom } from '../tests/e2e/lib/browser.mjs'
import { installSynth, seedStrokes } from '../tests/e2e/lib/synth.mjs'

const { values: opts } = parseArgs({
  options: {
    strokes: { type: 'string', default: '5000' },
    rate: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '6' },
  },
})
const STROKES = Number(opts.strokes)
const RATE = Number(opts.rate)
const SECONDS = Number(opts.seconds)

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}

async function measure(browser, server, profileName, profile, token, classroom) {
  const ctx = await browser.newContext(profile)
  const page = await openClassroom(ctx, server.base, classroom, token)
  await page.waitForFunction((n) => window.inkroom.board.count() >= n, STROKES, { timeout: 120_000 })
  await installSynth(page)
  const cdp = await ctx.newCDPSession(page)
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: RATE })
  // A full static repaint of the visible page (what a pan or zoom costs once it settles):
  // time until the sliced repaint completes, and the longest frame meanwhile.
  const repaint = await page.evaluate(async () => {
    const r = window.inkroom.renderer
    const frame = () => new Promise((res) => requestAnimationFrame(res))
    const out = []
    for (let i = 0; i < 3; i++) {
      while (r.repainting) await frame()
      const t0 = performance.now()
      r.invalidate(true)
      let last = t0
      let worst = 0
      do {
        const t = await frame()
        worst = Math.max(worst, t - last)
        last = t
      } while (r.repainting)
      out.push({ totalMs: Math.round(performance.now() - t0), worstFrameMs: Math.round(worst) })
    }
    return out
  })
  const result = await page.evaluate(async (seconds) => {
    const r = window.inkroom.renderer
    const paints = []
    r.onFrame = (ms) => paints.push(ms)
    const stamps = []
    let on = true
    const loop = (t) => {
      stamps.push(t)
      if (on) requestAnimationFrame(loop)
    }
    requestAnimationFrame(loop)
    const staticBefore = r.staticPaints
    const synth = await window.__synth({ seconds, hz: 60, kind: 'touch', hover: false })
    on = false
    r.onFrame = null
    const intervals = stamps.slice(1).map((t, i) => t - stamps[i])
    return { synth, intervals, paints, staticRepaints: r.staticPaints - staticBefore, shapes: window.inkroom.board.count() }
  }, SECONDS)
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 1 })
  await ctx.close()
  const { intervals, paints, synth } = result
  const duration = intervals.reduce((a, b) => a + b, 0)
  const fps = (intervals.length / duration) * 1000
  const line = {
    profile: profileName,
    shapes: result.shapes,
    cpuThrottle: RATE,
    fps: Math.round(fps * 10) / 10,
    frameP50ms: +pct(intervals, 50).toFixed(1),
    frameP95ms: +pct(intervals, 95).toFixed(1),
    frameMaxMs: +Math.max(...intervals).toFixed(1),
    framesOver33ms: intervals.filter((x) => x > 33.4).length,
    frames: intervals.length,
    paintP50ms: +pct(paints, 50).toFixed(2),
    paintP95ms: +pct(paints, 95).toFixed(2),
    staticRepaintsWhileDrawing: result.staticRepaints,
    fullRepaint: repaint,
    pointsDrawn: synth.points,
    strokesDrawn: synth.strokes,
  }
  console.log(JSON.stringify(line))
  return line
}

const server = await startServer()
const browser = await launch()
try {
  const classroom = 'bench-frames'
  const token = await server.token(classroom, 'tutor', 'bench-tutor', 'Bench')
  // Seed once, through a page: the server keeps the 5,000 strokes for both profiles.
  const seedCtx = await browser.newContext(DESKTOP)
  const seeder = await openClassroom(seedCtx, server.base, classroom, token)
  const seedMs = await seedStrokes(seeder, STROKES)
  await seeder.waitForFunction(() => document.querySelector('[data-testid="status"]').dataset.pending === '0', null, { timeout: 120_000 })
  console.log(`# seeded ${STROKES} strokes in ${Math.round(seedMs)} ms; CPU throttling ${RATE}x; writing ${SECONDS} s at 60 points/s`)
  await seedCtx.close()
  const rows = []
  rows.push(await measure(browser, server, 'phone-360-dpr2', PHONE, token, classroom))
  rows.push(await measure(browser, server, 'desktop-1280', DESKTOP, token, classroom))
  for (const r of rows) {
    console.log(`${r.profile}: ${r.fps} fps while drawing on ${r.shapes} shapes at ${RATE}x CPU throttle (frame p50 ${r.frameP50ms} ms, p95 ${r.frameP95ms} ms; paint p95 ${r.paintP95ms} ms; full repaint ${r.fullRepaint.map((x) => `${x.totalMs} ms (worst frame ${x.worstFrameMs} ms)`).join(', ')})`)
  }
} finally {
  await browser.close()
  await server.stop()
}
