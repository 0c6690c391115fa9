// Wires the two documents, their links, the renderer, tools and chrome together.

import * as Y from 'yjs'
import { Board, FIRST_PAGE, LOCAL, type ShapeView } from './board'
import { Classroom, type FollowMe } from './classroom'
import { Link, type LinkState } from './link'
import { Renderer } from './render'
import { CursorPublisher, type CursorState, qualityOf, rosterOf, userColour } from './presence'
import { type Role, type Session, canDraw, isTeacher, lowered } from './session'
import { DRAWING_TOOLS, type Tool, Tools } from './tools'
import { type Chrome, COLOURS, WIDTHS, buildChrome, h, renderChat, renderRoster } from './ui'
import { iconEl } from './icons'
import { yieldToPage } from './store'
import { CallPanel } from './call/panel'

export class App {
  readonly boardDoc = new Y.Doc()
  readonly classDoc = new Y.Doc()
  readonly board: Board
  readonly classroom: Classroom
  readonly boardLink: Link
  readonly classLink: Link
  readonly renderer: Renderer
  readonly tools: Tools
  readonly undo: Y.UndoManager
  readonly chrome: Chrome
  readonly cursor: CursorPublisher
  readonly call: CallPanel
  page = FIRST_PAGE
  colour = COLOURS[0]
  width = WIDTHS[1]
  private followTimer = 0
  private lastQuality = -1

  constructor(
    mount: HTMLElement,
    readonly session: Session,
    serverUrl: string,
    opts: {
      onClosed?: (code: number, reason: string) => void
      /** The chrome, when built earlier (in a task of its own) for `session` in `mount`. */
      chrome?: Chrome
    } = {},
  ) {
    this.board = new Board(this.boardDoc)
    this.classroom = new Classroom(this.classDoc)
    const store = (doc: string) => `inkroom:${session.userId}:${session.classroom}/${doc}`
    const onClosed = opts.onClosed
    this.boardLink = new Link({ serverUrl, name: `${session.classroom}/board`, doc: this.boardDoc, token: session.token, storeName: store('board'), onClosed })
    this.classLink = new Link({ serverUrl, name: `${session.classroom}/class`, doc: this.classDoc, token: session.token, storeName: store('class'), onClosed })
    this.chrome = opts.chrome ?? buildChrome(mount, session)
    this.chrome.root.dataset.role = session.role
    this.renderer = new Renderer(this.chrome.stage, this.board)
    this.renderer.setPage(this.page)
    // A followed view is defined against the screen's size: applied again once the stage
    // is measured (after the first layout) and whenever it changes size.
    this.renderer.onResize = () => {
      const f = this.classroom.followMe
      if (f && f.userId !== this.session.userId) this.applyFollow(f)
    }
    this.undo = new Y.UndoManager([this.board.shapes, this.board.pages], {
      trackedOrigins: new Set([LOCAL]),
      // One undo step per gesture: every gesture calls stopCapturing() first.
      captureTimeout: 10 * 60_000,
    })
    this.cursor = new CursorPublisher(this.boardLink.awareness, session.userId, this.page)
    const callUrl = `${serverUrl.replace(/\/ws$/, '/sfu')}/${session.classroom}?token=${encodeURIComponent(session.token)}`
    this.call = new CallPanel(this.chrome.callMount, session, callUrl, {
      setState: (key, value) => this.classDoc.transact(() => this.classroom.state.set(key, value), LOCAL),
      getState: (key) => this.classroom.state.get(key),
    })
    this.classLink.awareness.setLocalState({ u: session.userId, n: session.name, r: session.role, q: 0 })
    this.tools = new Tools({
      board: this.board,
      renderer: this.renderer,
      cursor: this.cursor,
      undo: this.undo,
      userId: session.userId,
      colour: () => this.colour,
      width: () => this.width,
      canDraw: () => this.canDraw(),
      page: () => this.page,
      slowLink: () => this.slowLink(),
      onViewChanged: (settled) => this.onViewChanged(settled),
      onEdit: () => undefined,
    })
    this.bindChrome()
    this.bindDocs()
    this.selectTool(canDraw(session.role) ? 'pen' : 'laser')
  }

