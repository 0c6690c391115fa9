// Billing at the classroom door, in Debian's Chromium against `inkroom serve` with billing
// on. Stripe is the local stand-in (`tests/billing/world_http.py`: the model of Stripe's
// subscription graph behind Stripe's REST API, with a Checkout page); it signs every event
// with the test secret and delivers it to the server's webhook, so the tutor's state is
// reached through the real code path (Checkout, webhooks, re-fetch, derive), never by
// writing rows. The tutor subscribes from their home page; then:
// - lapsed (the trial ended without a card): a student opening the invite gets the
//   "class is paused" screen, and the tutor's home says what to fix;
// - grace (a renewal payment failed): the student is let in, the tutor's board shows the
//   banner with a link to manage the subscription;
// - the Solo plan allows one student per class: a second student gets the "class is full"
//   screen with the plan's number.

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { ROOT, startServer } from './lib/server.mjs'
import { DESKTOP, PHONE, launch, waitOnline } from './lib/browser.mjs'

const PASSWORD = 'a long tutor password'
// INKROOM_SCREENSHOTS=1 also writes docs/billing-*.png.
const SHOTS = process.env.INKROOM_SCREENSHOTS === '1'
const shot = async (p, name) => {
  if (SHOTS) await p.screenshot({ path: path.join(ROOT, 'docs', name) })
}
const WEBHOOK_SECRET = 'whsec_inkroom_e2e_' + '0'.repeat(16)
const PLANS = JSON.stringify([
  { key: 'solo', stripe_price: 'price_solo', name: 'Solo', students_per_classroom: 1, video: false, trial_days: 14 },
])
let standin
let stripeBase
let server
let browser
const contexts = []

/** Starts the Stripe stand-in (`python -m tests.billing.world_http`); resolves to its URL. */
async function startStandIn() {
  const python = process.env.INKROOM_PYTHON || path.join(ROOT, '.venv/bin/python')
  standin = spawn(python, ['-m', 'tests.billing.world_http'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: standin.stdout })
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the Stripe stand-in did not start')), 20_000)
    standin.once('exit', (code) => reject(new Error(`the Stripe stand-in exited with ${code}`)))
    lines.once('line', (line) => {
      clearTimeout(timer)
      resolve(line.trim())
    })
  })
}

