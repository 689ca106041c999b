#!/usr/bin/env node
// An independent, reference tus 1.0.0 server (@tus/server + @tus/file-store) for tests.
//
//   node tus-node-server.mjs [--host 127.0.0.1] [--port 0] --dir PATH [--path /files] [--max-size N]
//
// It prints "Running on http://HOST:PORT" once it listens (the same shape as Hypercorn's line, so the
// tests can find the port with one regular expression) and then the creation endpoint as a JSON line:
//   {"event":"listening","endpoint":"http://127.0.0.1:PORT/files/"}
// Finished uploads can be downloaded with a plain GET of their URL (FileStore implements read()).
// SIGTERM / SIGINT close the listener and exit 0.

import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'

import { FileStore } from '@tus/file-store'
import { Server } from '@tus/server'

function parseCli(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      dir: { type: 'string' },
      path: { type: 'string', default: '/files' },
      'max-size': { type: 'string' },
    },
    strict: true,
  })
  if (!values.dir) {
    throw new Error('--dir PATH is required')
  }
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`invalid --port: ${values.port}`)
  }
  // @tus/server wants the route without a trailing slash ("/files"); upload URLs become "/files/<id>".
  const path = `/${values.path.replace(/^\/+|\/+$/g, '')}`
  const maxSize = values['max-size'] === undefined ? undefined : Number(values['max-size'])
  if (maxSize !== undefined && !(Number.isInteger(maxSize) && maxSize > 0)) {
    throw new Error(`invalid --max-size: ${values['max-size']}`)
  }
  return { host: values.host, port, dir: resolve(values.dir), path, maxSize }
}

function main() {
  let config
  try {
    config = parseCli(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`tus-node-server: ${err.message}\n`)
    process.exit(2)
  }

  mkdirSync(config.dir, { recursive: true })
  const server = new Server({
    path: config.path,
    datastore: new FileStore({ directory: config.dir }),
    ...(config.maxSize === undefined ? {} : { maxSize: config.maxSize }),
  })

  const listener = server.listen(config.port, config.host, () => {
    const { address, port } = listener.address()
    const host = address.includes(':') ? `[${address}]` : address
    const origin = `http://${host}:${port}`
    process.stdout.write(`Running on ${origin} (@tus/server)\n`)
    process.stdout.write(`${JSON.stringify({ event: 'listening', endpoint: `${origin}${config.path}/` })}\n`)
  })
  listener.on('error', (err) => {
    process.stderr.write(`tus-node-server: ${err.message}\n`)
    process.exit(1)
  })

  const shutdown = () => {
    listener.close(() => process.exit(0))
    // Open keep-alive connections would otherwise hold close() back.
    listener.closeAllConnections?.()
    setTimeout(() => process.exit(0), 2000).unref()
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
}

main()