  async start(): Promise<void> {
    // The chrome's state (pages, lock, roster, chat) is filled in a task of its own:
    // setting the board up is one already, and each should stay short on an old phone.
    await yieldToPage()
    this.refreshAll()
    // IndexedDB first: the board shows at once, and the first sync sends only what is missing.
    await Promise.all([this.boardLink.whenLocal, this.classLink.whenLocal])
    this.refreshAll()
    this.renderer.invalidate(true)
    this.boardLink.connect()
    this.classLink.connect()
  }

  /** A renewed token: used for every later connection (and at once after a 4401). */
  setToken(token: string, reconnect = false): void {
    this.token = token
    this.boardLink.setToken(token, reconnect)
    this.classLink.setToken(token, reconnect)
  }

  token = ''

  destroy(): void {
    window.removeEventListener('keydown', this.keyHandler)
    this.boardLink.destroy()
    this.classLink.destroy()
  }

  /** The role in force now: the token's, lowered by an administrator's override. */
  get role(): Role {
    return lowered(this.session.role, this.classroom.roleOverride(this.session.userId))
  }

  canDraw(): boolean {
    if (!canDraw(this.role)) return false
    return !(this.classroom.boardLocked && !isTeacher(this.role))
  }

  private slowLink(): boolean {
    const ws = this.boardLink.provider.ws
    const rtt = this.boardLink.state.rttMs ?? 0
    return rtt > 400 || (!!ws && ws.bufferedAmount > 0)
  }

  // -- pages and views -------------------------------------------------------------------

  setPage(pg: string): void {
    if (pg === this.page) return
    this.page = pg
    this.board.focus(pg)
    this.tools.selected = []
    this.renderer.selection = null
    this.renderer.setPage(pg)
    this.cursor.update({ g: pg, x: undefined, y: undefined })
    this.refreshPages()
    this.onViewChanged(true)
  }

  private onViewChanged(settled: boolean): void {
    this.renderRemote()
    if (!settled) return
    const f = this.classroom.followMe
    if (f && f.userId === this.session.userId) {
      clearTimeout(this.followTimer)
      this.followTimer = window.setTimeout(() => this.classroom.setFollowMe(this.currentView()), 250)
    }
  }

  currentView(): FollowMe {
    const r = this.renderer
    const { width, height } = r.size
    const v = r.view
    return {
      userId: this.session.userId,
      pageId: this.page,
      x: Math.round(v.ox + width / v.scale / 2),
      y: Math.round(v.oy + height / v.scale / 2),
      zoom: Math.round((v.scale / r.fitScale()) * 1000) / 1000,
    }
  }

  private applyFollow(f: FollowMe): void {
    this.setPage(f.pageId)
    const r = this.renderer
    const { width, height } = r.size
    const scale = r.fitScale() * f.zoom
    r.setView({ scale, ox: f.x - width / scale / 2, oy: f.y - height / scale / 2 })
  }

  // -- document observers ----------------------------------------------------------------

  private bindDocs(): void {
    this.board.onPages(() => this.refreshPages())
    this.board.onShapes(() => {
      if (this.tools.selected.length) this.tools.updateSelectionBox()
      this.refreshUndo()
    })
    this.undo.on('stack-item-added', () => this.refreshUndo())
    this.undo.on('stack-item-popped', () => this.refreshUndo())
    this.classroom.state.observeDeep(() => this.refreshState())
    this.classroom.hands.observe(() => this.refreshRoster())
    this.classroom.chat.observe(() => renderChat(this.chrome.chatList, this.classroom.chat.toArray()))
    this.classLink.awareness.on('change', () => this.refreshRoster())
    this.boardLink.awareness.on('change', () => this.renderRemote())
    this.boardLink.onChange(() => this.refreshStatus())
    this.classLink.onChange((s) => {
      this.refreshStatus()
      const q = qualityOf(s.rttMs, s.status === 'online')
      if (q !== this.lastQuality && q < 3) {
        this.lastQuality = q
        const st = this.classLink.awareness.getLocalState() ?? {}
        this.classLink.awareness.setLocalState({ ...st, q })
      }
    })
  }

