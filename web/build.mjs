#!/usr/bin/env node
// Refresh the committed copy of tus-js-client's browser build (from the version pinned in package-lock.json)
// in the server's static folder, where tusedge serves it to its upload page at /ui/vendor/tus.min.js.
// Only needed after changing the pinned version; `pip install` alone gives a working page.
//
//   npm --prefix web ci && npm --prefix web run build
//
// tests/test_vendored_page.py checks that the committed files are the npm package's published ones.

import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const pkgDir = join(here, 'node_modules', 'tus-js-client')
const target = join(here, '..', 'tusedge', 'server', 'static', 'vendor')

const pinned = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies['tus-js-client']
const manifest = join(pkgDir, 'package.json')
if (!existsSync(manifest)) {
  process.stderr.write(`build: ${relative(process.cwd(), pkgDir)} is missing; run \`npm ci\` in web/ first\n`)
  process.exit(1)
}
const installed = JSON.parse(readFileSync(manifest, 'utf8')).version
if (installed !== pinned) {
  process.stderr.write(`build: tus-js-client ${installed} is installed but ${pinned} is pinned; run \`npm ci\` in web/\n`)
  process.exit(1)
}

mkdirSync(target, { recursive: true })
for (const name of ['tus.min.js', 'tus.min.js.map']) copyFileSync(join(pkgDir, 'dist', name), join(target, name))
copyFileSync(join(pkgDir, 'LICENSE'), join(target, 'tus-js-client.LICENSE'))
// Read by the browser tests to tell a stale copy from a current one.
writeFileSync(join(target, 'VERSION'), `tus-js-client ${installed}\n`)
process.stdout.write(`build: tus-js-client ${installed} -> ${relative(process.cwd(), target)}/tus.min.js\n`)
