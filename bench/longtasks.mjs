// What the long main-thread tasks of loading a large board are made of (issue 8, item 3):
// a CDP trace (with v8's sampling profiler) of a phone's first load and of its reload, at
// 4x CPU on a 360 x 740 touch phone, and for every task over --over ms on the page's main
// thread: when it ran, what kind of work it was (script evaluation, a timer, a frame, a
// message, layout, paint), and the functions that took its time (self time from the
// profiler's samples, and inclusive time of the app's own functions).
//
//   node bench/longtasks.mjs [--strokes 5000] [--rate 4] [--runs 1] [--over 100] [--top 8]
//                            [--settle yes|no] [--static-dir /path/to/frontend/dist] [--trace saved.json]
//
// Function names read best from an unminified build: `npx vite build --minify false
// --outDir /tmp/dist-plain` in a copy of frontend/, then --static-dir /tmp/dist-plain.

import { parseArgs } from 'node:util'
import { startServer } from '../tests/e2e/lib/server.mjs'
import { DESKTOP, PHONE, launch, openClassroom, waitOnline } from '../tests/e2e/lib/browser.mjs'
import { seedStrokes } from '../tests/e2e/lib/synth.mjs'
import { openThrottled } from '../tests/e2e/lib/threeg.mjs'

const { values: opts } = parseArgs({
  options: {
    strokes: { type: 'string', default: '5000' },
    rate: { type: 'string', default: '4' },
    runs: { type: 'string', default: '1' },
    over: { type: 'string', default: '100' },
    top: { type: 'string', default: '8' },
    // 'yes': reload once this device's copy is compacted; 'no': at once (as reload.mjs).
    settle: { type: 'string', default: 'yes' },
    'static-dir': { type: 'string' },
    // Analyse a trace saved earlier (TRACE_OUT=prefix writes each one) instead of running.
    trace: { type: 'string' },
  },
})
const STROKES = Number(opts.strokes)
const OVER_MS = Number(opts.over)
const TOP = Number(opts.top)
const CATEGORIES = [
  'devtools.timeline',
  'v8',
  'v8.execute',
  'disabled-by-default-devtools.timeline',
  'disabled-by-default-v8.cpu_profiler',
]

/** The renderer main thread's tasks and the profiler's samples, from a trace. */
function analyse(events) {
  const threadNames = new Map()
  for (const e of events) if (e.ph === 'M' && e.name === 'thread_name') threadNames.set(`${e.pid}:${e.tid}`, e.args.name)
  const isMain = (e) => threadNames.get(`${e.pid}:${e.tid}`) === 'CrRendererMain'
  // The page's renderer: the main thread that ran the longest script.
  const busy = new Map()
  for (const e of events) {
    if (e.ph === 'X' && e.name === 'RunTask' && isMain(e)) busy.set(e.pid, (busy.get(e.pid) ?? 0) + e.dur)
  }
  const pid = [...busy].sort((a, b) => b[1] - a[1])[0]?.[0]
  const main = events.filter((e) => e.pid === pid && isMain(e) && e.ph === 'X')
  const tid = main[0]?.tid
  // Navigation start: the (last) commit of the page's document.
  const nav = main.findLast((e) => e.name === 'CommitLoad')?.ts ?? main[0]?.ts ?? 0
  // Samples: Profile gives the start time, ProfileChunks the nodes, samples and deltas.
  // The profiler's chunks come from its own thread, tied to the main thread's Profile by id.
  const profile = events.find((e) => e.pid === pid && e.tid === tid && e.name === 'Profile')
  const nodes = new Map()
  const samples = []
  let t = profile?.args.data.startTime ?? 0
  for (const e of events) {
    if (!profile || e.pid !== pid || e.name !== 'ProfileChunk' || e.id !== profile.id) continue
    const p = e.args.data.cpuProfile ?? {}
    for (const n of p.nodes ?? []) nodes.set(n.id, n)
    const deltas = e.args.data.timeDeltas ?? []
    ;(p.samples ?? []).forEach((id, i) => {
      t += deltas[i] ?? 0
      samples.push([t, id])
    })
  }
  samples.sort((a, b) => a[0] - b[0])
  const label = (n) => {
    const f = n.callFrame
    const file = (f.url ?? '').split('/').pop().replace(/-[\w-]{8}\.js$/, '.js')
    return `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}`
  }
  const tasks = main.filter((e) => e.name === 'RunTask' && e.dur / 1000 > OVER_MS)
  return tasks.map((task) => {
    const end = task.ts + task.dur
    const inside = main.filter((e) => e !== task && e.ts >= task.ts && e.ts + (e.dur ?? 0) <= end)
    // Kinds of work directly inside the task (one level down, merged by name).
    const kinds = new Map()
    let depthEnd = -1
    for (const e of inside.sort((a, b) => a.ts - b.ts)) {
      if (e.ts < depthEnd) continue
      depthEnd = e.ts + e.dur
      const what = e.args?.data?.functionName ? `${e.name}(${e.args.data.functionName})` : e.name
      kinds.set(what, (kinds.get(what) ?? 0) + e.dur / 1000)
    }
    const self = new Map()
    const inclusive = new Map()
    const interval = 0.25 // ms, the sampling interval's order; replaced by real deltas below
    let prev = null
    for (const [ts, id] of samples) {
      if (ts < task.ts || ts > end) continue
      const dt = prev === null ? interval : (ts - prev) / 1000
      prev = ts
      let n = nodes.get(id)
      if (!n) continue
      const name = label(n)
      self.set(name, (self.get(name) ?? 0) + dt)
      const seen = new Set()
      for (; n; n = nodes.get(n.parent)) {
        const f = n.callFrame
        if (!/\/assets\/|\/src\//.test(f.url ?? '')) continue
        const l = label(n)
        if (seen.has(l)) continue
        seen.add(l)
        inclusive.set(l, (inclusive.get(l) ?? 0) + dt)
      }
    }
    const top = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, TOP).map(([k, v]) => `${v.toFixed(0).padStart(4)} ms  ${k}`)
    return {
      atMs: Math.round((task.ts - nav) / 1000),
      durMs: Math.round(task.dur / 1000),
      kinds: top(kinds),
      self: top(self),
      app: top(inclusive),
    }
  })
}