  private refreshAll(): void {
    this.refreshPages()
    this.refreshState()
    this.refreshRoster()
    this.refreshUndo()
    renderChat(this.chrome.chatList, this.classroom.chat.toArray())
  }

  private refreshPages(): void {
    const pages = this.board.pageList()
    const i = Math.max(0, pages.findIndex((p) => p.id === this.page))
    this.chrome.pageLabel.textContent = `${i + 1} / ${pages.length}`
    this.chrome.root.dataset.page = this.page
    this.chrome.prev.disabled = i <= 0
    this.chrome.next.disabled = i >= pages.length - 1
    this.chrome.addPage.disabled = !this.canDraw()
  }

  private refreshState(): void {
    const locked = this.classroom.boardLocked
    const f = this.classroom.followMe
    const me = this.session.userId
    const teacher = isTeacher(this.role)
    this.chrome.lock.checked = locked
    this.chrome.follow.checked = !!f && f.userId === me
    this.chrome.root.dataset.locked = String(locked)
    const following = !!f && f.userId !== me
    this.chrome.root.dataset.following = String(following)
    const messages: string[] = []
    if (locked) messages.push(teacher ? 'Board locked for students' : 'The tutor has locked the board')
    if (following) messages.push('Following the tutor’s view')
    if (this.session.role === 'observer') messages.push('Observing: view only')
    else if (this.role !== this.session.role)
      messages.push(this.role === 'observer' ? 'An administrator made you an observer: view only' : 'An administrator limited you to what a student may do')
    this.chrome.banner.hidden = messages.length === 0
    this.chrome.banner.textContent = messages.join(' · ')
    const drawable = this.canDraw()
    for (const [tool, b] of this.chrome.toolButtons) b.disabled = !drawable && DRAWING_TOOLS.has(tool)
    this.chrome.undo.disabled = !drawable || !this.undo.canUndo()
    this.chrome.redo.disabled = !drawable || !this.undo.canRedo()
    if (!drawable && DRAWING_TOOLS.has(this.tools.tool)) this.selectTool('laser')
    this.refreshPages()
    if (following) this.applyFollow(f)
  }

  private refreshUndo(): void {
    const drawable = this.canDraw()
    this.chrome.undo.disabled = !drawable || !this.undo.canUndo()
    this.chrome.redo.disabled = !drawable || !this.undo.canRedo()
  }

  private refreshRoster(): void {
    const raised = this.classroom.raisedHands()
    const hands = new Map(raised.map((r) => [r.userId, r]))
    const roster = rosterOf(this.classLink.awareness)
    renderRoster(this.chrome.roster, roster, hands)
    const names = this.names()
    const teacher = isTeacher(this.session.role)
    this.chrome.hands.replaceChildren(
      ...raised.map((r) =>
        h(
          'li',
          { 'data-user': r.userId },
          iconEl('hand'),
          h('span', { class: 'who', text: names.get(r.userId) ?? (r.name || 'A student') }),
          teacher ? h('button', { type: 'button', 'data-action': 'lower-hand', 'data-user': r.userId, text: 'Lower' }) : null,
        ),
      ),
    )
    this.chrome.root.dataset.hands = String(raised.length)
    const mine = hands.has(this.session.userId)
    const label = this.chrome.handButton.querySelector('.label')
    if (label) label.textContent = mine ? 'Lower hand' : 'Raise hand'
    this.chrome.handButton.setAttribute('aria-pressed', String(mine))
    const people = this.chrome.peopleButton
    people.replaceChildren(iconEl('people'), h('span', { class: 'count', text: String(roster.length) }))
    if (hands.size) people.append(iconEl('hand'), h('span', { class: 'count', text: String(hands.size) }))
    people.setAttribute('aria-label', `People and chat: ${roster.length} here${hands.size ? `, ${hands.size} hand${hands.size === 1 ? '' : 's'} raised` : ''}`)
    this.renderRemote()
  }

