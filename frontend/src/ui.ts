// The DOM chrome around the board: header, toolbar, side panel. No framework: the
// pointer path never goes through here, and the pieces re-render only on their own events.

import type { Tool } from './tools'
import type { ChatMessage } from './classroom'
import { ICONS, type IconName, iconEl } from './icons'
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

export const TOOLS: Array<{ tool: Tool; label: string; icon: IconName; key: string }> = [
  { tool: 'select', label: 'Select and move', icon: 'select', key: 'v' },
  { tool: 'pen', label: 'Pen', icon: 'pen', key: 'p' },
  { tool: 'hl', label: 'Highlighter', icon: 'hl', key: 'h' },
  { tool: 'eraser', label: 'Stroke eraser', icon: 'eraser', key: 'e' },
  { tool: 'r', label: 'Rectangle', icon: 'r', key: 'r' },
  { tool: 'e', label: 'Ellipse', icon: 'e', key: 'o' },
  { tool: 'l', label: 'Line', icon: 'l', key: 'l' },
  { tool: 'a', label: 'Arrow', icon: 'a', key: 'a' },
  { tool: 'text', label: 'Text', icon: 'text', key: 't' },
  { tool: 'laser', label: 'Laser pointer', icon: 'laser', key: 'k' },
]

/** A button holding an inline SVG icon (and optional visible text). */
export function iconButton(attrs: Record<string, string | boolean | undefined>, icon: IconName, text?: string): HTMLButtonElement {
  const b = h('button', { type: 'button', ...attrs })
  b.innerHTML = ICONS[icon]
  if (text) b.append(h('span', { class: 'label', text }))
  return b
}

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
  chatSection: HTMLElement
  scrim: HTMLElement
  confirmClear: HTMLDialogElement
}

