// The call panel in Debian's Chromium with fake camera and microphone, against a real
// `inkroom serve`, inside a network namespace with only loopback (netns.sh).
// Tutor and two students press "Join call"; each student decodes the tutor's video and
// audio; the tutor decodes both students' video; a student receives another student's
// video only once the tutor spotlights them.

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
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

/** Frames (video) or samples (audio) received per slot: {mid: {kind, userId, count}}. */
const received = (page) => page.evaluate(() => window.inkroom.call.session?.received() ?? {})

/** What the page's call holds, for a failure message. */
const state = (page) =>
  page.evaluate(async () => {
    const s = window.inkroom.call.session
    if (!s) return 'not joined'
    return JSON.stringify({
      slots: s.slots,
      streams: [...s.streams.keys()],
      received: await s.received(),
      sub: s.sub && [s.sub.signalingState, s.sub.connectionState, s.sub.iceConnectionState],
      pub: s.pub && [s.pub.signalingState, s.pub.connectionState],
      error: window.inkroom.call.error,
    })
  })

const countOf = (slots, kind, user) =>
  Object.values(slots)
    .filter((s) => s.kind === kind && s.userId === user)
    .reduce((n, s) => n + s.count, 0)

/** Waits until `page` has received more than `min` of `kind` from `user`, and again more. */
async function rising(page, kind, user, min, message) {
  const first = await waitFor(async () => {
    const n = countOf(await received(page), kind, user)
    return n > min ? n : 0
  }, { timeout: 20_000, interval: 200, message }).catch(async (err) => {
    throw new Error(`${err.message}; call state: ${await state(page)}`)
  })
  await waitFor(async () => countOf(await received(page), kind, user) > first, {
    timeout: 5_000, interval: 200, message: `${message} (still rising)`,
  })
}

test('tutor and two students join the call; student video only to the tutor until spotlighted', async () => {
  const cls = 'e2e-call'
  const [tt, at, bt] = await Promise.all([
    server.token(cls, 'tutor', 'tutor-1', 'Ms Tutor'),
    server.token(cls, 'student', 'ann', 'Ann'),
    server.token(cls, 'student', 'bob', 'Bob'),
  ])
  const tutor = await open(cls, tt)
  const ann = await open(cls, at)
  const bob = await open(cls, bt, PHONE)
  for (const page of [tutor, ann, bob]) {
    await page.getByRole('button', { name: 'Join call' }).click()
    await page.getByRole('button', { name: 'Leave call' }).waitFor()
  }

  for (const [page, name] of [[ann, 'Ann'], [bob, 'Bob']]) {
    await rising(page, 'video', 'tutor-1', 10, `${name} decodes the tutor's video`)
    await rising(page, 'audio', 'tutor-1', 4800, `${name} receives the tutor's audio`)
  }
  await rising(tutor, 'video', 'ann', 10, "the tutor decodes Ann's video")
  await rising(tutor, 'video', 'bob', 10, "the tutor decodes Bob's video")
  assert.equal(countOf(await received(ann), 'video', 'bob'), 0, "Ann must not get Bob's video yet")
  assert.equal(countOf(await received(bob), 'video', 'ann'), 0, "Bob must not get Ann's video")

  await tutor.getByRole('button', { name: 'Spotlight Bob' }).click()
  await rising(ann, 'video', 'bob', 5, "Ann decodes Bob's video once he is spotlighted")
  assert.equal(countOf(await received(bob), 'video', 'ann'), 0, "spotlighting Bob shows nobody Ann")
  // Bob's phone still shows the board under the call strip.
  const stage = await bob.getByTestId('stage').boundingBox()
  assert.ok(stage && stage.height > 300, `the board keeps ${stage?.height} px on a phone`)
})

test('/check runs to a verdict and its report names the candidate types found', async () => {
  const token = await server.token('e2e-check', 'student', 'cara', 'Cara')
  const ctx = await browser.newContext(DESKTOP)
  contexts.push(ctx)
  const page = await ctx.newPage()
  await page.goto(`${server.base}/check?token=${encodeURIComponent(token)}`)
  await page.getByRole('button', { name: 'Run the check' }).click()
  const verdict = page.getByTestId('check-verdict')
  await verdict.waitFor({ timeout: 40_000 })
  assert.ok(['full video', 'low video', 'audio only'].includes(await verdict.textContent()))
  const report = JSON.parse(await page.getByTestId('check-report').textContent())
  assert.equal(report.signaling.ok, true, JSON.stringify(report.signaling))
  assert.equal(report.microphone.ok, true, JSON.stringify(report.microphone))
  assert.equal(report.camera.ok, true, JSON.stringify(report.camera))
  assert.ok(report.candidateTypes.includes('host'), `candidate types: ${report.candidateTypes}`)
  assert.equal(report.media.ok, true, JSON.stringify(report.media))
  assert.match(report.media.pair, /^host\/udp to host\/udp$/)

  // The report is stored for the tutor: sent with the page's token, listed by classroom.
  await page.getByText('Report sent: your tutor can see it.').waitFor({ timeout: 10_000 })
  const tutorToken = await server.token('e2e-check', 'tutor', 'tom', 'Tom')
  const listed = await fetch(`${server.base}/api/classrooms/e2e-check/check-reports`, {
    headers: { authorization: `Bearer ${tutorToken}` },
  }).then((r) => r.json())
  const [stored] = listed.reports
  assert.equal(stored.userId, 'cara')
  assert.equal(stored.verdict, await verdict.textContent())
  assert.deepEqual(stored.candidateTypes, report.candidateTypes)
  assert.match(stored.userAgent, /Chrom/)
})
