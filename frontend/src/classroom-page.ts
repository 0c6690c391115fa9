// `/c/{C}`: gets a token (a link made with `inkroom token`, the one remembered on this
// device, or a fresh one from the session or the join grant), opens the board, keeps the
// token fresh, and replaces the board with a full-screen message when access ends.

import { ApiError, type PageToken, api } from './api'
import { App } from './app'
import { reasonForClose } from './refusals'
import { type Session, isTeacher, rememberLast, rememberToken, sessionFromToken, storedToken } from './session'
import { TokenKeeper, tokenExpiry } from './tokens'
import { type Chrome, buildChrome } from './ui'
import { yieldToPage } from './store'

// Only the board is on the critical path: the refusal screen (Preact) and the tutor's
// billing banner load when they are needed.
async function renderRefusal(mount: HTMLElement, reason: string, detail?: string): Promise<void> {
  const { renderRefusal } = await import('./screens/refusal')
  renderRefusal(mount, reason, detail)
}

/** A remembered token is used as is when it has at least this long left. */
const FRESH_ENOUGH_S = 120

export async function openClassroom(mount: HTMLElement, classroom: string): Promise<void> {
  const params = new URLSearchParams(window.location.search)
  const linkToken = params.get('token')
  if (linkToken) {
    // Keep the token out of the address bar (screenshots, shoulder surfers); it is remembered.
    rememberToken(classroom, linkToken)
    history.replaceState(null, '', window.location.pathname)
  }
  let token = linkToken
  let renewable = !linkToken
  if (!token) {
    const stored = storedToken(classroom)
    if (stored && tokenExpiry(stored) - Date.now() / 1000 > FRESH_ENOUGH_S) token = stored
    else {
      try {
        token = (await api<PageToken>('POST', `/api/classrooms/${encodeURIComponent(classroom)}/token`)).token
      } catch (err) {
        const e = err as ApiError
        // Offline (or the server is down): the board still opens from this device's copy.
        if (e.reason === 'offline' || e.reason === 'server') token = stored
        if (!token) {
          await renderRefusal(mount, e.reason, e.message)
          return
        }
        renewable = e.reason === 'offline' || e.reason === 'server'
      }
    }
  }
  const session = sessionFromToken(classroom, token)
  if ('error' in session) {
    await renderRefusal(mount, session.reason, session.error)
    return
  }
  rememberToken(classroom, session.token)
  rememberLast(classroom, session.role)
  // The scripts' evaluation ends here; the board is set up in tasks of its own (its
  // chrome, then the rest), each well under 200 ms on an old phone.
  await yieldToPage()
  const chrome = buildChrome(mount, session)
  await yieldToPage()
  start(mount, session, renewable, chrome)
}

function start(mount: HTMLElement, session: Session, renewable: boolean, chrome: Chrome): void {
  document.title = `${session.classroom} · Inkroom`
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws'
  let app: App | null = null
  let ended = false
  let stopBilling = () => undefined as void
  const end = (reason: string, detail?: string) => {
    if (ended) return
    ended = true
    keeper.stop()
    stopBilling()
    app?.destroy()
    window.inkroom = undefined
    void renderRefusal(mount, reason, detail)
  }
  const keeper = new TokenKeeper(
    session.classroom,
    session.userId,
    session.token,
    (token) => {
      rememberToken(session.classroom, token)
      app?.setToken(token)
    },
    (refusal) => end(refusal.reason, refusal.message),
    renewable,
  )
  app = new App(mount, session, `${scheme}://${window.location.host}/ws`, {
    chrome,
    onClosed: async (code, reason) => {
      if (code === 4401) {
        // The token ran out (a laptop asleep past its renewal): renew, then reconnect.
        const fresh = keeper.secondsLeft() > 5 ? keeper.token : await keeper.renew()
        if (fresh) app?.setToken(fresh, true)
        else if (!ended && !renewable) end('token-expired', reason)
        return
      }
      end(reasonForClose(code, reason), reason)
    },
  })
  // The tutor hears from billing here (grace, lapsed): students are not told on the board.
  if (isTeacher(session.role)) {
    void import('./billing-banner').then(({ watchBilling }) => {
      if (!ended && app) stopBilling = watchBilling(app.chrome.banner, session.classroom)
    })
  }
  // Tests and the benchmark read the documents through this handle.
  window.inkroom = app
  keeper.start()
  void app.start()
}
