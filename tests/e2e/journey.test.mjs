// The tutor's journey with no terminal, in Debian's Chromium against `inkroom serve`:
// sign up, sign in, create a classroom, copy its invite link; two students join (a 360 px
// touch phone and a desktop) and draw; revoking the link refuses a third; a reload keeps
// the tutor signed in. Then: a page token that expires mid-lesson while the board syncs.
// INKROOM_SCREENSHOTS=1 also writes the screenshots in docs/ (tutor home, sign-in, join and
// refusal screens).

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { ROOT, startServer } from './lib/server.mjs'
import { DESKTOP, PHONE, launch, mouseStroke, shapesOf, touchStroke, waitOnline, wave } from './lib/browser.mjs'

const SHOTS = process.env.INKROOM_SCREENSHOTS === '1'
const PASSWORD = 'a long tutor password'
let server
let shortServer
let browser
const contexts = []

before(async () => {
  ;[server, shortServer, browser] = await Promise.all([
    startServer(),
    // Page tokens of 6 s: renewed about every 3.6 s, and the server ends a connection
    // whose token has expired, so a lesson of 20 s crosses several expiries.
    startServer({ env: { INKROOM_PAGE_TOKEN_TTL: '6' } }),
    launch(),
  ])
})

after(async () => {
  for (const c of contexts) await c.close().catch(() => undefined)
  await browser?.close()
  await Promise.all([server?.stop(), shortServer?.stop()])
})

async function context(options) {
  const ctx = await browser.newContext(options)
  contexts.push(ctx)
  return ctx
}

async function page(ctx) {
  const p = await ctx.newPage()
  p.on('pageerror', (err) => console.error(`[page error] ${err.message}`))
  return p
}

async function shot(p, name) {
  if (SHOTS) await p.screenshot({ path: path.join(ROOT, 'docs', name) })
}

async function signUp(p, base, { name, email }) {
  await p.goto(`${base}/`)
  // A server with no account yet opens on the sign-up form; otherwise on sign-in.
  await p.locator('form[data-testid="signin"], form[data-testid="signup"]').waitFor()
  if (await p.locator('form[data-testid="signin"]').isVisible()) {
    await p.getByRole('button', { name: 'Create an account' }).click()
  }
  await p.getByLabel('Your name').fill(name)
  await p.getByLabel('Email').fill(email)
  await p.getByLabel('Password').fill(PASSWORD)
  await p.getByRole('button', { name: 'Create account' }).click()
  await p.getByRole('heading', { name: 'Your classrooms' }).waitFor()
}

async function newClassroom(p, title) {
  await p.getByRole('button', { name: 'New classroom' }).click()
  await p.getByLabel('Title').fill(title)
  await p.getByRole('button', { name: 'Create', exact: true }).click()
  const card = p.locator('[data-testid="classroom"]', { hasText: title })
  await card.waitFor()
  return card
}

