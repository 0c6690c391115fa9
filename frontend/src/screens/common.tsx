// Small shared pieces of the Preact screens.

import type { ComponentChildren } from 'preact'
import { ICONS, type IconName } from '../icons'

export function Icon({ name }: { name: IconName }) {
  return <span class="ico-wrap" dangerouslySetInnerHTML={{ __html: ICONS[name] }} />
}

export function Screen({ children, wide = false }: { children: ComponentChildren; wide?: boolean }) {
  return (
    <div class="screen">
      <div class={wide ? 'screen-body wide' : 'screen-body'}>
        <header class="screen-brand">
          <Icon name="board" /> Inkroom
        </header>
        {children}
      </div>
    </div>
  )
}

export function Field(props: {
  label: string
  type?: string
  value: string
  onInput: (v: string) => void
  autocomplete?: string
  name?: string
  required?: boolean
  autofocus?: boolean
  minLength?: number
}) {
  return (
    <label class="field">
      <span>{props.label}</span>
      <input
        type={props.type ?? 'text'}
        name={props.name}
        value={props.value}
        autocomplete={props.autocomplete}
        required={props.required}
        autofocus={props.autofocus}
        minLength={props.minLength}
        onInput={(e) => props.onInput((e.currentTarget as HTMLInputElement).value)}
      />
    </label>
  )
}

export function ErrorNote({ message }: { message: string | null }) {
  if (!message) return null
  return (
    <p class="note error" role="alert">
      {message}
    </p>
  )
}
