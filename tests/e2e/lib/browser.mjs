// Debian's Chromium through playwright-core (no browser download), and input helpers.

import { chromium } from 'playwright-core'
import { inkInts } from './yclient.mjs'

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
]

export async function launch(extraArgs = []) {
  return chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...extraArgs], headless: true })
}

/** Fake camera and microphone, no permission prompt, and WebRTC on 127.0.0.1. */
export const CALL_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
]

export const PHONE = {
  viewport: { width: 360, height: 740 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  userAgent:
    'Mozilla/5.0 (Linux; Android 9; SM-J600F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36',
}
export const DESKTOP = { viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 }

/** Opens a classroom link and waits for both documents to be online. */
export async function openClassroom(context, base, classroom, token, { online = true } = {}) {
  const page = await context.newPage()
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`))
  await page.goto(`${base}/c/${classroom}?token=${encodeURIComponent(token)}`)
  await page.waitForFunction(() => !!window.inkroom)
  if (online) await waitOnline(page)
  return page
}

export async function waitOnline(page, timeout = 15_000) {
  await page.waitForFunction(
    () => {
      const el = document.querySelector('[data-testid="status"]')
      return el && el.dataset.state === 'online' && el.dataset.pending === '0'
    },
    null,
    { timeout, polling: 50 },
  )
}

/** Page coordinates (board units) to viewport coordinates of the page's stage. */
export async function toScreen(page, points) {
  return page.evaluate((pts) => {
    const r = window.inkroom.renderer
    const box = r.liveCanvas.getBoundingClientRect()
    return pts.map(([x, y]) => [box.left + (x - r.view.ox) * r.view.scale, box.top + (y - r.view.oy) * r.view.scale])
  }, points)
}

/** A wavy stroke of `n` points in board units starting at (x, y). */
export function wave(x, y, n = 24, dx = 12, amp = 20) {
  return Array.from({ length: n }, (_, i) => [x + i * dx, y + Math.sin(i / 3) * amp])
}

/** Draws with the mouse through CDP (real input events, pointerType "mouse"). */
export async function mouseStroke(page, points) {
  const pts = await toScreen(page, points)
  await page.mouse.move(pts[0][0], pts[0][1])
  await page.mouse.down()
  for (const [x, y] of pts.slice(1)) await page.mouse.move(x, y)
  await page.mouse.up()
}

/** Draws with one finger through CDP touch events (pointerType "touch"). */
export async function touchStroke(page, points) {
  const pts = await toScreen(page, points)
  const cdp = await page.context().newCDPSession(page)
  const touch = (type, [x, y]) =>
    cdp.send('Input.dispatchTouchEvent', {
      type,
      touchPoints: type === 'touchEnd' ? [] : [{ x, y, id: 1, radiusX: 4, radiusY: 4, force: 1 }],
    })
  await touch('touchStart', pts[0])
  for (const p of pts.slice(1)) await touch('touchMove', p)
  await touch('touchEnd', pts[pts.length - 1])
  await cdp.detach()
}

/** Two-finger pinch on the stage: fingers move apart by `spread` CSS px. */
export async function pinch(page, cx, cy, spread = 120, steps = 8) {
  const cdp = await page.context().newCDPSession(page)
  const at = (d) => [
    { x: cx - 30 - d, y: cy, id: 1 },
    { x: cx + 30 + d, y: cy, id: 2 },
  ]
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: at(0) })
  for (let i = 1; i <= steps; i++) {
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: at((spread / 2) * (i / steps)) })
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] })
  await cdp.detach()
}

/** Plain JSON of the board's shapes: {id: {t, a, pg, done, pts (ints)}}. */
export async function shapesOf(page) {
  const raw = await page.evaluate(() => {
    const out = {}
    for (const [id, m] of window.inkroom.board.shapes.entries()) {
      const pts = m.get('pts')
      // Packed chunks (Uint8Array) cross as plain arrays of bytes, numbers as numbers.
      const items = pts ? pts.toArray().map((x) => (x instanceof Uint8Array ? { b: [...x] } : x)) : null
      out[id] = { t: m.get('t'), a: m.get('a'), pg: m.get('pg') ?? 'p0', done: m.get('done') === true, pts: items }
    }
    return out
  })
  for (const s of Object.values(raw)) {
    if (s.pts) s.pts = inkInts(s.pts.map((x) => (typeof x === 'number' ? x : Uint8Array.from(x.b))))
  }
  return raw
}
