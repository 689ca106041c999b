#!/usr/bin/env node
// Drive Debian's Chromium for the browser tests: playwright-core (no browser download of its own) behind a
// small JSON-lines protocol, so that pytest can script a page step by step while it also restarts servers.
//
//   node driver.mjs            reads one command per line on stdin, answers one line per command on stdout:
//   -> {"id":1,"cmd":"launch","args":{"executablePath":"/usr/bin/chromium","userDataDir":"/tmp/x"}}
//   <- {"id":1,"ok":true,"result":null}          or  {"id":1,"ok":false,"error":"..."}
// and, in between, events: {"event":"console","type":"log","text":"..."}, {"event":"pageerror","text":"..."}.
//
// Commands (every one that waits takes timeoutMs):
//   launch {executablePath, userDataDir, width?, height?, extraArgs?}   Chromium with a persistent profile (so a later
//                                                          launch with the same folder is a browser restart)
//   goto {url}  reload {}  close {}  exit {}
//   evaluate {expression, arg?}           the function expression, called with arg in the page; its value
//   waitFor {expression, arg?, pollingMs?} evaluate until the value is truthy; returns it
//   setInputFiles {selector, files}       files are paths on this machine (no copy through the protocol)
//   click {selector}
//   screenshot {path, selector?}
//   throttle {uploadBytesPerSecond}       Chromium's network emulation (CDP); 0 or less: no limit

import { createInterface } from 'node:readline'

import { chromium } from 'playwright-core'

// The flags every Chromium we start must have: no network of its own, no sandbox (containers), no GPU.
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
]

let context = null
let page = null
let cdp = null

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}

function needPage() {
  if (page === null) throw new Error('no browser: send launch first')
  return page
}

// The function's source, called with its argument, as one plain expression evaluated through the DevTools
// protocol: the page keeps its own Content-Security-Policy (no bypassCSP, no 'unsafe-eval' needed), so the
// tests see the page exactly as users do.
async function evaluate(expression, arg) {
  return await needPage().evaluate(`(${expression})(${JSON.stringify(arg)})`)
}

function attach(p) {
  p.on('console', (msg) => emit({ event: 'console', type: msg.type(), text: msg.text() }))
  p.on('pageerror', (err) => emit({ event: 'pageerror', text: String(err && err.stack ? err.stack : err) }))
}

const commands = {
  async launch({ executablePath, userDataDir, width = 1100, height = 760, timeoutMs = 60000, extraArgs = [] }) {
    if (context !== null) throw new Error('already launched')
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_FLAGS, ...extraArgs],
      viewport: { width, height },
      timeout: timeoutMs,
      acceptDownloads: false,
    })
    page = context.pages()[0] ?? (await context.newPage())
    attach(page)
    cdp = null
    return null
  },
  async goto({ url, timeoutMs = 30000 }) {
    const response = await needPage().goto(url, { timeout: timeoutMs, waitUntil: 'load' })
    return response === null ? null : response.status()
  },
  async reload({ timeoutMs = 30000 }) {
    const response = await needPage().reload({ timeout: timeoutMs, waitUntil: 'load' })
    return response === null ? null : response.status()
  },
  async evaluate({ expression, arg = null }) {
    return await evaluate(expression, arg)
  },
  async waitFor({ expression, arg = null, timeoutMs = 30000, pollingMs = 100 }) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const value = await evaluate(expression, arg)
      if (value) return value
      if (Date.now() > deadline) throw new Error(`waitFor: still falsy after ${timeoutMs} ms: ${expression}`)
      await new Promise((resolve) => setTimeout(resolve, pollingMs))
    }
  },
  async setInputFiles({ selector, files, timeoutMs = 30000 }) {
    await needPage().setInputFiles(selector, files, { timeout: timeoutMs })
    return null
  },
  async click({ selector, timeoutMs = 30000 }) {
    await needPage().click(selector, { timeout: timeoutMs })
    return null
  },
  async screenshot({ path, selector = null, timeoutMs = 30000 }) {
    const target = selector === null ? needPage() : needPage().locator(selector)
    await target.screenshot({ path, timeout: timeoutMs, animations: 'disabled' })
    return path
  },
  async throttle({ uploadBytesPerSecond }) {
    if (cdp === null) cdp = await context.newCDPSession(needPage())
    await cdp.send('Network.enable')
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: uploadBytesPerSecond > 0 ? uploadBytesPerSecond : -1,
    })
    return null
  },
  async close() {
    if (context !== null) await context.close()
    context = null
    page = null
    cdp = null
    return null
  },
  async exit() {
    await commands.close()
    setImmediate(() => process.exit(0))
    return null
  },
}

// Commands run one after another, in the order they came.
let queue = Promise.resolve()
const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  if (!line.trim()) return
  queue = queue.then(async () => {
    let message
    try {
      message = JSON.parse(line)
    } catch (err) {
      emit({ id: null, ok: false, error: `bad JSON: ${err.message}` })
      return
    }
    const handler = commands[message.cmd]
    if (handler === undefined) {
      emit({ id: message.id, ok: false, error: `unknown command ${message.cmd}` })
      return
    }
    try {
      const result = await handler(message.args ?? {})
      emit({ id: message.id, ok: true, result: result === undefined ? null : result })
    } catch (err) {
      emit({ id: message.id, ok: false, error: String(err && err.stack ? err.stack : err) })
    }
  })
})
// pytest went away (or closed stdin): take the browser down with us.
lines.on('close', () => {
  queue.then(() => commands.close()).finally(() => process.exit(0))
})
