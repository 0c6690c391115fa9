// 3G first (issue 8): a large board loads on an old phone over 3G with one connection.
// A 360 x 740 touch phone, 4x CPU throttling, Fast 3G / Slow 3G emulated through CDP.

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer } from './lib/server.mjs'
import { startProxy } from './lib/proxy.mjs'
import { DESKTOP, PHONE, launch, openClassroom, touchStroke, waitOnline, wave } from './lib/browser.mjs'
import { seedStrokes } from './lib/synth.mjs'
import { FAST_3G, SLOW_3G, openThrottled, whenShown } from './lib/threeg.mjs'

let server
let browser
const contexts = []

before(async () => {
  ;[server, browser] = await Promise.all([startServer(), launch()])
})

after(async () => {
  for (const c of contexts) await c.close().catch(() => undefined)
  await browser?.close()
  await server?.stop()
})

async function context(options) {
  const ctx = await browser.newContext(options)
  contexts.push(ctx)
  return ctx
}

/** A tutor's desktop seeds `strokes` finished strokes and waits until the server has them. */
async function seed(cls, strokes) {
  const tutor = await openClassroom(await context(DESKTOP), server.base, cls, await server.token(cls, 'tutor', 'tutor-1', 'Ms Tutor'))
  await seedStrokes(tutor, strokes)
  await waitOnline(tutor, 60_000)
  await tutor.context().close()
}

async function phoneLoads(cls, strokes, network, timeout) {
  const token = await server.token(cls, 'student', 'student-1', 'Sam')
  const ctx = await context(PHONE)
  const url = `${server.base}/c/${cls}?token=${encodeURIComponent(token)}`
  const { page, sockets } = await openThrottled(ctx, url, { network })
  const shown = await whenShown(page, strokes, timeout)
  // The link stayed up: one board socket, never closed while loading.
  assert.equal(sockets.length, 1, `one board connection (saw ${sockets.length})`)
  assert.equal(sockets[0].isClosed(), false)
  // A reload shows the board from this device (IndexedDB) and asks only for the diff.
  let synced = 0
  page.on('websocket', (ws) => {
    if (!ws.url().split('?')[0].endsWith('/board')) return
    ws.on('framereceived', (f) => (synced += typeof f.payload === 'string' ? f.payload.length : f.payload.byteLength))
  })
  await page.reload()
  const reloaded = await whenShown(page, strokes, timeout)
  await waitOnline(page, 30_000)
  await ctx.close()
  return { ...shown, reload: { ...reloaded, boardBytesAfterReload: synced } }
}

/**
 * Bounds on single tasks at 4x CPU. The target is 200 ms (bench/reload.mjs and
 * bench/longtasks.mjs measure it); on this 2-core machine, shared with other test runs, a
 * task's wall-clock time includes waiting for a CPU, so the bounds leave room for that
 * and stay far below the freezes they guard against (3.1-4.2 s before slicing, ~1 s per
 * reload before the stored board was applied in slices, 300-650 ms for start-up).
 */
const STREAMING_TASK_MS = 400
const START_UP_TASK_MS = 400

test('Fast 3G, 4x CPU: a 5,000-stroke board shows with one connection, first strokes within 5 s', async () => {
  await seed('g3-fast', 5000)
  const shown = await phoneLoads('g3-fast', 5000, FAST_3G, 90_000)
  console.log(`Fast 3G 5,000 strokes: ${JSON.stringify(shown)}`)
  assert.ok(shown.firstMs < 5000, `first strokes at ${shown.firstMs} ms`)
  // Before: the page froze 3.1-4.2 s while the board loaded. Now each slice is a short
  // task (~70-200 ms at 4x CPU).
  assert.ok(shown.longestWhileStreamingMs < STREAMING_TASK_MS, `a ${shown.longestWhileStreamingMs} ms task while streaming`)
  // Start-up (the scripts, setting the board up, its first layout and paint) is split
  // into tasks too: before, one of 300-650 ms built the whole board at once.
  assert.ok(shown.longestStartUpMs < START_UP_TASK_MS, `a ${shown.longestStartUpMs} ms task before the first stroke`)
  // The reload right after (this device's copy not compacted yet) and its start-up.
  assert.ok(shown.reload.longestTaskMs < START_UP_TASK_MS, `a ${shown.reload.longestTaskMs} ms task while reloading`)
})