  private names(): Map<string, string> {
    return new Map(rosterOf(this.classLink.awareness).map((e) => [e.u, e.n]))
  }

  private refreshStatus(): void {
    const b = this.boardLink.state
    const c = this.classLink.state
    const pending = b.pending + c.pending
    const unsaved = b.unsaved + c.unsaved
    const el = this.chrome.status
    // "sending" (not yet received), "sent" (received, not yet stored), "saved".
    let save = pending ? 'sending' : unsaved ? 'sent' : b.saved || c.saved ? 'saved' : ''
    let state: string
    let text: string
    const refused = b.refused ?? c.refused
    if (refused) {
      state = 'refused'
      text = `Access refused: ${refused}`
    } else if (b.status === 'online' && c.status === 'online') {
      state = pending ? 'syncing' : 'online'
      text = pending
        ? `Sending ${pending} change${pending === 1 ? '' : 's'}`
        : unsaved
          ? 'Sent · saving'
          : save === 'saved'
            ? 'Saved'
            : 'Online'
      if (b.denied) {
        save = ''
        state = 'denied'
        text = pending ? `${pending} change${pending === 1 ? '' : 's'} not accepted` : 'Read-only'
      }
    } else {
      state = b.status === 'connecting' || c.status === 'connecting' ? 'connecting' : 'offline'
      const base = state === 'connecting' ? 'Connecting' : 'Offline'
      text = pending ? `${base} · ${pending} change${pending === 1 ? '' : 's'} waiting` : base
    }
    el.textContent = text
    el.title = pending
      ? `${pending} change${pending === 1 ? '' : 's'} not yet confirmed by the server`
      : unsaved
        ? 'The server has your changes and is storing them'
        : save === 'saved'
          ? 'Your changes are stored on the server'
          : text
    el.dataset.state = state
    el.dataset.pending = String(pending)
    el.dataset.save = save
  }

  // -- others' cursors, lasers and previews ----------------------------------------------

