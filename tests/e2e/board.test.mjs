// End-to-end tests of the classroom client in Debian's Chromium against `inkroom serve`.
// Run: npm test (in tests/e2e). One server and one browser for the file; each test has
// its own classroom, so tests do not see each other's documents.

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { startServer, waitFor } from './lib/server.mjs'
import { startProxy } from './lib/proxy.mjs'
import { DESKTOP, PHONE, launch, mouseStroke, openClassroom, shapesOf, touchStroke, waitOnline, wave } from './lib/browser.mjs'
import { readDocument } from './lib/yclient.mjs'

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

async function tokens(classroom) {
  const [tutor, student] = await Promise.all([
    server.token(classroom, 'tutor', 'tutor-1', 'Ms Tutor'),
    server.token(classroom, 'student', 'student-1', 'Sam'),
  ])
  return { tutor, student }
}

/** Waits until `page` holds exactly `n` shapes (finished), and returns them. */
async function expectShapes(page, n, message) {
  await page.waitForFunction(
    (count) => {
      const shapes = [...window.inkroom.board.shapes.values()]
      return shapes.length === count && shapes.every((m) => m.get('done') === true)
    },
    n,
    { timeout: 15_000, polling: 50 },
  ).catch((err) => {
    throw new Error(`${message}: ${err.message}`)
  })
  return shapesOf(page)
}

const byAuthor = (shapes, user) => Object.values(shapes).filter((s) => s.a === user)

test('a desktop and a 360 px touch phone draw, both see both strokes, and a stock y-websocket client sees them too', async () => {
  const cls = 'e2e-draw'
  const t = await tokens(cls)
  const tutor = await openClassroom(await context(DESKTOP), server.base, cls, t.tutor)
  const phone = await openClassroom(await context(PHONE), server.base, cls, t.student)
  assert.equal(await phone.evaluate(() => window.innerWidth), 360)

  await mouseStroke(tutor, wave(200, 200))
  await touchStroke(phone, wave(200, 600))

  const a = await expectShapes(tutor, 2, 'tutor sees both strokes')
  const b = await expectShapes(phone, 2, 'phone sees both strokes')
  assert.deepEqual(a, b)
  assert.equal(byAuthor(a, 'tutor-1').length, 1)
  assert.equal(byAuthor(a, 'student-1').length, 1)
  for (const s of Object.values(a)) {
    assert.equal(s.t, 'p')
    assert.ok(s.pts.length >= 2 * 10, 'the stroke kept its points')
    assert.ok(s.pts.every(Number.isInteger), 'points are integers')
  }
  // Both are drawn on screen, not only stored.
  const painted = await phone.evaluate(() => {
    const c = window.inkroom.renderer.staticCanvas
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
    let dark = 0
    for (let i = 0; i < d.length; i += 4) if (d[i] < 120 && d[i + 1] < 120 && d[i + 2] < 120) dark++
    return dark
  })
  assert.ok(painted > 50, `strokes are painted on the phone (${painted} dark pixels)`)

  await tutor.waitForFunction(() => window.inkroom.board.shapes.size === 2 && document.querySelector('[data-testid="status"]').dataset.pending === '0')
  const node = await readDocument(server.ws, `${cls}/board`, t.tutor)
  const fromNode = Object.fromEntries(
    Object.entries(node.shapes).map(([id, s]) => [id, { t: s.t, a: s.a, pg: s.pg ?? 'p0', done: s.done === true, pts: s.pts }]),
  )
  assert.deepEqual(fromNode, a, 'the stock client reads exactly what the browsers drew')
})

