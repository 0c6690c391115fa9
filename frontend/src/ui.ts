// The DOM chrome around the board: header, toolbar, side panel. No framework: the
// pointer path never goes through here, and the pieces re-render only on their own events.

import type { Tool } from './tools'
import type { ChatMessage } from './classroom'
import { QUALITY_LABEL, type RosterEntry, userColour } from './presence'
import type { Session } from './session'

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: Array<Node | string | null | undefined>
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue
    if (k === 'text') el.textContent = String(v)
    else el.setAttribute(k, v === true ? '' : v)
  }
  for (const c of children) if (c != null) el.append(c)
  return el
}

export const TOOLS: Array<{ tool: Tool; label: string; icon: string; key: string }> = [
  { tool: 'select', label: 'Select and move', icon: '⬚', key: 'v' },
  { tool: 'pen', label: 'Pen', icon: '✎', key: 'p' },
  { tool: 'hl', label: 'Highlighter', icon: '▌', key: 'h' },
  { tool: 'eraser', label: 'Stroke eraser', icon: '⌫', key: 'e' },
  { tool: 'r', label: 'Rectangle', icon: '▭', key: 'r' },
  { tool: 'e', label: 'Ellipse', icon: '◯', key: 'o' },
  { tool: 'l', label: 'Line', icon: '╱', key: 'l' },
  { tool: 'a', label: 'Arrow', icon: '➚', key: 'a' },
  { tool: 'text', label: 'Text', icon: 'T', key: 't' },
  { tool: 'laser', label: 'Laser pointer', icon: '✦', key: 'k' },
]

export const COLOURS = ['#1f2933', '#e11d48', '#2563eb', '#16a34a', '#f59e0b']
export const WIDTHS = [4, 8, 16]

export interface Chrome {
  /** Where the call panel (src/call/) mounts itself, above the board. */
  callMount: HTMLElement
  root: HTMLElement
  stage: HTMLElement
  cursors: HTMLElement
  banner: HTMLElement
  status: HTMLElement
  pageLabel: HTMLElement
  prev: HTMLButtonElement
  next: HTMLButtonElement
  addPage: HTMLButtonElement
  peopleButton: HTMLButtonElement
  panel: HTMLElement
  toolButtons: Map<Tool, HTMLButtonElement>
  colourButtons: HTMLButtonElement[]
  widthButtons: HTMLButtonElement[]
  undo: HTMLButtonElement
  redo: HTMLButtonElement
  roster: HTMLElement
  hands: HTMLElement
  handButton: HTMLButtonElement
  teacher: HTMLElement
  lock: HTMLInputElement
  follow: HTMLInputElement
  clear: HTMLButtonElement
  chatList: HTMLElement
  chatForm: HTMLFormElement
  chatInput: HTMLInputElement
  exportPng: HTMLButtonElement
  exportSvg: HTMLButtonElement
}