  private renderRemote(): void {
    const names = this.names()
    const me = this.boardDoc.clientID
    const r = this.renderer
    const seen = new Set<string>()
    const previews: Array<{ shape: ShapeView; alpha: number }> = []
    for (const [client, raw] of this.boardLink.awareness.getStates()) {
      if (client === me) continue
      const s = raw as Partial<CursorState>
      if (typeof s.u !== 'string' || s.g !== this.page || typeof s.x !== 'number' || typeof s.y !== 'number') continue
      const key = String(client)
      seen.add(key)
      const colour = userColour(s.u)
      let el = this.chrome.cursors.querySelector<HTMLElement>(`[data-client="${key}"]`)
      if (!el) {
        el = h('div', { class: 'cursor', 'data-client': key, 'data-user': s.u }, h('span', { class: 'dot' }), h('span', { class: 'name' }))
        this.chrome.cursors.append(el)
      }
      el.style.setProperty('--c', colour)
      el.querySelector('.name')!.textContent = names.get(s.u) ?? s.u
      const sx = (s.x - r.view.ox) * r.view.scale
      const sy = (s.y - r.view.oy) * r.view.scale
      el.style.transform = `translate(${sx}px, ${sy}px)`
      if (s.l) {
        let trail = r.lasers.get(key)
        if (!trail) r.lasers.set(key, (trail = { c: colour, points: [] }))
        const last = trail.points[trail.points.length - 1]
        if (!last || last.x !== s.x || last.y !== s.y) trail.points.push({ x: s.x, y: s.y, at: performance.now() })
      }
      if (Array.isArray(s.s) && s.s.length === 7) {
        const [t, x, y, ex, ey, w, c] = s.s
        previews.push({
          alpha: 0.6,
          shape: { id: '_r' + key, t, pg: this.page, z: '', a: s.u, c: String(c), w: Number(w) || 2, x, y, ex, ey, done: true, box: { minX: Math.min(x, x + ex) - 50, minY: Math.min(y, y + ey) - 50, maxX: Math.max(x, x + ex) + 50, maxY: Math.max(y, y + ey) + 50 }, rev: Math.random() },
        })
      }
      if (Array.isArray(s.m) && s.m.length > 2) {
        const [dx, dy, ...ids] = s.m
        for (const id of ids) {
          const v = this.board.view(String(id))
          if (!v) continue
          previews.push({ alpha: 0.45, shape: { ...v, id: '_r' + v.id, x: v.x + Number(dx), y: v.y + Number(dy), points: v.points?.map((p) => ({ x: p.x + Number(dx), y: p.y + Number(dy), p: p.p })), box: { minX: v.box.minX + Number(dx), minY: v.box.minY + Number(dy), maxX: v.box.maxX + Number(dx), maxY: v.box.maxY + Number(dy) }, rev: Math.random() } })
        }
      }
    }
    for (const el of [...this.chrome.cursors.children] as HTMLElement[]) {
      if (!seen.has(el.dataset.client ?? '')) el.remove()
    }
    r.remotePreviews = previews
    r.invalidate()
  }

  // -- chrome ----------------------------------------------------------------------------

  selectTool(t: Tool): void {
    if (DRAWING_TOOLS.has(t) && !this.canDraw()) t = 'laser'
    this.tools.setTool(t)
    for (const [tool, b] of this.chrome.toolButtons) b.setAttribute('aria-pressed', String(tool === t))
  }

