import './style.css'
import { App } from './app'
import { sessionFromLocation } from './session'
import { renderError } from './ui'
import { mountCheck } from './check/page'

declare global {
  interface Window {
    inkroom?: App
  }
}

const mount = document.getElementById('app')!
const session = sessionFromLocation(window.location, window.localStorage)
if (window.location.pathname === '/check') {
  document.title = 'Connection check · Inkroom'
  mountCheck(mount, window.location)
} else if ('error' in session) {
  renderError(mount, session.error)
} else {
  // Keep the token out of the address bar (screenshots, shoulder surfers); it is remembered.
  if (new URLSearchParams(window.location.search).has('token')) {
    history.replaceState(null, '', window.location.pathname)
  }
  document.title = `${session.classroom} · Inkroom`
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws'
  const app = new App(mount, session, `${scheme}://${window.location.host}/ws`)
  // Tests and the benchmark read the documents through this handle.
  window.inkroom = app
  void app.start()
}

if ('serviceWorker' in navigator && import.meta.env.PROD) {
  window.addEventListener('load', () => {
    navigator.serviceWorker.register('/sw.js').catch(() => undefined)
  })
}
