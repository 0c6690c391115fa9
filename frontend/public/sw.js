// Inkroom service worker: the app shell works offline, so a classroom link (or the
// installed app) opens on a phone with no network and shows the board from IndexedDB.
//
// * Install caches the *whole* shell of this release: the page, every hashed script and
//   stylesheet the build wrote, the manifest and the icons. The build writes the list
//   and a release id into this file (vite.config.ts, `inkroom-precache`), so a deploy is a
//   new worker with a new cache. Install fails unless every file was cached (addAll is
//   all or nothing), so a half-cached release never takes over.
// * Updates are safe: the new worker takes over at once, but the previous release's
//   cache is kept, so a page still running the old script can load its lazy chunks
//   offline. Older caches are deleted.
// * Navigations: network first with a deadline (a 3G blip must not mean a blank page),
//   else the cached page. Hashed assets: cache first (their names change with their
//   content). WebSockets (/ws/), the API and health checks never go through the cache.
const RELEASE = 'dev'
const PRECACHE = ['/', '/manifest.webmanifest', '/icon.svg', '/icon-192.png', '/icon-512.png']
const PREFIX = 'inkroom-shell-'
const CACHE = PREFIX + RELEASE
const KEPT = 'inkroom-releases'
const NAVIGATION_DEADLINE_MS = 4000

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((c) => c.addAll(PRECACHE.map((u) => new Request(u, { cache: 'reload' }))))
      .then(() => self.skipWaiting()),
  )
})

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      // Remember the last two releases; drop every other shell cache.
      const meta = await caches.open(KEPT)
      const res = await meta.match('/__releases')
      const before = res ? await res.json() : []
      const releases = [CACHE, ...before.filter((r) => r !== CACHE)].slice(0, 2)
      await meta.put('/__releases', new Response(JSON.stringify(releases)))
      const keys = await caches.keys()
      await Promise.all(
        keys.filter((k) => k.startsWith(PREFIX) && !releases.includes(k)).map((k) => caches.delete(k)),
      )
      await self.clients.claim()
    })(),
  )
})

function withDeadline(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('deadline')), ms)
    promise.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (e) => {
        clearTimeout(timer)
        reject(e)
      },
    )
  })
}

async function cachedPage() {
  const own = await caches.open(CACHE)
  return (await own.match('/')) || (await caches.match('/')) || Response.error()
}

self.addEventListener('fetch', (event) => {
  const req = event.request
  const url = new URL(req.url)
  if (req.method !== 'GET' || url.origin !== self.location.origin) return
  if (/^\/(ws|api|healthz|readyz|metrics)(\/|$)/.test(url.pathname)) return
  if (req.mode === 'navigate') {
    // Every route (/, /c/{C}, /j/{code}) is the same page; the script routes.
    const fresh = fetch(req).then((res) => {
      if (res.ok) {
        const copy = res.clone()
        event.waitUntil(caches.open(CACHE).then((c) => c.put('/', copy)))
      }
      return res
    })
    event.respondWith(withDeadline(fresh, NAVIGATION_DEADLINE_MS).catch(() => cachedPage()))
    return
  }
  event.respondWith(
    caches.match(req).then(
      (hit) =>
        hit ||
        fetch(req).then((res) => {
          if (res.ok && url.pathname.startsWith('/assets/')) {
            const copy = res.clone()
            event.waitUntil(caches.open(CACHE).then((c) => c.put(req, copy)))
          }
          return res
        }),
    ),
  )
})