test('Slow 3G, 4x CPU: a 1,000-stroke board shows with one connection', async () => {
  await seed('g3-slow', 1000)
  const shown = await phoneLoads('g3-slow', 1000, SLOW_3G, 90_000)
  console.log(`Slow 3G 1,000 strokes: ${JSON.stringify(shown)}`)
})

test('reload at 4x CPU: a 5,000-stroke board comes from this device in short tasks (none near the old 1 s freeze) and the socket sends only the diff', async () => {
  const cls = 'g3-reload'
  await seed(cls, 5000)
  const ctx = await context(PHONE)
  const token = await server.token(cls, 'student', 'student-1', 'Sam')
  // The network is not what is measured here: no shaping, so the test is quick.
  const { page } = await openThrottled(ctx, `${server.base}/c/${cls}?token=${encodeURIComponent(token)}`, {
    network: { latency: 0, downloadThroughput: -1, uploadThroughput: -1 },
  })
  await whenShown(page, 5000, 120_000)
  await waitOnline(page, 60_000)
  // The first sync was stored as it came (8 KiB slices, one transaction per 50 ms); 2 s
  // later a worker rewrites it as 4 KiB slices. Wait for that, as a student reloading later
  // in the lesson would.
  await page.waitForFunction(() => window.inkroom.boardLink.local.settled, null, { timeout: 60_000, polling: 200 })
  let received = 0
  page.on('websocket', (ws) => {
    if (!ws.url().split('?')[0].endsWith('/board')) return
    ws.on('framereceived', (f) => (received += typeof f.payload === 'string' ? f.payload.length : f.payload.byteLength))
  })
  await page.reload()
  const shown = await whenShown(page, 5000, 120_000)
  await waitOnline(page, 60_000)
  const tasks = await page.evaluate(() => window.__load.tasks.map(([, d]) => d))
  console.log(`reload, 5,000 strokes, 4x CPU: ${JSON.stringify({ ...shown, tasksOver50ms: tasks, boardBytesAfterReload: received })}`)
  // Before: y-indexeddb applied the stored board in one task of ~1 s (954-1,586 ms). The
  // target is 200 ms, met in most quiet runs (bench/reload.mjs records the figures); the
  // bound leaves room for a loaded 2-core machine (see START_UP_TASK_MS).
  assert.ok(shown.longestTaskMs < START_UP_TASK_MS, `a ${shown.longestTaskMs} ms task while reloading (tasks over 50 ms: ${tasks})`)
  // The board filled in over several tasks, not at once.
  assert.ok(tasks.length > 1 || shown.longestTaskMs < 100, 'loaded in several tasks')
  // A reload costs a diff, not the document: the client sent the state vector of what it had.
  assert.ok(received < 20_000, `${received} bytes received on the board socket after reload`)
})

