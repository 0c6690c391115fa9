// The admin inspector's replay view in Debian's Chromium against `inkroom serve`: two
// authors draw at two moments (stock y-websocket clients), an admin signs in at `/`, opens
// the replay of the board, moves the timeline slider to each moment and sees the board as
// it was then: the shapes the authors' clients held at that moment, coloured by author.
// A second page added later is picked in the page list and drawn at its own moments (and
// shown as not there yet before it was added).

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { promisify } from 'node:util'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { ROOT, startServer, waitFor } from './lib/server.mjs'
import { DESKTOP, launch, mouseStroke, openClassroom, wave } from './lib/browser.mjs'
import { readDocument } from './lib/yclient.mjs'

const execFileP = promisify(execFile)
const INKROOM = process.env.INKROOM_BIN || path.join(ROOT, '.venv/bin/inkroom')
const PASSWORD = 'a long admin password'
let server
let browser
const providers = []

before(async () => {
  ;[server, browser] = await Promise.all([startServer(), launch()])
})

after(async () => {
  for (const p of providers) {
    p.awareness.destroy()
    p.destroy()
    p.doc.destroy()
  }
  await browser?.close()
  await server?.stop()
})

async function writer(classroom, user) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(server.ws, `${classroom}/board`, doc, {
    WebSocketPolyfill: WebSocket,
    params: { token: await server.token(classroom, 'tutor', user) },
    disableBc: true,
  })
  providers.push(provider)
  await waitFor(() => provider.synced, { message: `${user} synced` })
  return { doc, provider, user }
}

function stroke(w, id, x, y, pg = 'p0') {
  const m = new Y.Map()
  for (const [k, v] of Object.entries({ t: 'p', pg, z: `a${id}`, a: w.user, c: '#000000', w: 4, x, y, done: true }))
    m.set(k, v)
  const pts = new Y.Array()
  pts.push([0, 0, 40, 10, 40, -10, 30, 20])
  m.set('pts', pts)
  w.doc.getMap('shapes').set(id, m)
}

const idsOf = (doc) => [...doc.getMap('shapes').keys()].sort()
const idsOn = (doc, pg) => [...doc.getMap('shapes').entries()].filter(([, m]) => m.get('pg') === pg).map(([id]) => id).sort()

function addPage(w, id, o) {
  w.doc.transact(() => {
    for (const [pid, po] of [['p0', 'a0'], [id, o]]) {
      if (w.doc.getMap('pages').has(pid)) continue
      const m = new Y.Map()
      m.set('o', po)
      w.doc.getMap('pages').set(pid, m)
    }
  })
}

