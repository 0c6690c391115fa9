// Export the current page as PNG (canvas) or SVG (the same outlines as path data).

import { type Board, PAGE_H, PAGE_W, type ShapeView } from './board'
import { HIGHLIGHT_ALPHA, shapePath } from './shapes'
import type { Renderer } from './render'

export function pageSvg(board: Board, page: string): string {
  return shapesSvg(board.pageShapes(page))
}

/** An SVG of the given shapes, in order (the replay view colours them by author). */
export function shapesSvg(shapes: Iterable<ShapeView>): string {
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${PAGE_W}" height="${PAGE_H}" viewBox="0 0 ${PAGE_W} ${PAGE_H}">`,
    `<rect width="${PAGE_W}" height="${PAGE_H}" fill="#fff"/>`,
  ]
  for (const s of shapes) {
    const colour = escapeXml(s.c)
    if (s.t === 'x') {
      const lines = (s.tx ?? '').split('\n')
      parts.push(
        `<text x="${s.x}" y="${s.y}" font-family="system-ui, sans-serif" font-size="${s.fs}" fill="${colour}" dominant-baseline="hanging">` +
          lines.map((l, i) => `<tspan x="${s.x}" dy="${i ? s.fs! * 1.25 : 0}">${escapeXml(l)}</tspan>`).join('') +
          `</text>`,
      )
      continue
    }
    const { d, fill } = shapePath(s)
    const opacity = s.t === 'h' ? ` fill-opacity="${HIGHLIGHT_ALPHA}"` : ''
    parts.push(
      fill
        ? `<path d="${d}" fill="${colour}"${opacity}/>`
        : `<path d="${d}" fill="none" stroke="${colour}" stroke-width="${s.w}" stroke-linecap="round" stroke-linejoin="round"/>`,
    )
  }
  parts.push('</svg>')
  return parts.join('\n')
}

export async function pagePng(board: Board, renderer: Renderer, page: string, scale = 1): Promise<Blob> {
  const canvas = document.createElement('canvas')
  canvas.width = Math.round(PAGE_W * scale)
  canvas.height = Math.round(PAGE_H * scale)
  const ctx = canvas.getContext('2d')!
  ctx.setTransform(scale, 0, 0, scale, 0, 0)
  ctx.fillStyle = '#fff'
  ctx.fillRect(0, 0, PAGE_W, PAGE_H)
  for (const s of board.pageShapes(page)) renderer.drawShape(ctx, s)
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('PNG encoding failed'))), 'image/png'),
  )
}

export function download(blob: Blob, filename: string): void {
  const a = document.createElement('a')
  a.href = URL.createObjectURL(blob)
  a.download = filename
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000)
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
