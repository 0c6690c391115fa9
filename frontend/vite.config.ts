import { defineConfig } from 'vite'

// Served by `inkroom serve --static-dir frontend/dist` at `/`, and as the SPA for `/c/{classroom}`.
export default defineConfig({
  base: '/',
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
})
