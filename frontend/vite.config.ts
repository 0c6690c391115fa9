import { defineConfig, type Plugin } from 'vite'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'
import { createHash } from 'node:crypto'

// The service worker precaches the whole shell of a release: the build writes the list of
// files (every hashed asset plus the public files) and a release id derived from them into
// dist/sw.js, so a deploy installs a new worker with a new cache.
function precacheList(): Plugin {
  return {
    name: 'inkroom-precache',
    apply: 'build',
    closeBundle() {
      const assets = readdirSync(join('dist', 'assets'))
        .filter((n) => !/\.(gz|br)$/.test(n))
        .sort()
        .map((n) => `/assets/${n}`)
      const publicFiles = ['/manifest.webmanifest', '/icon.svg', '/icon-192.png', '/icon-512.png', '/icon-maskable-512.png']
      const list = ['/', ...publicFiles, ...assets]
      const release = createHash('sha256').update(list.join('\n')).update(readFileSync(join('dist', 'index.html'))).digest('hex').slice(0, 12)
      const file = join('dist', 'sw.js')
      const src = readFileSync(file, 'utf8')
        .replace(/^const RELEASE = .*$/m, `const RELEASE = '${release}'`)
        .replace(/^const PRECACHE = .*$/m, `const PRECACHE = ${JSON.stringify(list)}`)
      if (!src.includes(release)) throw new Error('sw.js: RELEASE placeholder not found')
      writeFileSync(file, src)
    },
  }
}

// Hashed assets are written beside their gzip and brotli forms, so the server sends
// them compressed (a 158 kB script is 50 kB gzipped, less with brotli) without
// compressing per request. server/routes/client.py picks the form the browser accepts.
function precompress(): Plugin {
  return {
    name: 'inkroom-precompress',
    apply: 'build',
    closeBundle() {
      const dir = join('dist', 'assets')
      for (const name of readdirSync(dir)) {
        if (!/\.(js|css|svg|json|webmanifest)$/.test(name)) continue
        const data = readFileSync(join(dir, name))
        if (data.length < 1024) continue
        writeFileSync(join(dir, `${name}.gz`), gzipSync(data, { level: 9 }))
        writeFileSync(
          join(dir, `${name}.br`),
          brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
        )
      }
    },
  }
}

// Built into dist/, which `pip install .` copies into the Python package (setup.py); the
// server serves it at `/`, `/c/{classroom}` and `/j/{code}`.
export default defineConfig({
  base: '/',
  plugins: [precompress(), precacheList()],
  // Preact's automatic JSX runtime for the screens (src/screens); the board has no JSX.
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Android 8/9 phones are frozen at Chrome 138; this keeps them (and older) working.
    target: 'chrome100',
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    proxy: {
      '/ws': { target: 'ws://127.0.0.1:8000', ws: true },
      '/api': 'http://127.0.0.1:8000',
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
})
