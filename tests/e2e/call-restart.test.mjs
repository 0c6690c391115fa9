// A call that loses its network mid-lesson, in Debian's Chromium with fake media, against
// a real `inkroom serve`, inside a network namespace with only loopback (netns.sh): the
// student's page restarts its media (fresh connections, same call, no reload), and the
// call panel grades the connection on a 360 px phone.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { waitFor } from './lib/server.mjs'
import { PHONE } from './lib/browser.mjs'
import { callHarness, nft, rising, session, state } from './lib/call.mjs'

const call = callHarness()
const open = (...args) => call.open(...args)

test('a student whose transport fails gets fresh connections without a reload; the phone panel grades the connection', async () => {
  const cls = 'e2e-restart'
  const [tt, ct] = await Promise.all([
    call.server.token(cls, 'tutor', 'tutor-2', 'Mr Tutor'),
    call.server.token(cls, 'student', 'cara', 'Cara'),
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