export function buildChrome(mount: HTMLElement, session: Session): Chrome {
  const toolButtons = new Map<Tool, HTMLButtonElement>()
  const tools = h('div', { class: 'tool-group', role: 'radiogroup', 'aria-label': 'Tools' })
  for (const t of TOOLS) {
    const b = h('button', { class: 'tool', 'data-tool': t.tool, title: `${t.label} (${t.key})`, 'aria-label': t.label, text: t.icon })
    toolButtons.set(t.tool, b)
    tools.append(b)
  }
  const colourButtons = COLOURS.map((c) =>
    h('button', { class: 'swatch', 'data-colour': c, title: c, 'aria-label': `Colour ${c}`, style: `--swatch:${c}` }),
  )
  const widthButtons = WIDTHS.map((w) =>
    h('button', { class: 'width', 'data-width': String(w), title: `Width ${w}`, 'aria-label': `Width ${w}`, style: `--dot:${2 + w}px` }),
  )
  const undo = h('button', { class: 'tool', 'data-action': 'undo', title: 'Undo (Ctrl+Z)', 'aria-label': 'Undo', text: '↶' })
  const redo = h('button', { class: 'tool', 'data-action': 'redo', title: 'Redo (Ctrl+Shift+Z)', 'aria-label': 'Redo', text: '↷' })
  const toolbar = h(
    'nav',
    { class: 'toolbar', 'aria-label': 'Drawing tools' },
    tools,
    h('div', { class: 'tool-group' }, ...colourButtons),
    h('div', { class: 'tool-group' }, ...widthButtons),
    h('div', { class: 'tool-group' }, undo, redo),
  )

  const prev = h('button', { class: 'icon', 'data-action': 'prev-page', 'aria-label': 'Previous page', text: '‹' })
  const next = h('button', { class: 'icon', 'data-action': 'next-page', 'aria-label': 'Next page', text: '›' })
  const addPage = h('button', { class: 'icon', 'data-action': 'add-page', 'aria-label': 'Add page', text: '+' })
  const pageLabel = h('span', { class: 'page-label', 'data-testid': 'page-label', text: '1 / 1' })
  const status = h('span', { class: 'status', 'data-testid': 'status', role: 'status', 'aria-live': 'polite', text: 'Opening…' })
  const peopleButton = h('button', { class: 'people', 'data-action': 'people', 'aria-label': 'People and chat', text: '👥' })
  const exportPng = h('button', { class: 'menu-item', 'data-action': 'export-png', text: 'Export page as PNG' })
  const exportSvg = h('button', { class: 'menu-item', 'data-action': 'export-svg', text: 'Export page as SVG' })
  const menu = h('details', { class: 'menu' }, h('summary', { 'aria-label': 'Menu', text: '⋯' }), h('div', { class: 'menu-list' }, exportPng, exportSvg))
  const header = h(
    'header',
    { class: 'topbar' },
    h('span', { class: 'brand', text: session.classroom }),
    h('span', { class: 'pages' }, prev, pageLabel, next, addPage),
    status,
    peopleButton,
    menu,
  )

  const roster = h('ul', { class: 'roster', 'data-testid': 'roster' })
  const hands = h('ul', { class: 'hands', 'data-testid': 'hands' })
  const handButton = h('button', { class: 'hand', 'data-action': 'hand', text: '✋ Raise hand' })
  const lock = h('input', { type: 'checkbox', 'data-action': 'lock' })
  const follow = h('input', { type: 'checkbox', 'data-action': 'follow' })
  const clear = h('button', { 'data-action': 'clear-page', text: 'Clear page' })
  const teacher = h(
    'section',
    { class: 'teacher', 'aria-label': 'Tutor controls' },
    h('h2', { text: 'Tutor controls' }),
    h('label', {}, lock, ' Lock the board'),
    h('label', {}, follow, ' Students follow me'),
    clear,
  )
  const chatList = h('ol', { class: 'chat-list', 'data-testid': 'chat' })
  const chatInput = h('input', { type: 'text', maxlength: '500', placeholder: 'Message', 'aria-label': 'Chat message' })
  const chatForm = h('form', { class: 'chat-form' }, chatInput, h('button', { type: 'submit', text: 'Send' }))
  const panel = h(
    'aside',
    { class: 'panel', 'aria-label': 'Classroom' },
    h('section', {}, h('h2', { text: 'In the room' }), roster, handButton, hands),
    teacher,
    h('section', { class: 'chat' }, h('h2', { text: 'Chat' }), chatList, chatForm),
  )

  const cursors = h('div', { class: 'cursors', 'aria-hidden': 'true' })
  const stage = h('main', { class: 'stage', 'data-testid': 'stage' })
  const banner = h('div', { class: 'banner', role: 'status', hidden: true })
  const callMount = h('div', { class: 'call-mount' })
  const root = h('div', { class: 'app' }, header, banner, callMount, h('div', { class: 'body' }, h('div', { class: 'stage-wrap' }, stage, cursors), panel), toolbar)
  mount.replaceChildren(root)
  return {
    root, stage, cursors, banner, callMount, status, pageLabel, prev, next, addPage, peopleButton, panel,
    toolButtons, colourButtons, widthButtons, undo, redo, roster, hands, handButton, teacher,
    lock, follow, clear, chatList, chatForm, chatInput, exportPng, exportSvg,
  }
}

export function renderRoster(el: HTMLElement, entries: RosterEntry[], hands: Map<string, number>): void {
  el.replaceChildren(
    ...entries.map((e) =>
      h(
        'li',
        { 'data-user': e.u, title: QUALITY_LABEL[e.q] ?? '' },
        h('span', { class: `q q${e.q}`, 'aria-label': QUALITY_LABEL[e.q] ?? '' }),
        h('span', { class: 'who', style: `color:${userColour(e.u)}`, text: e.n }),
        h('span', { class: 'role', text: e.r }),
        hands.has(e.u) ? h('span', { class: 'raised', 'aria-label': 'hand raised', text: '✋' }) : null,
      ),
    ),
  )
}

export function renderChat(el: HTMLElement, messages: ChatMessage[]): void {
  const recent = messages.slice(-100)
  el.replaceChildren(
    ...recent.map((m) =>
      h('li', {}, h('b', { style: `color:${userColour(m.userId)}`, text: m.name }), ' ', h('span', { text: m.text })),
    ),
  )
  el.scrollTop = el.scrollHeight
}

export function renderError(mount: HTMLElement, message: string): void {
  mount.replaceChildren(h('div', { class: 'error-page' }, h('h1', { text: 'Inkroom' }), h('p', { text: message })))
}
