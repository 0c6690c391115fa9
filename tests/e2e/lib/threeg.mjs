// A phone on 3G, as Chromium emulates one through CDP: 4x CPU throttling and network
// conditions (latency and throughput), set before the page loads. Chromium throttles
// WebSocket payloads after decompression, so this measures slicing and progressive paint;
// compression's saving is measured separately, in bytes (bench/).

export const FAST_3G = { latency: 150, downloadThroughput: 200_000, uploadThroughput: 93_750 }
export const SLOW_3G = { latency: 400, downloadThroughput: 50_000, uploadThroughput: 50_000 }

/**
 * Opens `url` in a new page of `context` with the CPU throttled `rate` x and the network
 * shaped like `network`. Counts the board document's WebSocket connections and records,
 * on the page's own clock, when the first stroke and the whole board showed, and the
 * longest main-thread task (PerformanceObserver 'longtask').
 */
export async function openThrottled(context, url, { network, rate = 4, boardDoc = '/board' }) {
  const page = await context.newPage()
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`))
  const sockets = []
  page.on('websocket', (ws) => {
    if (ws.url().split('?')[0].endsWith(boardDoc)) sockets.push(ws)
  })
  const cdp = await context.newCDPSession(page)
  await cdp.send('Network.enable')
  await cdp.send('Network.emulateNetworkConditions', { offline: false, ...network })
  await cdp.send('Emulation.setCPUThrottlingRate', { rate })
  await page.addInitScript(() => {
    const probe = { longest: 0, tasks: [] }
    window.__load = probe
    try {
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          probe.longest = Math.max(probe.longest, e.duration)
          probe.tasks.push([Math.round(e.startTime), Math.round(e.duration)])
        }
      }).observe({ type: 'longtask', buffered: true })
    } catch {
      /* no long-task timing */
    }
    const watch = () => {
      const n = window.inkroom?.board?.count() ?? 0
      if (n > 0 && probe.first === undefined) probe.first = performance.now()
      probe.count = n
      requestAnimationFrame(watch)
    }
    requestAnimationFrame(watch)
  })
  const t0 = Date.now()
  await page.goto(url)
  return { page, cdp, sockets, t0 }
}

/** Waits until the page shows `n` strokes; returns the page-clock timings. */
export async function whenShown(page, n, timeout) {
  await page.waitForFunction((count) => (window.inkroom?.board?.count() ?? 0) >= count, n, {
    timeout,
    polling: 100,
  })
  return page.evaluate(() => {
    const p = window.__load
    // Tasks from the first stroke on: the board streaming in; before it: start-up (the
    // scripts' evaluation, setting the board up, its first layout and paint).
    const streaming = p.tasks.filter(([start]) => start >= p.first - 1).map(([, d]) => d)
    const startUp = p.tasks.filter(([start]) => start < p.first - 1).map(([, d]) => d)
    return {
      firstMs: Math.round(p.first),
      wholeMs: Math.round(performance.now()),
      longestTaskMs: Math.round(p.longest),
      longestStartUpMs: Math.max(0, ...startUp),
      longestWhileStreamingMs: Math.max(0, ...streaming),
    }
  })
}