function report(title, tasks) {
  console.log(`\n== ${title}: ${tasks.length} task(s) over ${OVER_MS} ms`)
  for (const t of tasks) {
    console.log(`-- task at ${t.atMs} ms, ${t.durMs} ms`)
    console.log('   work in it:')
    for (const l of t.kinds) console.log(`     ${l}`)
    console.log('   self time:')
    for (const l of t.self) console.log(`     ${l}`)
    console.log("   the app's functions (inclusive):")
    for (const l of t.app) console.log(`     ${l}`)
  }
}

let traceCount = 0

async function traced(browser, fn) {
  await browser.startTracing(undefined, { categories: CATEGORIES })
  let out
  try {
    out = await fn()
  } finally {
    const buf = await browser.stopTracing()
    const trace = JSON.parse(buf.toString('utf8'))
    if (process.env.TRACE_OUT) (await import('node:fs')).writeFileSync(`${process.env.TRACE_OUT}-${traceCount++}.json`, buf)
    out = { ...out, tasks: analyse(trace.traceEvents ?? trace) }
  }
  return out
}

async function whole(page) {
  await page.waitForFunction((n) => (window.inkroom?.board?.count() ?? 0) >= n, STROKES, { timeout: 120_000, polling: 100 })
  await waitOnline(page, 60_000)
  return page.evaluate(() => Math.round(window.__load.longest))
}

if (opts.trace) {
  const trace = JSON.parse((await import('node:fs')).readFileSync(opts.trace, 'utf8'))
  report(opts.trace, analyse(trace.traceEvents ?? trace))
  process.exit(0)
}

const server = await startServer({ staticDir: opts['static-dir'] ?? null })
const browser = await launch()
try {
  const cls = `bench-longtasks-${STROKES}`
  const tutor = await openClassroom(await browser.newContext(DESKTOP), server.base, cls, await server.token(cls, 'tutor', 'tutor-1', 'Tutor'))
  await seedStrokes(tutor, STROKES)
  await waitOnline(tutor, 120_000)
  await tutor.context().close()
  for (let run = 0; run < Number(opts.runs); run++) {
    const ctx = await browser.newContext(PHONE)
    const url = `${server.base}/c/${cls}?token=${encodeURIComponent(await server.token(cls, 'student', `s${run}`, 'Sam'))}`
    let page
    const first = await traced(browser, async () => {
      ;({ page } = await openThrottled(ctx, url, { network: { latency: 0, downloadThroughput: -1, uploadThroughput: -1 }, rate: Number(opts.rate) }))
      return { longestMs: await whole(page) }
    })
    report(`run ${run}, first load (longest task on the page's clock ${first.longestMs} ms)`, first.tasks)
    if (opts.settle === 'yes') {
      await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 60_000 }).catch(() => undefined)
      await page.waitForFunction(() => window.inkroom.boardLink.local.settled, null, { timeout: 120_000, polling: 200 })
    }
    const reload = await traced(browser, async () => {
      await page.reload()
      return { longestMs: await whole(page) }
    })
    report(`run ${run}, reload (longest task on the page's clock ${reload.longestMs} ms)`, reload.tasks)
    await ctx.close()
  }
} finally {
  await browser.close()
  await server.stop()
}