/** Opens an invite link, enters a name, joins; resolves once the board is online. */
async function join(ctx, url, name) {
  const p = await page(ctx)
  await p.goto(url)
  await p.getByLabel('Your name').fill(name)
  await p.getByRole('button', { name: 'Join' }).click()
  await p.waitForURL(/\/c\//)
  await p.waitForFunction(() => !!window.inkroom)
  await waitOnline(p)
  return p
}

const rosterNames = (p) => p.$$eval('[data-testid="roster"] li .who', (els) => els.map((e) => e.textContent))

test('a tutor signs up, invites two students who draw, revokes the link, and stays signed in', async () => {
  const base = server.base
  const tutorCtx = await context(DESKTOP)
  await tutorCtx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base })
  const home = await page(tutorCtx)

  // Sign up, then sign out and sign in again: both ways in work.
  await signUp(home, base, { name: 'Ms Rivera', email: 'rivera@example.org' })
  await home.getByRole('button', { name: 'Sign out' }).click()
  await home.getByRole('heading', { name: 'Sign in' }).waitFor()
  await shot(home, 'home-signin.png')
  await home.getByLabel('Email').fill('rivera@example.org')
  await home.getByLabel('Password').fill(PASSWORD)
  await home.getByRole('button', { name: 'Sign in' }).click()
  await home.getByText('Signed in as').waitFor()

  // A classroom and its invite link, copied with the Copy button.
  const card = await newClassroom(home, 'Algebra 1')
  await card.getByRole('button', { name: 'Create invite link' }).click()
  const shown = await card.locator('[data-testid="invite-url"]').inputValue()
  await card.getByRole('button', { name: 'Copy' }).click()
  await card.getByRole('button', { name: 'Copied' }).waitFor()
  const inviteUrl = await home.evaluate(() => navigator.clipboard.readText())
  assert.equal(inviteUrl, shown)
  assert.match(inviteUrl, new RegExp(`^${base}/j/[A-Za-z0-9_-]+$`), 'an absolute /j/ link')
  await newClassroom(home, 'Physics, Thursday')
  await shot(home, 'tutor-home.png')

  // Two students: a 360 px touch phone and a desktop, each with their own name.
  const phoneCtx = await context(PHONE)
  const joinPage = await page(phoneCtx)
  await joinPage.goto(inviteUrl)
  await joinPage.getByLabel('Your name').waitFor()
  await shot(joinPage, 'join-phone.png')
  await joinPage.close()
  const ana = await join(phoneCtx, inviteUrl, 'Ana')
  const ben = await join(await context(DESKTOP), inviteUrl, 'Ben')
  assert.equal(await ana.evaluate(() => window.innerWidth), 360)
  const [anaId, benId] = await Promise.all([ana, ben].map((p) => p.evaluate(() => window.inkroom.session.userId)))
  assert.notEqual(anaId, benId, 'two students never share an identity')
  await touchStroke(ana, wave(200, 600))
  await mouseStroke(ben, wave(200, 300))

  // The tutor opens the classroom: both strokes, both names in the roster.
  const room = await page(tutorCtx)
  await room.goto(`${base}/c/${await card.getAttribute('data-id')}`)
  await room.waitForFunction(() => !!window.inkroom)
  await waitOnline(room)
  await room.waitForFunction(() => window.inkroom.board.shapes.size === 2, null, { timeout: 15_000 })
  const authors = Object.values(await shapesOf(room)).map((s) => s.a).sort()
  assert.deepEqual(authors, [anaId, benId].sort())
  await room.waitForFunction(() => document.querySelectorAll('[data-testid="roster"] li').length === 3, null, { timeout: 10_000 })
  assert.deepEqual((await rosterNames(room)).sort(), ['Ana', 'Ben', 'Ms Rivera'])
  assert.equal(await room.evaluate(() => window.inkroom.session.role), 'tutor')

  // The phone's id survives a reload (the device grant), and it is still online.
  await ana.reload()
  await ana.waitForFunction(() => !!window.inkroom)
  await waitOnline(ana)
  assert.equal(await ana.evaluate(() => window.inkroom.session.userId), anaId)

  // Revoke: a third student opening the link gets the refusal screen, in plain words.
  await home.reload()
  const again = home.locator('[data-testid="classroom"]', { hasText: 'Algebra 1' })
  await again.getByRole('button', { name: 'Turn off this link' }).click()
  await again.getByRole('button', { name: 'Create invite link' }).waitFor()
  const late = await page(await context(PHONE))
  await late.goto(inviteUrl)
  const refusal = late.locator('[data-testid="refusal"]')
  await refusal.waitFor()
  assert.equal(await refusal.getAttribute('data-reason'), 'revoked')
  assert.match(await refusal.textContent(), /Ask your tutor for a new link/)
  assert.equal(await late.locator('canvas').count(), 0, 'never an empty board')
  await shot(late, 'refused-phone.png')

  // The tutor reloads: still signed in, still the tutor, the board intact.
  await room.reload()
  await room.waitForFunction(() => !!window.inkroom)
  await waitOnline(room)
  assert.equal(await room.evaluate(() => window.inkroom.session.role), 'tutor')
  assert.equal(await room.evaluate(() => window.inkroom.session.name), 'Ms Rivera')
  await room.waitForFunction(() => window.inkroom.board.shapes.size === 2)
  await home.reload()
  await home.getByText('Signed in as').waitFor()
})

