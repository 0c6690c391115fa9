// Screenshots of the board for docs/: a tutor on a desktop and a student on a 360 px
// phone, in the same classroom, with handwriting, shapes, text and live cursors.
//   node screenshots.mjs   (writes docs/board-desktop.png and docs/board-phone.png)

import path from 'node:path'
import { ROOT, startServer } from './lib/server.mjs'
import { DESKTOP, PHONE, launch, mouseStroke, openClassroom, touchStroke } from './lib/browser.mjs'

const server = await startServer()
const browser = await launch()
try {
  const cls = 'algebra-7b'
  const [tt, st] = await Promise.all([
    server.token(cls, 'tutor', 'tutor-ada', 'Ada (tutor)'),
    server.token(cls, 'student', 'student-ben', 'Ben'),
  ])
  const tutor = await openClassroom(await browser.newContext(DESKTOP), server.base, cls, tt)
  const phone = await openClassroom(await browser.newContext(PHONE), server.base, cls, st)
  await tutor.evaluate(() => {
    const app = window.inkroom
    const b = app.board
    app.boardDoc.transact(() => {
      const z = () => b.nextZ()
      b.create({ t: 'x', pg: 'p0', z: z(), a: 'tutor-ada', c: '#1f2933', w: 1, x: 90, y: 70, tx: 'Solve  x² + 3x − 10 = 0', fs: 64 })
      b.create({ t: 'h', pg: 'p0', z: z(), a: 'tutor-ada', c: '#f59e0b', w: 36, x: 90, y: 175 }, [0, 0, 150, 2, 150, -2, 150, 1, 120, 0])
      b.create({ t: 'r', pg: 'p0', z: z(), a: 'tutor-ada', c: '#2563eb', w: 6, x: 80, y: 260, ex: 700, ey: 260 })
      b.create({ t: 'x', pg: 'p0', z: z(), a: 'tutor-ada', c: '#2563eb', w: 1, x: 110, y: 290, tx: '(x + 5)(x − 2) = 0\nx = −5  or  x = 2', fs: 52 })
      b.create({ t: 'a', pg: 'p0', z: z(), a: 'tutor-ada', c: '#e11d48', w: 6, x: 820, y: 390, ex: 260, ey: -10 })
      b.create({ t: 'e', pg: 'p0', z: z(), a: 'tutor-ada', c: '#16a34a', w: 6, x: 1110, y: 300, ex: 380, ey: 200 })
      b.create({ t: 'x', pg: 'p0', z: z(), a: 'tutor-ada', c: '#16a34a', w: 1, x: 1165, y: 370, tx: 'check!', fs: 56 })
    }, 'demo')
  })
  // Handwriting through real input: the tutor's mouse and the student's finger.
  const loop = (x0, y0, n, r) => Array.from({ length: n }, (_, i) => [x0 + i * 9 + Math.cos(i / 2.2) * r, y0 + Math.sin(i / 2.2) * r * 1.4])
  await mouseStroke(tutor, loop(120, 700, 40, 24))
  await mouseStroke(tutor, loop(120, 820, 52, 20))
  await touchStroke(phone, loop(150, 980, 46, 26))
  await touchStroke(phone, [[900, 900], [960, 1010], [1080, 820]])
  await tutor.locator('[data-tool="laser"]').click()
  // Cursors: each side hovers somewhere the other can see.
  const [tx, ty] = await tutor.evaluate(() => {
    const r = window.inkroom.renderer
    const box = r.liveCanvas.getBoundingClientRect()
    return [box.left + (1300 - r.view.ox) * r.view.scale, box.top + (700 - r.view.oy) * r.view.scale]
  })
  await tutor.mouse.move(tx, ty)
  await tutor.mouse.move(tx + 4, ty + 2)
  await phone.locator('[data-action="hand"]').evaluate((b) => b.click())
  await phone.locator('.chat-form input').evaluate((i) => (i.value = 'Is it x = 2 and x = −5?'))
  await phone.locator('.chat-form').evaluate((f) => f.requestSubmit())
  await phone.waitForFunction(() => document.querySelector('.cursor') !== null, null, { timeout: 10_000 })
  await tutor.waitForFunction(() => document.querySelectorAll('[data-testid="chat"] li').length > 0)
  await tutor.waitForFunction(() => window.inkroom.board.count() >= 11 && !window.inkroom.renderer.repainting)
  await phone.waitForFunction(() => document.querySelector('[data-testid="status"]').dataset.pending === '0')
  await phone.waitForFunction(() => window.inkroom.board.count() >= 11 && !window.inkroom.renderer.repainting)
  await tutor.screenshot({ path: path.join(ROOT, 'docs/board-desktop.png') })
  await phone.waitForTimeout(300)
  await phone.screenshot({ path: path.join(ROOT, 'docs/board-phone.png') })
  await phone.locator('[data-action="people"]').click()
  await phone.waitForTimeout(400) // the drawer's 160 ms slide-in transition; a picture, not a test
  await phone.screenshot({ path: path.join(ROOT, 'docs/board-phone-panel.png') })
  console.log('wrote docs/board-desktop.png, docs/board-phone.png, docs/board-phone-panel.png')
} finally {
  await browser.close()
  await server.stop()
}