  private bindChrome(): void {
    const c = this.chrome
    for (const [tool, b] of c.toolButtons) b.addEventListener('click', () => this.selectTool(tool))
    c.colourButtons.forEach((b, i) =>
      b.addEventListener('click', () => {
        this.colour = COLOURS[i]
        c.colourButtons.forEach((x, j) => x.setAttribute('aria-pressed', String(i === j)))
      }),
    )
    c.colourButtons[0].setAttribute('aria-pressed', 'true')
    c.widthButtons.forEach((b, i) =>
      b.addEventListener('click', () => {
        this.width = WIDTHS[i]
        c.widthButtons.forEach((x, j) => x.setAttribute('aria-pressed', String(i === j)))
      }),
    )
    c.widthButtons[1].setAttribute('aria-pressed', 'true')
    c.undo.addEventListener('click', () => this.doUndo())
    c.redo.addEventListener('click', () => this.doRedo())
    const step = (d: number) => {
      const pages = this.board.pageList()
      const i = pages.findIndex((p) => p.id === this.page)
      const next = pages[Math.min(pages.length - 1, Math.max(0, i + d))]
      if (next) this.setPage(next.id)
    }
    c.prev.addEventListener('click', () => step(-1))
    c.next.addEventListener('click', () => step(1))
    c.addPage.addEventListener('click', () => {
      if (!this.canDraw()) return
      this.undo.stopCapturing()
      this.setPage(this.board.addPage(this.page))
    })
    const panel = (open: boolean) => {
      c.root.classList.toggle('panel-open', open)
      c.peopleButton.setAttribute('aria-expanded', String(open))
    }
    c.peopleButton.addEventListener('click', () => panel(!c.root.classList.contains('panel-open')))
    c.scrim.addEventListener('pointerdown', (e) => {
      e.preventDefault()
      panel(false)
    })
    c.handButton.addEventListener('click', () => {
      const up = !this.classroom.hands.has(this.session.userId)
      this.classroom.raiseHand(this.session.userId, up, this.session.name)
    })
    c.hands.addEventListener('click', (e) => {
      const b = (e.target as HTMLElement).closest<HTMLElement>('[data-action="lower-hand"]')
      if (b?.dataset.user) this.classroom.raiseHand(b.dataset.user, false)
    })
    c.teacher.hidden = !isTeacher(this.session.role)
    c.lock.addEventListener('change', () => this.classroom.setBoardLocked(c.lock.checked))
    c.follow.addEventListener('change', () => this.classroom.setFollowMe(c.follow.checked ? this.currentView() : null))
    c.clear.addEventListener('click', () => {
      if (!this.board.idsOnPage(this.page).length) return
      c.confirmClear.showModal()
    })
    c.confirmClear.addEventListener('close', () => {
      if (c.confirmClear.returnValue === 'clear') this.clearPage()
      c.confirmClear.returnValue = ''
    })
    c.chatForm.addEventListener('submit', (e) => {
      e.preventDefault()
      this.classroom.say(this.session.userId, this.session.name, c.chatInput.value)
      c.chatInput.value = ''
    })
    // Export code loads on first use: it is not needed to show the board.
    c.exportPng.addEventListener('click', async () => {
      const { download, pagePng } = await import('./export')
      download(await pagePng(this.board, this.renderer, this.page, 1), `${this.session.classroom}-${this.page}.png`)
    })
    c.exportSvg.addEventListener('click', async () => {
      const { download, pageSvg } = await import('./export')
      download(new Blob([pageSvg(this.board, this.page)], { type: 'image/svg+xml' }), `${this.session.classroom}-${this.page}.svg`)
    })
    window.addEventListener('keydown', this.keyHandler)
  }

  private keyHandler = (e: KeyboardEvent): void => this.onKey(e)

  private onKey(e: KeyboardEvent): void {
    const target = e.target as HTMLElement
    if (target.closest('input, textarea')) return
    const mod = e.ctrlKey || e.metaKey
    if (mod && e.key.toLowerCase() === 'z') {
      e.preventDefault()
      if (e.shiftKey) this.doRedo()
      else this.doUndo()
    } else if (mod && e.key.toLowerCase() === 'y') {
      e.preventDefault()
      this.doRedo()
    } else if ((e.key === 'Delete' || e.key === 'Backspace') && this.canDraw()) {
      this.tools.deleteSelection()
    } else if (!mod && !e.altKey) {
      const t = TOOL_KEYS.get(e.key.toLowerCase())
      if (t) this.selectTool(t)
    }
  }

  doUndo(): void {
    if (!this.canDraw()) return
    this.undo.undo()
    this.tools.updateSelectionBox()
  }

  doRedo(): void {
    if (!this.canDraw()) return
    this.undo.redo()
    this.tools.updateSelectionBox()
  }

  /** Deletes every shape of the page in one transaction: one undo step brings it back. */
  clearPage(): void {
    if (!isTeacher(this.session.role)) return
    const ids = this.board.idsOnPage(this.page)
    if (!ids.length) return
    this.undo.stopCapturing()
    this.boardDoc.transact(() => this.board.remove(ids), LOCAL)
    this.undo.stopCapturing()
    this.classroom.markCleared()
  }

  linkStates(): { board: LinkState; class: LinkState } {
    return { board: this.boardLink.state, class: this.classLink.state }
  }
}

const TOOL_KEYS = new Map<string, Tool>([
  ['v', 'select'], ['p', 'pen'], ['h', 'hl'], ['e', 'eraser'], ['r', 'r'], ['o', 'e'], ['l', 'l'], ['a', 'a'], ['t', 'text'], ['k', 'laser'],
])