async function control(pathname, body) {
  const res = await fetch(`${stripeBase}${pathname}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const text = await res.text()
  assert.equal(res.status, 200, `${pathname}: ${text}`)
  return JSON.parse(text)
}

before(async () => {
  ;[stripeBase, browser] = await Promise.all([startStandIn(), launch()])
  server = await startServer({
    env: {
      INKROOM_STRIPE_API_KEY: 'sk_test_e2e',
      INKROOM_STRIPE_API_BASE: stripeBase,
      INKROOM_STRIPE_WEBHOOK_SECRETS: WEBHOOK_SECRET,
      INKROOM_BILLING_PLANS: PLANS,
      INKROOM_BILLING_OUTBOX_INTERVAL: '0.5',
    },
  })
  await control('/_world/config', { webhook_url: `${server.base}/billing/stripe/webhook`, secret: WEBHOOK_SECRET })
})

after(async () => {
  for (const c of contexts) await c.close().catch(() => undefined)
  await browser?.close()
  await server?.stop()
  if (standin && standin.exitCode === null) {
    const gone = new Promise((r) => standin.once('exit', r))
    standin.stdin.end()
    standin.kill('SIGTERM')
    await gone
  }
})

async function page(options) {
  const ctx = await browser.newContext(options)
  contexts.push(ctx)
  const p = await ctx.newPage()
  p.on('pageerror', (err) => console.error(`[page error] ${err.message}`))
  return p
}

async function refusalOf(p) {
  const refusal = p.locator('[data-testid="refusal"]')
  await refusal.waitFor({ timeout: 15_000 })
  assert.equal(await p.locator('canvas').count(), 0, 'never an empty board')
  return { reason: await refusal.getAttribute('data-reason'), text: await refusal.textContent() }
}

test('a lapsed tutor’s students see why the class is paused; in grace they get in and the tutor sees the banner; a class over the plan’s size refuses the extra student', async () => {
  const base = server.base
  const home = await page(DESKTOP)
  await home.goto(`${base}/`)
  await home.locator('form[data-testid="signup"], form[data-testid="signin"]').waitFor()
  if (await home.locator('form[data-testid="signin"]').isVisible()) {
    await home.getByRole('button', { name: 'Create an account' }).click()
  }
  await home.getByLabel('Your name').fill('Ms Chen')
  await home.getByLabel('Email').fill('chen@example.org')
  await home.getByLabel('Password').fill(PASSWORD)
  await home.getByRole('button', { name: 'Create account' }).click()
  await home.getByRole('heading', { name: 'Your classrooms' }).waitFor()
  const account = `acct-${(await home.evaluate(() => fetch('/api/auth/me').then((r) => r.json()))).account.id}`

  // Billing is on: no subscription yet, so the home page offers Checkout.
  const panel = home.locator('[data-testid="subscription"]')
  await panel.waitFor()
  assert.match(await panel.locator('[data-testid="subscription-status"]').textContent(), /No subscription/)
  await home.getByRole('button', { name: 'New classroom' }).click()
  await home.getByLabel('Title').fill('Geometry')
  await home.getByRole('button', { name: 'Create', exact: true }).click()
  const card = home.locator('[data-testid="classroom"]', { hasText: 'Geometry' })
  await card.getByRole('button', { name: 'Create invite link' }).click()
  const inviteUrl = await card.locator('[data-testid="invite-url"]').inputValue()
  const classroom = await card.getAttribute('data-id')

  // Subscribe: Checkout (the stand-in's page), back home on a trial; no second checkout.
  await panel.locator('[data-testid="subscribe"][data-plan="solo"]').click()
  await home.waitForURL(/billing=success/)
  await panel.locator('[data-testid="subscription-status"]', { hasText: 'Trial, 14 days left' }).waitFor()
  assert.equal(await panel.locator('[data-testid="subscribe"]').count(), 0, 'no second checkout while live')
  await panel.getByRole('button', { name: 'Manage subscription' }).waitFor()

  // Lapsed: the trial ends without a card (Stripe pauses the subscription).
  await control('/_world/step', { account, path: ['paused'] })
  const first = await page(PHONE)
  await first.goto(inviteUrl)
  const paused = await refusalOf(first)
  assert.equal(paused.reason, 'payment-required')
  assert.match(paused.text, /This class is paused/)
  assert.match(paused.text, /Ask your tutor/)
  await shot(first, 'billing-paused-phone.png')
  await home.reload()
  await panel.locator('[data-testid="subscription-status"]', { hasText: 'Trial ended without a card' }).waitFor()
  assert.equal(await panel.getAttribute('data-access'), 'false')
  await shot(home, 'billing-home-lapsed.png')

  // Grace: a card is added and charged, then a renewal fails (past due, within 7 days).
  await control('/_world/step', { account, path: ['active', 'past_due'] })
  await first.goto(inviteUrl)
  await first.getByLabel('Your name').fill('Ana')
  await first.getByRole('button', { name: 'Join' }).click()
  await first.waitForURL(/\/c\//)
  await first.waitForFunction(() => !!window.inkroom)
  await waitOnline(first)
  const board = await home.context().newPage()
  await board.goto(`${base}/c/${classroom}`)
  await board.waitForFunction(() => !!window.inkroom)
  await waitOnline(board)
  const banner = board.locator('[data-testid="billing-banner"]')
  await banner.waitFor({ state: 'visible', timeout: 15_000 })
  assert.match(await banner.textContent(), /Payment failed: update your card by \d+ \w+ \d{4}/)
  assert.equal(await banner.getByRole('link', { name: 'Manage subscription' }).getAttribute('href'), '/#billing')
  assert.equal(await first.locator('[data-testid="billing-banner"]').count(), 0, 'students are not told on the board')
  await shot(board, 'billing-board-grace.png')

  // The Solo plan: one student per class. Ana holds the seat; Ben, opening the invite, is
  // refused before he types his name, with the plan's number.
  const second = await page(DESKTOP)
  await second.goto(inviteUrl)
  const full = await refusalOf(second)
  assert.equal(full.reason, 'class-full')
  assert.match(full.text, /This class is full/)
  assert.match(full.text, /allows 1 student at a time/)
  // Ana's lesson was never interrupted.
  await waitOnline(first)
})