export function buildChrome(mount: HTMLElement, session: Session): Chrome {
  const toolButtons = new Map<Tool, HTMLButtonElement>()
  const tools = h('div', { class: 'tool-group', role: 'radiogroup', 'aria-label': 'Tools' })
  for (const t of TOOLS) {
    const b = iconButton({ class: 'tool', 'data-tool': t.tool, title: `${t.label} (${t.key})`, 'aria-label': t.label }, t.icon)
    toolButtons.set(t.tool, b)
    tools.append(b)
  }
  const colourButtons = COLOURS.map((c) =>
    h('button', { class: 'swatch', 'data-colour': c, title: c, 'aria-label': `Colour ${c}`, style: `--swatch:${c}` }),
  )
  const widthButtons = WIDTHS.map((w) =>
    h('button', { class: 'width', 'data-width': String(w), title: `Width ${w}`, 'aria-label': `Width ${w}`, style: `--dot:${2 + w}px` }),
  )
  const undo = iconButton({ class: 'tool', 'data-action': 'undo', title: 'Undo (Ctrl+Z)', 'aria-label': 'Undo' }, 'undo')
  const redo = iconButton({ class: 'tool', 'data-action': 'redo', title: 'Redo (Ctrl+Shift+Z)', 'aria-label': 'Redo' }, 'redo')
  const toolbar = h(
    'nav',
    { class: 'toolbar', 'aria-label': 'Drawing tools' },
    tools,
    h('div', { class: 'tool-group colours', role: 'group', 'aria-label': 'Colours' }, ...colourButtons),
    h('div', { class: 'tool-group widths', role: 'group', 'aria-label': 'Widths' }, ...widthButtons),
    h('div', { class: 'tool-group history' }, undo, redo),
  )

  const prev = iconButton({ class: 'icon', 'data-action': 'prev-page', 'aria-label': 'Previous page' }, 'prev')
  const next = iconButton({ class: 'icon', 'data-action': 'next-page', 'aria-label': 'Next page' }, 'next')
  const addPage = iconButton({ class: 'icon', 'data-action': 'add-page', 'aria-label': 'Add page' }, 'plus')
  const pageLabel = h('span', { class: 'page-label', 'data-testid': 'page-label', text: '1 / 1' })
  const status = h('span', { class: 'status', 'data-testid': 'status', role: 'status', 'aria-live': 'polite', text: 'Opening…' })
  const peopleButton = iconButton({ class: 'people', 'data-action': 'people', 'aria-label': 'People and chat', 'aria-expanded': 'false' }, 'people')
  const exportPng = h('button', { class: 'menu-item', 'data-action': 'export-png', text: 'Export page as PNG' })
  const exportSvg = h('button', { class: 'menu-item', 'data-action': 'export-svg', text: 'Export page as SVG' })
  const summary = h('summary', { 'aria-label': 'Menu' })
  summary.innerHTML = ICONS.menu
  const home = h('a', { class: 'menu-item', href: '/', text: session.role === 'tutor' || session.role === 'admin' ? 'Your classrooms' : 'Inkroom home' })
  const menu = h('details', { class: 'menu' }, summary, h('div', { class: 'menu-list' }, exportPng, exportSvg, home))
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
  const handButton = iconButton({ class: 'hand', 'data-action': 'hand', 'aria-pressed': 'false' }, 'hand', 'Raise hand')
  // Only students raise hands: tutors answer them, observers only watch.
  handButton.hidden = session.role !== 'student'
  const lock = h('input', { type: 'checkbox', 'data-action': 'lock' })
  const follow = h('input', { type: 'checkbox', 'data-action': 'follow' })
  const clear = h('button', { type: 'button', 'data-action': 'clear-page', text: 'Clear page…' })
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
  // Observers only watch: they see the chat, but have no way to write to it.
  chatForm.hidden = session.role === 'observer'
  const chatSection = h('section', { class: 'chat' }, h('h2', { text: 'Chat' }), chatList, chatForm)
  const panel = h(
    'aside',
    { class: 'panel', 'aria-label': 'Classroom', id: 'classroom-panel' },
    h('section', {}, h('h2', { text: 'In the room' }), roster, handButton, h('h2', { class: 'hands-title', text: 'Raised hands' }), hands),
    teacher,
    chatSection,
  )
  peopleButton.setAttribute('aria-controls', 'classroom-panel')

  const cursors = h('div', { class: 'cursors', 'aria-hidden': 'true' })
  const stage = h('main', { class: 'stage', 'data-testid': 'stage' })
  const banner = h('div', { class: 'banner', role: 'status', hidden: true })
  // Over the board while the side panel is open on a narrow screen: a tap outside the
  // panel closes it (and draws nothing).
  const scrim = h('div', { class: 'scrim', 'data-testid': 'scrim', 'aria-hidden': 'true' })
  const confirmClear = h(
    'dialog',
    { class: 'confirm', 'data-testid': 'confirm-clear' },
    h('form', { method: 'dialog' },
      h('p', { class: 'confirm-title', text: 'Clear this page for everyone?' }),
      h('p', { text: 'Every drawing on this page disappears for the whole class. You can bring it back with Undo.' }),
      h('div', { class: 'confirm-buttons' },
        h('button', { value: 'cancel', type: 'submit', text: 'Cancel' }),
        h('button', { value: 'clear', type: 'submit', class: 'danger', 'data-action': 'confirm-clear', text: 'Clear page' }),
      ),
    ),
  )
  const callMount = h('div', { class: 'call-mount' })
  const root = h('div', { class: 'app' }, header, banner, callMount, h('div', { class: 'body' }, h('div', { class: 'stage-wrap' }, stage, cursors), scrim, panel), toolbar, confirmClear)
  mount.replaceChildren(root)
  return {
    root, stage, cursors, banner, callMount, status, pageLabel, prev, next, addPage, peopleButton, panel,
    toolButtons, colourButtons, widthButtons, undo, redo, roster, hands, handButton, teacher,
    lock, follow, clear, chatList, chatForm, chatInput, exportPng, exportSvg, chatSection, scrim,
    confirmClear,
  }
}

export function renderRoster(el: HTMLElement, entries: RosterEntry[], hands: Map<string, unknown>): void {
  el.replaceChildren(
    ...entries.map((e) =>
      h(
        'li',
        { 'data-user': e.u, title: QUALITY_LABEL[e.q] ?? '' },
        h('span', { class: `q q${e.q}`, 'aria-label': QUALITY_LABEL[e.q] ?? '' }),
        h('span', { class: 'who', style: `color:${userColour(e.u)}`, text: e.n }),
        h('span', { class: 'role', text: e.r }),
        hands.has(e.u) ? raisedMark() : null,
      ),
    ),
  )
}

function raisedMark(): HTMLElement {
  const el = iconEl('hand')
  el.classList.add('raised')
  el.setAttribute('aria-label', 'hand raised')
  el.removeAttribute('aria-hidden')
  return el
}

export function renderChat(el: HTMLElement, messages: ChatMessage[]): void {
  const recent = messages.slice(-100)
  el.replaceChildren(
    ...recent.map((m) =>
      h('li', {}, h('b', { style: `color:${userColour(m.userId)}`, text: m.name }), ' ', h('span', { text: m.text })),
    ),
  )
  // Reading scrollHeight forces a layout: at start-up, the page's whole first layout
  // inside the board's set-up task. The next frame lays the page out anyway.
  if (recent.length) requestAnimationFrame(() => (el.scrollTop = el.scrollHeight))
}