test('roles and chrome: observers watch, tutors have no hand, hands show names and drop on leave, clear asks first, the phone toolbar fits', async () => {
  const base = server.base
  const tutorCtx = await context(DESKTOP)
  const home = await page(tutorCtx)
  await signUp(home, base, { name: 'Mr Okafor', email: 'okafor@example.org' })
  const card = await newClassroom(home, 'Chemistry')
  const id = await card.getAttribute('data-id')
  await card.getByRole('button', { name: 'Create invite link' }).click()
  const studentLink = await card.locator('[data-role="student"] [data-testid="invite-url"]').inputValue()
  await card.getByLabel('Who the link is for').selectOption('observer')
  await card.getByRole('button', { name: 'Create another link' }).click()
  const observerLink = await card.locator('[data-role="observer"] [data-testid="invite-url"]').inputValue()
  assert.notEqual(observerLink, studentLink)

  const tutor = await page(tutorCtx)
  await tutor.goto(`${base}/c/${id}`)
  await tutor.waitForFunction(() => !!window.inkroom)
  await waitOnline(tutor)
  const phoneCtx = await context(PHONE)
  const student = await join(phoneCtx, studentLink, 'Chidi')
  const observer = await join(await context(DESKTOP), observerLink, 'Parent')

  // Who sees what.
  assert.equal(await tutor.locator('[data-action="hand"]').isVisible(), false, 'tutors raise no hand')
  assert.equal(await observer.locator('[data-action="hand"]').isVisible(), false, 'observers raise no hand')
  assert.equal(await observer.locator('.chat-form').isVisible(), false, 'observers cannot chat')
  assert.equal(await observer.locator('[data-tool="pen"]').isDisabled(), true)

  // The phone: every tool, colour, width, undo and redo on screen, no horizontal scroll.
  const fit = await student.evaluate(() => {
    const bar = document.querySelector('.toolbar')
    const controls = [...bar.querySelectorAll('button')]
    const outside = controls.filter((b) => {
      const r = b.getBoundingClientRect()
      return r.left < 0 || r.right > window.innerWidth || r.bottom > window.innerHeight || r.width < 24
    })
    const stage = document.querySelector('.stage-wrap').getBoundingClientRect()
    return {
      controls: controls.length,
      outside: outside.map((b) => b.getAttribute('aria-label')),
      scrollWidth: document.documentElement.scrollWidth,
      barScroll: bar.scrollWidth - bar.clientWidth,
      stageHeight: stage.height,
      emoji: /[\u{1F300}-\u{1FAFF}\u270B\u270E]/u.test(document.querySelector('.app').textContent),
    }
  })
  assert.equal(fit.controls, 20, '10 tools, 5 colours, 3 widths, undo, redo')
  assert.deepEqual(fit.outside, [])
  assert.equal(fit.scrollWidth, 360)
  assert.equal(fit.barScroll, 0)
  assert.ok(fit.stageHeight > 740 * 0.6, `the board takes most of the screen (${fit.stageHeight} px)`)
  assert.equal(fit.emoji, false, 'icons are inline SVG, not emoji')

  // Held sideways (740 x 360), every control is still on screen.
  await student.setViewportSize({ width: 740, height: 360 })
  const sideways = await student.evaluate(() =>
    [...document.querySelectorAll('.toolbar button')]
      .filter((b) => {
        const r = b.getBoundingClientRect()
        return r.left < 0 || r.right > window.innerWidth || r.bottom > window.innerHeight
      })
      .map((b) => b.getAttribute('aria-label')),
  )
  assert.deepEqual(sideways, [])
  await student.setViewportSize({ width: 360, height: 740 })

  // A raised hand shows the student's name; the panel closes on a tap outside it.
  await student.locator('[data-action="people"]').click()
  await student.locator('.app.panel-open').waitFor()
  await student.locator('[data-action="hand"]').click()
  await student.locator('[data-testid="scrim"]').tap({ position: { x: 20, y: 200 } })
  await student.waitForFunction(() => !document.querySelector('.app').classList.contains('panel-open'))
  assert.equal(Object.keys(await shapesOf(student)).length, 0, 'the closing tap drew nothing')
  await tutor.waitForSelector('[data-testid="hands"] li .who')
  assert.equal(await tutor.locator('[data-testid="hands"] li .who').textContent(), 'Chidi')
  await touchStroke(student, wave(200, 500))
  await student.waitForFunction(() => window.inkroom.board.shapes.size === 1)

  // The student leaves: the server lowers the hand.
  await student.close()
  await tutor.waitForFunction(() => document.querySelectorAll('[data-testid="hands"] li').length === 0, null, { timeout: 10_000 })

  // Clear page asks first; Cancel keeps the drawing, Clear removes it.
  await tutor.waitForFunction(() => window.inkroom.board.shapes.size === 1)
  await tutor.locator('[data-action="clear-page"]').click()
  const dialog = tutor.locator('[data-testid="confirm-clear"]')
  await dialog.getByRole('button', { name: 'Cancel' }).click()
  assert.equal(await tutor.evaluate(() => window.inkroom.board.shapes.size), 1)
  await tutor.locator('[data-action="clear-page"]').click()
  await dialog.getByRole('button', { name: 'Clear page' }).click()
  await tutor.waitForFunction(() => window.inkroom.board.shapes.size === 0)

  // Archiving ends the open ones: the observer gets the closed-classroom screen.
  await home.reload()
  home.once('dialog', (d) => d.accept())
  await home.locator('[data-testid="classroom"]', { hasText: 'Chemistry' }).getByRole('button', { name: 'Archive' }).click()
  const closed = observer.locator('[data-testid="refusal"]')
  await closed.waitFor({ timeout: 10_000 })
  assert.equal(await closed.getAttribute('data-reason'), 'archived')
})

