// Routes: `/` the tutor's home, `/j/{code}` the join screen (both Preact), `/c/{C}` the
// classroom (the framework-free board). Each route loads only its own code.

import './style.css'
import './screens.css'
import type { App } from './app'
import { CLASSROOM_PATH, JOIN_PATH, lastClassroom } from './session'

declare global {
  interface Window {
    inkroom?: App
  }
}

const mount = document.getElementById('app')!
const path = window.location.pathname

async function route(): Promise<void> {
  const join = JOIN_PATH.exec(path)
  const classroom = CLASSROOM_PATH.exec(path)
  if (path === '/check') {
    document.title = 'Connection check · Inkroom'
    const { mountCheck } = await import('./check/page')
    mountCheck(mount, window.location)
  } else if (classroom) {
    const { openClassroom } = await import('./classroom-page')
    await openClassroom(mount, classroom[1])
  } else if (join) {
    const { renderJoin } = await import('./screens/join')
    renderJoin(mount, join[1])
  } else if (path.startsWith('/replay/')) {
    const { renderClassroomReplay } = await import('./screens/admin')
    renderClassroomReplay(mount, decodeURIComponent(path.slice('/replay/'.length)))
  } else if (path === '/admin') {
    const { renderAdmin } = await import('./screens/admin')
    renderAdmin(mount)
  } else if (path === '/' || path === '/index.html') {
    // The installed app starts at `/?app`: a student goes back to their last classroom
    // (its board opens offline from this device), a tutor to their home.
    const last = lastClassroom()
    if (new URLSearchParams(window.location.search).has('app') && last && last.role !== 'tutor') {
      window.location.replace(`/c/${encodeURIComponent(last.classroom)}`)
      return
    }
    const { renderHome } = await import('./screens/home')
    renderHome(mount)
  } else {
    const { renderRefusal } = await import('./screens/refusal')
    renderRefusal(mount, 'not-found')
  }
}

void route()

if ('serviceWorker' in navigator && import.meta.env.PROD) {
  window.addEventListener('load', () => {
    navigator.serviceWorker.register('/sw.js').catch(() => undefined)
  })
}
