import { defineConfig } from 'vite'

// Built into dist/, which `pip install .` copies into the Python package (setup.py); the
// server serves it at `/`, `/c/{classroom}` and `/j/{code}`.
export default defineConfig({
  base: '/',
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