test('a page token that expires mid-lesson is renewed and the board keeps syncing', async () => {
  const base = shortServer.base
  const tutorCtx = await context(DESKTOP)
  const home = await page(tutorCtx)
  await signUp(home, base, { name: 'Ms Short', email: 'short@example.org' })
  const card = await newClassroom(home, 'Quick lesson')
  await card.getByRole('button', { name: 'Create invite link' }).click()
  const link = await card.locator('[data-testid="invite-url"]').inputValue()
  const tutor = await page(tutorCtx)
  await tutor.goto(`${base}/c/${await card.getAttribute('data-id')}`)
  await tutor.waitForFunction(() => !!window.inkroom)
  await waitOnline(tutor)
  const student = await join(await context(PHONE), link, 'Dana')
  const firstToken = await student.evaluate(() => window.inkroom.boardLink.provider.params.token)
  const firstUser = await student.evaluate(() => window.inkroom.session.userId)
  // Counts the board socket's openings: the server ends a connection whose token expired.
  await student.evaluate(() => {
    window.opens = 0
    window.inkroom.boardLink.provider.on('status', (e) => e.status === 'connected' && window.opens++)
  })
  const exp = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString()).exp
  const started = Date.now()

  // Draw across three token lifetimes: every stroke reaches the other side.
  for (let i = 0; i < 5; i++) {
    await touchStroke(student, wave(100, 100 + i * 150, 12))
    await mouseStroke(tutor, wave(900, 100 + i * 150, 12))
    await tutor.waitForFunction((n) => window.inkroom.board.shapes.size === n, 2 * (i + 1), { timeout: 15_000 })
    await student.waitForFunction((n) => window.inkroom.board.shapes.size === n, 2 * (i + 1), { timeout: 15_000 })
    await new Promise((r) => setTimeout(r, 3500))
  }
  const elapsed = (Date.now() - started) / 1000
  assert.ok(elapsed > 3 * 6, `the lesson outlived three tokens (${elapsed.toFixed(1)} s)`)
  const lastToken = await student.evaluate(() => window.inkroom.boardLink.provider.params.token)
  assert.notEqual(lastToken, firstToken, 'the page renewed its token')
  assert.ok(exp(lastToken) > exp(firstToken) + 12)
  for (const p of [student, tutor]) {
    await waitOnline(p)
    assert.equal(await p.locator('[data-testid="refusal"]').count(), 0)
  }
  const opens = await student.evaluate(() => window.opens)
  assert.ok(opens >= 2, `expired connections were ended and reopened with renewed tokens (${opens})`)
  assert.equal(await student.evaluate(() => window.inkroom.session.userId), firstUser)
})