test('switching to a page of 3,000 strokes at 4x CPU: decoded and painted in short tasks', async () => {
  const cls = 'g3-pages'
  const tutor = await openClassroom(await context(DESKTOP), server.base, cls, await server.token(cls, 'tutor', 'tutor-1', 'Ms Tutor'))
  await tutor.locator('[data-action="add-page"]').click()
  const second = await tutor.evaluate(() => window.inkroom.page)
  await seedStrokes(tutor, 3000, 30, second)
  await waitOnline(tutor, 60_000)
  await tutor.context().close()
  const ctx = await context(PHONE)
  const token = await server.token(cls, 'student', 'student-1', 'Sam')
  const { page } = await openThrottled(ctx, `${server.base}/c/${cls}?token=${encodeURIComponent(token)}`, {
    network: { latency: 0, downloadThroughput: -1, uploadThroughput: -1 },
  })
  // The first page is empty; the second page's strokes arrive but are not decoded yet.
  await whenShown(page, 3000, 120_000)
  await waitOnline(page, 60_000)
  const before = await page.evaluate(() => performance.now())
  await page.locator('[data-action="next-page"]').click()
  await page.waitForFunction(
    (pg) => {
      // (Not board.pageShapes: it would decode what is left in one go.)
      const app = window.inkroom
      return app.page === pg && app.renderer.page === pg && !app.renderer.repainting
    },
    second,
    { timeout: 60_000, polling: 100 },
  )
  const tasks = await page.evaluate((t0) => window.__load.tasks.filter(([start]) => start >= t0).map(([, d]) => d), before)
  const switchMs = Math.round((await page.evaluate(() => performance.now())) - before)
  console.log(`page switch, 3,000 strokes, 4x CPU: ${JSON.stringify({ switchMs, tasksOver50ms: tasks })}`)
  assert.equal(await page.evaluate((pg) => window.inkroom.board.pageShapes(pg).length, second), 3000)
  // Before: the page's strokes were decoded in one go when it was shown (one task of
  // ~300-500 ms at 4x CPU for 3,000 strokes).
  const longest = Math.max(0, ...tasks)
  assert.ok(longest < START_UP_TASK_MS, `a ${longest} ms task while switching page (tasks over 50 ms: ${tasks})`)
})

test('offline: HTTP cache cleared, server unreachable, reload: the board opens from the device, the student draws, the stroke arrives when the server is back', async () => {
  const cls = 'g3-offline'
  await seed(cls, 300)
  const tutor = await openClassroom(await context(DESKTOP), server.base, cls, await server.token(cls, 'tutor', 'tutor-1', 'Ms Tutor'))
  // The phone reaches the server through a proxy: cut() makes the server unreachable
  // (every connection reset, new ones refused), as a stopped server is to a browser.
  const proxy = await startProxy(server.port)
  try {
    const ctx = await context(PHONE)
    const origin = `http://127.0.0.1:${proxy.port}`
    const phone = await openClassroom(ctx, origin, cls, await server.token(cls, 'student', 'student-1', 'Sam'))
    await phone.waitForFunction(() => window.inkroom.board.count() === 300, null, { timeout: 30_000 })
    // The worker has installed the whole shell of this release and controls the page.
    await phone.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 20_000 })
    const cdp = await ctx.newCDPSession(phone)
    await cdp.send('Network.clearBrowserCache')
    proxy.cut()

    await phone.reload()
    await phone.waitForFunction(() => (window.inkroom?.board?.count() ?? 0) === 300, null, { timeout: 30_000 })
    const shell = await phone.evaluate(async () => {
      const keys = await caches.keys()
      const cached = []
      for (const k of keys) for (const r of await (await caches.open(k)).keys()) cached.push(new URL(r.url).pathname)
      return cached
    })
    assert.ok(shell.some((p) => p.endsWith('.css')), 'styles are in the shell cache')
    assert.ok(shell.some((p) => /classroom-page-.*\.js$/.test(p)), 'the board script is in the shell cache')
    assert.ok(shell.includes('/icon-maskable-512.png'), 'icons are in the shell cache')

    await touchStroke(phone, wave(120, 160))
    await phone.waitForFunction(() => window.inkroom.board.count() === 301)
    const offlineState = await phone.evaluate(() => document.querySelector('[data-testid="status"]').dataset.state)
    assert.notEqual(offlineState, 'online')

    proxy.restore()
    const back = Date.now()
    await tutor.waitForFunction(() => window.inkroom.board.count() === 301, null, { timeout: 30_000 })
    console.log(`offline stroke reached the tutor ${Date.now() - back} ms after the server came back`)
    await waitOnline(phone, 30_000)

    // The installed app's start URL opens the student's last classroom, not an error.
    const app = await ctx.newPage()
    await app.goto(`${origin}/?app`)
    await app.waitForURL(`${origin}/c/${cls}`)
    await app.waitForFunction(() => (window.inkroom?.board?.count() ?? 0) === 301, null, { timeout: 30_000 })
  } finally {
    await proxy.close()
  }
})
