// A call that loses its network mid-lesson, in Debian's Chromium with fake media, against
// a real `inkroom serve`, inside a network namespace with only loopback (netns.sh): the
// student's page restarts its media (fresh connections, same call, no reload), and the
// call panel grades the connection on a 360 px phone.

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { startServer, waitFor } from './lib/server.mjs'
import { CALL_ARGS, DESKTOP, PHONE, launch, openClassroom } from './lib/browser.mjs'

let server
let browser
const contexts = []

before(async () => {
  ;[server, browser] = await Promise.all([
    startServer({ env: { INKROOM_SFU_LOOPBACK_ONLY: 'true' } }),
    launch(CALL_ARGS),
  ])
})

after(async () => {
  for (const c of contexts) await c.close().catch(() => undefined)
  await browser?.close()
  await server?.stop()
})

async function open(cls, token, options = DESKTOP) {
  const ctx = await browser.newContext(options)
  contexts.push(ctx)
  return openClassroom(ctx, server.base, cls, token)
}

const received = (page) => page.evaluate(() => window.inkroom.call.session?.received() ?? {})

const state = (page) =>
  page.evaluate(async () => {
    const s = window.inkroom.call.session
    if (!s) return 'not joined'
    return JSON.stringify({
      slots: s.slots,
      received: await s.received(),
      sub: s.sub && [s.sub.signalingState, s.sub.connectionState],
      pub: s.pub && [s.pub.signalingState, s.pub.connectionState],
      restarting: s.restarting,
      restarts: s.restarts,
      error: window.inkroom.call.error,
    })
  })

const countOf = (slots, kind, user) =>
  Object.values(slots)
    .filter((s) => s.kind === kind && s.userId === user)
    .reduce((n, s) => n + s.count, 0)

async function rising(page, kind, user, min, message) {
  const first = await waitFor(async () => {
    const n = countOf(await received(page), kind, user)
    return n > min ? n : 0
  }, { timeout: 30_000, interval: 200, message }).catch(async (err) => {
    throw new Error(`${err.message}; call state: ${await state(page)}`)
  })
  await waitFor(async () => countOf(await received(page), kind, user) > first, {
    timeout: 5_000, interval: 200, message: `${message} (still rising)`,
  })
}

/** Runs nft in this test's network namespace (netns.sh: root, loopback only). */
async function nft(...args) {
  await new Promise((ok, fail) => execFile('nft', args, (err, _o, stderr) => (err ? fail(new Error(stderr || err.message)) : ok())))
}

const session = (page, expr) => page.evaluate(`(() => { const s = window.inkroom.call.session; return ${expr} })()`)

test('a student whose transport fails gets fresh connections without a reload; the phone panel grades the connection', async () => {
  const cls = 'e2e-restart'
  const [tt, ct] = await Promise.all([
    server.token(cls, 'tutor', 'tutor-2', 'Mr Tutor'),
    server.token(cls, 'student', 'cara', 'Cara'),
  ])
  const tutor = await open(cls, tt)
  const cara = await open(cls, ct, PHONE)
  for (const page of [tutor, cara]) {
    await page.getByRole('button', { name: 'Join call' }).click()
    await page.getByRole('button', { name: 'Leave call' }).waitFor()
  }
  await rising(cara, 'video', 'tutor-2', 10, "Cara decodes the tutor's video")

  // The indicator: graded from getStats, and inside a 360 px phone's width.
  const quality = cara.getByTestId('call-quality')
  await waitFor(async () => ['good', 'fair', 'poor'].includes(await quality.getAttribute('data-level')), {
    timeout: 15_000, interval: 200, message: 'the connection is graded',
  })
  assert.match(await quality.getAttribute('aria-label'), /^Connection: (good|fair|poor)$/)
  // Read in one evaluate: the panel re-renders on every stats tick.
  const box = await cara.evaluate(() => {
    const r = document.querySelector('[data-testid="call-quality"]')?.getBoundingClientRect()
    return r && { x: r.x, width: r.width, height: r.height }
  })
  assert.ok(box && box.x >= 0 && box.x + box.width <= 360 && box.height > 0, `indicator at ${JSON.stringify(box)}`)

  // The network goes away under the call (every UDP datagram dropped), then comes back.
  await cara.evaluate(() => { window.notReloaded = true })
  await nft('add', 'table', 'inet', 'e2eblock')
  await nft('add', 'chain', 'inet', 'e2eblock', 'out', '{ type filter hook output priority 0 ; policy accept ; }')
  await nft('add', 'rule', 'inet', 'e2eblock', 'out', 'meta', 'l4proto', 'udp', 'drop')
  try {
    await waitFor(() => session(cara, 's.restarting'), { timeout: 30_000, interval: 200, message: 'Cara starts a media restart' })
  } finally {
    await nft('delete', 'table', 'inet', 'e2eblock')
  }
  await waitFor(() => session(cara, 's.restarts >= 1'), {
    timeout: 60_000, interval: 250, message: 'Cara has fresh connections',
  }).catch(async (err) => { throw new Error(`${err.message}; call state: ${await state(cara)}`) })
  await rising(cara, 'video', 'tutor-2', 10, "Cara decodes the tutor's video again")
  assert.equal(await cara.evaluate(() => window.notReloaded), true, 'the page was not reloaded')
  assert.equal(await cara.getByRole('button', { name: 'Leave call' }).count(), 1, 'still in the call')
})