test('a student cut off by a dead link draws, comes back, and nothing is lost or duplicated', async () => {
  const cls = 'e2e-offline'
  const t = await tokens(cls)
  const proxy = await startProxy(server.port)
  try {
    const tutor = await openClassroom(await context(DESKTOP), server.base, cls, t.tutor)
    const student = await openClassroom(await context(PHONE), `http://127.0.0.1:${proxy.port}`, cls, t.student)
    await touchStroke(student, wave(100, 100))
    await expectShapes(tutor, 1, 'first stroke arrives')
    await waitOnline(student)

    // A black hole: the socket stays "open", nothing gets through, no FIN, no RST.
    proxy.blackhole()
    const cutAt = Date.now()
    await student.waitForFunction(
      () => ['offline', 'connecting'].includes(document.querySelector('[data-testid="status"]').dataset.state),
      null,
      { timeout: 15_000, polling: 100 },
    )
    const detectMs = Date.now() - cutAt
    assert.ok(detectMs < 10_000, `dead link noticed in ${detectMs} ms`)

    await touchStroke(student, wave(100, 400))
    await touchStroke(student, wave(100, 700, 30))
    await mouseStroke(tutor, wave(900, 300))
    await student.waitForFunction(
      () => Number(document.querySelector('[data-testid="status"]').dataset.pending) >= 2,
      null,
      { timeout: 5_000 },
    )
    const waiting = await student.locator('[data-testid="status"]').textContent()
    assert.match(waiting, /changes? waiting/)
    assert.equal((await shapesOf(tutor)) && Object.keys(await shapesOf(tutor)).length, 2, 'offline strokes stay local')

    proxy.restore()
    await waitOnline(student, 20_000)
    const a = await expectShapes(tutor, 4, 'tutor receives the offline strokes')
    const b = await expectShapes(student, 4, 'student receives the tutor stroke')
    assert.deepEqual(a, b, 'both converge to the same board')
    assert.equal(byAuthor(a, 'student-1').length, 3, 'no student stroke lost or duplicated')
    assert.equal(byAuthor(a, 'tutor-1').length, 1)
    const node = await readDocument(server.ws, `${cls}/board`, t.tutor)
    assert.equal(Object.keys(node.shapes).length, 4, 'the server holds all four strokes')
    for (const [id, s] of Object.entries(a)) assert.deepEqual(node.shapes[id].pts, s.pts, `stroke ${id} intact on the server`)
    console.log(`# dead link detected in ${detectMs} ms`)
  } finally {
    await proxy.close()
  }
})

test('the status says sending or sent, then saved, once the server has stored a stroke', async () => {
  const cls = 'e2e-saved'
  const t = await tokens(cls)
  const student = await openClassroom(await context(PHONE), server.base, cls, t.student)
  await student.evaluate(() => {
    const el = document.querySelector('[data-testid="status"]')
    window.__saves = []
    new MutationObserver(() => {
      const s = el.dataset.save
      if (window.__saves[window.__saves.length - 1] !== s) window.__saves.push(s)
    }).observe(el, { attributes: true, attributeFilter: ['data-save'] })
  })
  await touchStroke(student, wave(120, 200))
  await student.waitForFunction(() => document.querySelector('[data-testid="status"]').dataset.save === 'saved', null, {
    timeout: 15_000,
  })
  const saves = await student.evaluate(() => window.__saves)
  assert.ok(saves.includes('sending') || saves.includes('sent'), `went through sending/sent: ${saves.join(' > ')}`)
  assert.equal(saves[saves.length - 1], 'saved')
  assert.equal(await student.locator('[data-testid="status"]').textContent(), 'Saved')
  const node = await readDocument(server.ws, `${cls}/board`, t.tutor)
  assert.equal(Object.keys(node.shapes).length, 1, 'the server holds the stroke')
})

test('a locked board rejects a student stroke', async () => {
  const cls = 'e2e-lock'
  const t = await tokens(cls)
  const tutor = await openClassroom(await context(DESKTOP), server.base, cls, t.tutor)
  const student = await openClassroom(await context(DESKTOP), server.base, cls, t.student)
  await tutor.locator('[data-action="lock"]').check()
  await student.waitForFunction(() => document.querySelector('.app').dataset.locked === 'true', null, { timeout: 10_000 })
  assert.ok(await student.locator('[data-tool="pen"]').isDisabled(), 'drawing tools are disabled')

  // Through the UI: a stroke gesture only pans.
  await mouseStroke(student, wave(300, 300))
  assert.equal(Object.keys(await shapesOf(student)).length, 0, 'the UI draws nothing while locked')

  // Around the UI (a modified client): the server is the backstop.
  await student.evaluate(() => {
    const app = window.inkroom
    app.boardDoc.transact(() => {
      app.board.create({ t: 'p', pg: 'p0', z: app.board.nextZ(), a: 'student-1', c: '#000', w: 6, x: 10, y: 10, done: true }, [0, 0, 5, 5])
    }, Symbol.for('forced'))
  })
  await student.waitForFunction(() => window.inkroom.boardLink.state.denied !== null, null, { timeout: 10_000 })
  const node = await readDocument(server.ws, `${cls}/board`, t.tutor)
  assert.equal(Object.keys(node.shapes).length, 0, 'the server never accepted the stroke')
  // The server applies it and reverts it at once (collab/room.py: later updates of the
  // student build on it), so the tutor may hold it for an instant, never longer.
  await tutor.waitForFunction(() => window.inkroom.board.shapes.size === 0, null, { timeout: 5_000 })

  // Unlocked, the student draws again.
  await tutor.locator('[data-action="lock"]').uncheck()
  await student.waitForFunction(() => document.querySelector('.app').dataset.locked === 'false')
  await student.locator('[data-tool="pen"]').click()
  await mouseStroke(student, wave(300, 500))
  await tutor.waitForFunction(
    () => [...window.inkroom.board.shapes.values()].some((m) => m.get('a') === 'student-1' && m.get('y') > 400 && m.get('done')),
    null,
    { timeout: 10_000 },
  )
})