test('the replay slider renders the board at two moments as the clients saw it', async () => {
  await execFileP(INKROOM, ['user', 'add', '--email', 'root@example.org', '--role', 'admin', '--data-dir', server.dataDir], {
    env: { ...process.env, INKROOM_PASSWORD: PASSWORD, INKROOM_SECRET: server.secret },
  })
  const ada = await writer('e2e-replay', 'ada')
  const bo = await writer('e2e-replay', 'bo')

  stroke(ada, 's1', 100, 100)
  await waitFor(() => idsOf(bo.doc).length === 1, { message: 'bo sees s1' })
  const first = { at: new Date().toISOString(), ids: idsOf(bo.doc) }
  stroke(bo, 's2', 400, 300)
  stroke(ada, 's3', 800, 600)
  await waitFor(() => idsOf(ada.doc).length === 3 && idsOf(bo.doc).length === 3, { message: 'both see three' })
  const second = { at: new Date().toISOString(), ids: idsOf(ada.doc) }
  assert.deepEqual(first.ids, ['s1'])
  assert.deepEqual(second.ids, ['s1', 's2', 's3'])
  // A second page, drawn on by bo.
  addPage(ada, 'p1', 'a1')
  await waitFor(() => bo.doc.getMap('pages').has('p1'), { message: 'bo sees page 2' })
  stroke(bo, 's4', 200, 200, 'p1')
  await waitFor(() => idsOf(ada.doc).length === 4, { message: 'ada sees s4' })
  const third = { at: new Date().toISOString(), p0: idsOn(ada.doc, 'p0'), p1: idsOn(ada.doc, 'p1') }
  assert.deepEqual(third, { at: third.at, p0: ['s1', 's2', 's3'], p1: ['s4'] })

  const ctx = await browser.newContext(DESKTOP)
  const page = await ctx.newPage()
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`))
  page.on('dialog', (d) => d.dismiss()) // restore asks first; this test never restores
  await page.goto(`${server.base}/`)
  await page.locator('form[data-testid="signin"], form[data-testid="signup"]').waitFor()
  await page.getByLabel('Email').fill('root@example.org')
  await page.getByLabel('Password').fill(PASSWORD)
  await page.locator('form[data-testid="signin"] button[type="submit"]').click()
  await page.getByTestId('admin-link').click()
  await page.waitForURL(/\/admin/)
  await page.getByLabel('Document').fill('e2e-replay/board')
  await page.getByRole('button', { name: 'Open' }).click()
  const slider = page.getByTestId('timeline')
  await slider.waitFor()

  // Which log entry was the last one written at or before each moment.
  const entries = await page.evaluate(async () => {
    const r = await fetch('/api/admin/history/e2e-replay/board?limit=1000')
    return (await r.json()).entries
  })
  const indexAt = (at) => entries.filter((e) => e.at <= at).length - 1
  const boardView = page.getByTestId('replay-board')

  for (const moment of [second, first]) {
    const i = indexAt(moment.at)
    assert.ok(i >= 0, `an entry before ${moment.at}`)
    await slider.evaluate((el, value) => {
      el.value = String(value)
      el.dispatchEvent(new Event('input', { bubbles: true }))
    }, i)
    await page.waitForFunction(
      ([seq, ids]) => {
        const el = document.querySelector('[data-testid="replay-board"]')
        return el?.dataset.seq === String(seq) && el.dataset.shapes === ids
      },
      [entries[i].seq, moment.ids.join(',')],
      { timeout: 15_000 },
    )
    // One drawn path per shape, in the authors' colours.
    const strokes = await boardView.locator('svg path').evaluateAll((paths) => paths.map((p) => p.getAttribute('stroke') ?? p.getAttribute('fill')))
    assert.equal(strokes.length, moment.ids.length)
    const authors = new Set(moment.ids.map((id) => (id === 's2' ? 'bo' : 'ada')))
    assert.equal(new Set(strokes).size, authors.size)
  }

  // The second page: picked from the page list, drawn at T like the first.
  async function showAt(i, pg, ids) {
    await slider.evaluate((el, value) => {
      el.value = String(value)
      el.dispatchEvent(new Event('input', { bubbles: true }))
    }, i)
    await page.waitForFunction(
      ([seq, pg, ids]) => {
        const el = document.querySelector('[data-testid="replay-board"]')
        return el?.dataset.seq === String(seq) && el.dataset.page === pg && el.dataset.shapes === ids
      },
      [entries[i].seq, pg, ids.join(',')],
      { timeout: 15_000 },
    )
    return boardView.locator('svg path').count()
  }
  // The view opened at the last entry, so the page list knows page 2 already.
  const pageSelect = page.getByTestId('replay-page')
  assert.deepEqual(await pageSelect.locator('option').allTextContents(), ['1 of 2', '2 of 2'])
  await pageSelect.selectOption('p1')
  assert.equal(await showAt(indexAt(third.at), 'p1', third.p1), 1)
  assert.equal(await page.getByTestId('no-page').count(), 0)
  // Before page 2 was added: nothing drawn, and the view says why.
  assert.equal(await showAt(indexAt(second.at), 'p1', []), 0)
  await page.getByTestId('no-page').waitFor()
  // Back to page 1 at the third moment: its own shapes only.
  await pageSelect.selectOption('p0')
  assert.equal(await showAt(indexAt(third.at), 'p0', third.p0), 3)

  // The rooms tab lists the live room with both writers' connections; it refreshes, so a
  // third client shows up without a reload.
  await page.getByRole('button', { name: 'Rooms', exact: true }).click()
  const rooms = page.getByTestId('rooms')
  await rooms.getByText('e2e-replay/board').waitFor()
  await waitFor(async () => (await rooms.locator('tbody tr').count()) === 2, { message: 'two connections' })
  await writer('e2e-replay', 'cy')
  await waitFor(async () => (await rooms.locator('tbody tr').count()) === 3, { timeout: 15_000, message: 'a third connection' })
  assert.deepEqual((await rooms.locator('tbody tr td:first-child').allTextContents()).sort(), ['ada', 'bo', 'cy'])
  await ctx.close()
})

test('a student downgraded by an admin sees a view-only board, after a reload too, until restored', async () => {
  const cls = 'e2e-downgrade'
  const student = await server.token(cls, 'student', 'sam', 'Sam')
  const adminToken = await server.token('ops', 'admin', 'ops')
  const role = (body) =>
    fetch(`${server.base}/api/admin/connections/role`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).then(async (r) => {
      const text = await r.text()
      assert.equal(r.status, 200, text)
      return JSON.parse(text)
    })
  const ctx = await browser.newContext(DESKTOP)
  try {
    let page = await openClassroom(ctx, server.base, cls, student)
    const pen = () => page.locator('[data-tool="pen"]').first()
    assert.ok(!(await pen().isDisabled()), 'a student draws')
    const changed = await role({ user_id: 'sam', role: 'observer', classroom: cls })
    assert.equal(changed.changed, 2) // the board and the classroom document
    await page.locator('[data-tool="pen"]:disabled').first().waitFor({ timeout: 10_000 })
    await page.getByRole('status').filter({ hasText: 'An administrator made you an observer' }).waitFor()
    // A reload reconnects with the same token: still view only.
    await page.close()
    page = await openClassroom(ctx, server.base, cls, student)
    await page.getByRole('status').filter({ hasText: 'An administrator made you an observer' }).waitFor()
    assert.ok(await pen().isDisabled(), 'still view only after a reload')
    await role({ user_id: 'sam', role: null, classroom: cls })
    await page.locator('[data-tool="pen"]:not(:disabled)').first().waitFor({ timeout: 10_000 })
    await pen().click()
    await mouseStroke(page, wave(300, 300))
    const tutor = await server.token(cls, 'tutor', 'tia')
    await waitFor(async () => Object.keys((await readDocument(server.ws, `${cls}/board`, tutor)).shapes).length === 1, {
      timeout: 15_000,
      message: "the restored student's stroke is on the server",
    })
  } finally {
    await ctx.close()
  }
})
