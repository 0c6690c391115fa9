// In-page synthetic input for benchmarks. CDP input round-trips slow down under CPU
// throttling (a 120-event stroke takes seconds), so the writer runs inside the page on
// its own clock: points are emitted at exactly `hz` per second, catching up after a
// late timer, like a real digitiser would.

/** Installs window.__synth in the page. Call once per page. */
export async function installSynth(page) {
  await page.evaluate(() => {
    const canvas = () => window.inkroom.renderer.liveCanvas
    const fire = (type, x, y, kind, pressure, buttons) => {
      const r = canvas().getBoundingClientRect()
      canvas().dispatchEvent(
        new PointerEvent(type, {
          bubbles: true,
          cancelable: true,
          pointerId: kind === 'mouse' ? 1 : 7,
          pointerType: kind,
          isPrimary: true,
          clientX: r.left + x,
          clientY: r.top + y,
          pressure,
          buttons,
          button: type === 'pointermove' ? -1 : 0,
        }),
      )
    }
    /**
     * Writes for `seconds`: strokes of `strokeMs` at `hz` points/s, with `gapMs` pen-up
     * gaps in which a mouse hovers (cursor traffic) when `hover` is set. Coordinates in
     * CSS px of the stage, a handwriting-like wave moving along lines.
     */
    window.__synth = ({ seconds, hz = 60, strokeMs = 2000, gapMs = 300, kind = 'touch', hover = true }) =>
      new Promise((resolve) => {
        const r = canvas().getBoundingClientRect()
        const start = performance.now()
        const period = 1000 / hz
        let emitted = 0
        let down = false
        let strokeStart = start
        let line = 0
        let pos = 0
        let strokes = 0
        const tick = () => {
          const now = performance.now()
          const due = Math.floor((now - start) / period)
          while (emitted < due) {
            const t = start + emitted * period
            emitted++
            const inStroke = (t - strokeStart) % (strokeMs + gapMs) < strokeMs
            pos += 1
            const x = 20 + ((pos * 2.2) % (r.width - 40))
            if (x < 24) line = (line + 1) % 8
            const y = 40 + line * ((r.height - 80) / 8) + Math.sin(pos / 4) * 12 + Math.cos(pos / 9) * 6
            const p = 0.35 + 0.3 * Math.abs(Math.sin(pos / 11))
            if (inStroke && !down) {
              fire('pointerdown', x, y, kind, p, 1)
              down = true
              strokes++
            } else if (inStroke) fire('pointermove', x, y, kind, p, 1)
            else if (down) {
              fire('pointerup', x, y, kind, 0, 0)
              down = false
            } else if (hover) fire('pointermove', x, y, 'mouse', 0, 0)
          }
          if (now - start < seconds * 1000) setTimeout(tick, 4)
          else {
            if (down) fire('pointerup', 0, 0, kind, 0, 0)
            resolve({ points: emitted, strokes, ms: performance.now() - start })
          }
        }
        tick()
      })
  })
}

/** Adds `count` finished handwriting-like strokes to page p0 of the open board, in the page. */
export async function seedStrokes(page, count, pointsPerStroke = 30, pg = 'p0') {
  return page.evaluate(
    ({ count, n, pg }) => {
      const app = window.inkroom
      const board = app.board
      let seed = 12345
      const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff)
      const t0 = performance.now()
      const batch = 250
      for (let b = 0; b < count; b += batch) {
        app.boardDoc.transact(() => {
          for (let i = b; i < Math.min(count, b + batch); i++) {
            const x = Math.round(20 + rnd() * 1500)
            const y = Math.round(20 + rnd() * 1120)
            const pts = [0, 0]
            for (let k = 1; k < n; k++) pts.push(Math.round(2 + rnd() * 3), Math.round((rnd() - 0.5) * 8))
            board.create({ t: 'p', pg, z: board.nextZ(), a: 'seed', c: '#1f2933', w: 4, x, y, done: true }, pts)
          }
        }, 'seed')
      }
      return performance.now() - t0
    },
    { count, n: pointsPerStroke, pg },
  )
}