test('undo removes only my own stroke, redo brings it back', async () => {
  const cls = 'e2e-undo'
  const t = await tokens(cls)
  const tutor = await openClassroom(await context(DESKTOP), server.base, cls, t.tutor)
  const student = await openClassroom(await context(PHONE), server.base, cls, t.student)
  await mouseStroke(tutor, wave(200, 200))
  await expectShapes(student, 1, 'tutor stroke arrives')
  await touchStroke(student, wave(200, 500))
  await expectShapes(tutor, 2, 'student stroke arrives')

  await student.locator('[data-action="undo"]').click()
  const a = await expectShapes(tutor, 1, 'student undo reaches the tutor')
  assert.deepEqual(Object.values(a).map((s) => s.a), ['tutor-1'], "the tutor's stroke survives the student's undo")
  // Nothing else of the student's to undo: a second undo changes nothing.
  assert.ok(await student.locator('[data-action="undo"]').isDisabled())

  await student.locator('[data-action="redo"]').click()
  const b = await expectShapes(tutor, 2, 'redo restores the stroke')
  assert.equal(byAuthor(b, 'student-1').length, 1)
})

test('follow-me moves the student to the tutor page and view', async () => {
  const cls = 'e2e-follow'
  const t = await tokens(cls)
  const tutor = await openClassroom(await context(DESKTOP), server.base, cls, t.tutor)
  const student = await openClassroom(await context(PHONE), server.base, cls, t.student)
  await tutor.locator('[data-action="add-page"]').click()
  const tutorPage = await tutor.evaluate(() => window.inkroom.page)
  assert.notEqual(tutorPage, 'p0')
  assert.equal(await student.evaluate(() => window.inkroom.page), 'p0', 'without follow-me the student stays')

  await tutor.locator('[data-action="follow"]').check()
  await student.waitForFunction((pg) => window.inkroom.page === pg, tutorPage, { timeout: 10_000 })
  assert.equal(await student.locator('[data-testid="page-label"]').textContent(), '2 / 2')

  // The tutor zooms in; the student's view follows (zoom is relative to page width).
  const box = await tutor.locator('.layer-live').boundingBox()
  await tutor.mouse.move(box.x + box.width / 2, box.y + box.height / 2)
  await tutor.keyboard.down('Control')
  await tutor.mouse.wheel(0, -120)
  await tutor.keyboard.up('Control')
  const want = await waitFor(
    async () => {
      const f = await tutor.evaluate(() => window.inkroom.classroom.followMe)
      return f && f.zoom > 1.5 ? f : null
    },
    { message: 'the tutor publishes the zoomed view' },
  )
  await student.waitForFunction(
    (z) => {
      const r = window.inkroom.renderer
      return Math.abs(r.view.scale / r.fitScale() - z) < 0.01
    },
    want.zoom,
    { timeout: 10_000 },
  )
})

test('hand raise and chat reach the tutor; the roster shows who is here', async () => {
  const cls = 'e2e-class'
  const t = await tokens(cls)
  const tutor = await openClassroom(await context(DESKTOP), server.base, cls, t.tutor)
  const student = await openClassroom(await context(DESKTOP), server.base, cls, t.student)
  await tutor.waitForSelector('[data-testid="roster"] li[data-user="student-1"]')
  await student.locator('[data-action="hand"]').click()
  await tutor.waitForSelector('[data-testid="hands"] li[data-user="student-1"]')
  await student.locator('.chat-form input').fill('Is x = 3?')
  await student.locator('.chat-form input').press('Enter')
  await tutor.waitForFunction(() => document.querySelector('[data-testid="chat"]').textContent.includes('Is x = 3?'))
  await tutor.locator('[data-action="lower-hand"]').click()
  await student.waitForFunction(() => document.querySelector('[data-action="hand"]').getAttribute('aria-pressed') === 'false')
  await student.close()
  // The server drops a closed connection's presence at once, not after 30 s.
  await tutor.waitForFunction(() => !document.querySelector('[data-testid="roster"] li[data-user="student-1"]'), null, { timeout: 5_000 })
})
