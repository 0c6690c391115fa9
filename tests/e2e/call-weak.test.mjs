// A call on a lossy network, in Debian's Chromium with fake media, against a real
// `inkroom serve`, inside a network namespace with only loopback (netns.sh): nftables
// drops 30 % of the namespace's UDP at random. The server judges the student's link from
// Chromium's receiver reports and goes to audio only; the student's panel says so, and
// the tutor's audio keeps arriving; when the loss stops, full video comes back.

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

test('on a lossy network the call goes to audio only, says so, keeps the audio, and comes back', async () => {
  const cls = 'e2e-weak'
  const [tt, dt] = await Promise.all([
    server.token(cls, 'tutor', 'tutor-3', 'Ms Weak'),
    server.token(cls, 'student', 'dan', 'Dan'),
  ])
  const tutor = await open(cls, tt)
  const dan = await open(cls, dt, PHONE)
  for (const page of [tutor, dan]) {
    await page.getByRole('button', { name: 'Join call' }).click()
    await page.getByRole('button', { name: 'Leave call' }).waitFor()
  }
  await rising(dan, 'video', 'tutor-3', 10, "Dan decodes the tutor's video")

  await nft('add', 'table', 'inet', 'e2eloss')
  await nft('add', 'chain', 'inet', 'e2eloss', 'out', '{ type filter hook output priority 0 ; policy accept ; }')
  await nft('add', 'rule', 'inet', 'e2eloss', 'out', 'meta', 'l4proto', 'udp', 'numgen', 'random', 'mod', '100', '<', '30', 'drop')
  let weak
  try {
    await waitFor(() => session(dan, "s.serverQuality === 'audio only'"), {
      timeout: 60_000, interval: 250, message: 'the server moves Dan to audio only',
    }).catch(async (err) => { throw new Error(`${err.message}; call state: ${await state(dan)}`) })
    weak = await dan.getByTestId('call-weak').textContent()
    // The tutor's audio keeps arriving (Chromium conceals the lost packets).
    await rising(dan, 'audio', 'tutor-3', 0, "Dan still receives the tutor's audio")
  } finally {
    await nft('delete', 'table', 'inet', 'e2eloss')
  }
  assert.equal(weak, 'Your connection is weak: audio only. Video comes back when it improves.')
  await waitFor(() => session(dan, "s.serverQuality === 'full video'"), {
    timeout: 60_000, interval: 250, message: 'full video comes back once the loss stops',
  })
  assert.equal(await dan.getByTestId('call-weak').count(), 0)
  await rising(dan, 'video', 'tutor-3', 0, "Dan decodes the tutor's video again")
})
