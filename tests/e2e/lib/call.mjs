// The harness the call tests in a network namespace share: a server with loopback-only
// media, a Chromium with fake devices, classroom pages, and what a page's call receives.

import { after, before } from 'node:test'
import { execFile } from 'node:child_process'
import { startServer, waitFor } from './server.mjs'
import { CALL_ARGS, DESKTOP, launch, openClassroom } from './browser.mjs'

/** Starts the server and the browser for this test file; returns the helpers. */
export function callHarness() {
  const h = { server: null }
  let browser
  const contexts = []

  before(async () => {
    ;[h.server, browser] = await Promise.all([
      startServer({ env: { INKROOM_SFU_LOOPBACK_ONLY: 'true' } }),
      launch(CALL_ARGS),
    ])
  })

  after(async () => {
    for (const c of contexts) await c.close().catch(() => undefined)
    await browser?.close()
    await h.server?.stop()
  })

  h.open = async (cls, token, options = DESKTOP) => {
    const ctx = await browser.newContext(options)
    contexts.push(ctx)
    return openClassroom(ctx, h.server.base, cls, token)
  }
  return h
}

export const received = (page) => page.evaluate(() => window.inkroom.call.session?.received() ?? {})

export const state = (page) =>
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

export const countOf = (slots, kind, user) =>
  Object.values(slots)
    .filter((s) => s.kind === kind && s.userId === user)
    .reduce((n, s) => n + s.count, 0)

/** Waits until the page has received more than `min` frames of `user`'s `kind`, still rising. */
export async function rising(page, kind, user, min, message) {
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
export async function nft(...args) {
  await new Promise((ok, fail) => execFile('nft', args, (err, _o, stderr) => (err ? fail(new Error(stderr || err.message)) : ok())))
}

export const session = (page, expr) => page.evaluate(`(() => { const s = window.inkroom.call.session; return ${expr} })()`)
