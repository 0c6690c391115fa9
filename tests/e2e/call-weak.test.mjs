// A call on a lossy network, in Debian's Chromium with fake media, against a real
// `inkroom serve`, inside a network namespace with only loopback (netns.sh): nftables
// drops 30 % of the namespace's UDP at random. The server judges the student's link from
// Chromium's receiver reports and goes to audio only; the student's panel says so, and
// the tutor's audio keeps arriving; when the loss stops, full video comes back.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { waitFor } from './lib/server.mjs'
import { PHONE } from './lib/browser.mjs'
import { callHarness, nft, rising, session, state } from './lib/call.mjs'

const call = callHarness()
const open = (...args) => call.open(...args)

test('on a lossy network the call goes to audio only, says so, keeps the audio, and comes back', async () => {
  const cls = 'e2e-weak'
  const [tt, dt] = await Promise.all([
    call.server.token(cls, 'tutor', 'tutor-3', 'Ms Weak'),
    call.server.token(cls, 'student', 'dan', 'Dan'),
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
