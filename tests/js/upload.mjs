#!/usr/bin/env node
// Upload one file with the real tus-js-client (its Node build), for end-to-end tests of tus servers.
//
//   node upload.mjs --endpoint URL --file PATH
//                   [--chunk-size N] [--parallel N] [--retry-delays 0,500,1000 | none]
//                   [--metadata key=value ...] [--store PATH] [--resume] [--abort-after-bytes N]
//                   [--patch-delay-ms N] [--aligned]
//
// --patch-delay-ms N waits N ms before every PATCH request: a slow client, so that a test has time to act
// (e.g. restart the server) while the upload is still under way.
//
// --aligned cuts the --parallel parts as tusedge's upload page does: every part but the last a multiple of
// the server's Tusedge-Part-Alignment (1 MiB when absent), passed as parallelUploadBoundaries. Without it,
// tus-js-client's own split (size / N, unaligned).
//
// Output: one JSON object per line on stdout (diagnostics go to stderr).
//   {"event":"created","url":U}                        the upload was created (POST answered with Location)
//   {"event":"resumed","url":U,"resumedFrom":N}        an existing upload is continued at offset N (HEAD);
//                                                      with --resume the first one is the resumption asked
//                                                      for, later ones are automatic retries after errors
//   {"event":"no-previous-upload"}                     --resume found nothing in --store; a new upload starts
// and exactly one final line:
//   {"ok":true,"url":U,"bytesUploaded":N,"size":N,"resumedFrom":N|null,"created":K,"resumed":K}   exit 0
//   {"aborted":true,"url":U,"bytesSent":N}             --abort-after-bytes reached                exit 3
//   {"ok":false,"error":"...","url":U|null}            the upload failed                          exit 1
//                                                      bad command line                           exit 2
//
// Resuming across process runs: tus-js-client's Node build keeps upload URLs in memory only (NoopUrlStorage),
// so this script brings a small JSON-file-backed UrlStorage (--store) and a fingerprint of the input file
// (absolute path, size, mtime, endpoint). Every upload is recorded there; `--resume` looks the file up with
// findPreviousUploads() and continues the newest match with resumeFromPreviousUpload().
//
// With --parallel N > 1, tus-js-client uploads N partial uploads and concatenates them (concatenation
// extension); it then reports no "created"/"resumed" events, and the URL is known only at the end.

import { createHash, randomUUID } from 'node:crypto'
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'

import * as tus from 'tus-js-client'

const EXIT_OK = 0
const EXIT_FAILED = 1
const EXIT_USAGE = 2
const EXIT_ABORTED = 3

// ---------------------------------------------------------------------------------------------------------
// Output

let finished = false

/** Print one JSON object as a line on stdout. */
function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}

/** Print the final JSON line and exit once stdout has taken it. Only the first call has any effect. */
function finish(code, obj) {
  if (finished) return
  finished = true
  process.stdout.write(`${JSON.stringify(obj)}\n`, () => process.exit(code))
}

// ---------------------------------------------------------------------------------------------------------
// Command line

function usageError(message) {
  process.stderr.write(`upload.mjs: ${message}\n`)
  process.exit(EXIT_USAGE)
}

function parseNonNegativeInt(name, text) {
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < 0) usageError(`${name} must be a non-negative integer, not ${text}`)
  return value
}

function parseCli(argv) {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        endpoint: { type: 'string' },
        file: { type: 'string' },
        'chunk-size': { type: 'string' },
        parallel: { type: 'string', default: '1' },
        'abort-after-bytes': { type: 'string' },
        resume: { type: 'boolean', default: false },
        store: { type: 'string' },
        metadata: { type: 'string', multiple: true, default: [] },
        'retry-delays': { type: 'string' },
        'patch-delay-ms': { type: 'string', default: '0' },
        aligned: { type: 'boolean', default: false },
      },
      strict: true,
    }))
  } catch (err) {
    usageError(err.message)
  }

  if (!values.endpoint) usageError('--endpoint URL is required')
  if (!values.file) usageError('--file PATH is required')
  if (values.resume && !values.store) usageError('--resume needs --store PATH (where earlier runs kept their URLs)')

  const metadata = {}
  for (const pair of values.metadata) {
    const eq = pair.indexOf('=')
    if (eq <= 0) usageError(`--metadata wants key=value, not ${pair}`)
    metadata[pair.slice(0, eq)] = pair.slice(eq + 1)
  }

  // Default: tus-js-client's own retry delays. "none" (or an empty value) turns retries off.
  let retryDelays
  const delaysText = values['retry-delays']
  if (delaysText === 'none' || delaysText === '') {
    retryDelays = null
  } else if (delaysText !== undefined) {
    retryDelays = delaysText.split(',').map((d) => parseNonNegativeInt('--retry-delays', d.trim()))
  }

  const parallel = parseNonNegativeInt('--parallel', values.parallel)
  if (parallel < 1) usageError('--parallel must be at least 1')
  const chunkSize = values['chunk-size'] === undefined ? undefined : parseNonNegativeInt('--chunk-size', values['chunk-size'])
  if (chunkSize === 0) usageError('--chunk-size must be positive')

  return {
    endpoint: values.endpoint,
    file: resolve(values.file),
    chunkSize,
    parallel,
    abortAfterBytes:
      values['abort-after-bytes'] === undefined
        ? null
        : parseNonNegativeInt('--abort-after-bytes', values['abort-after-bytes']),
    resume: values.resume,
    store: values.store === undefined ? null : resolve(values.store),
    metadata,
    retryDelays,
    patchDelayMs: parseNonNegativeInt('--patch-delay-ms', values['patch-delay-ms']),
    aligned: values.aligned,
  }
}

// ---------------------------------------------------------------------------------------------------------
// URL storage: tus-js-client's UrlStorage interface, backed by one JSON file
//
// The file maps storage keys to tus-js-client's PreviousUpload records ({size, metadata, creationTime,
// uploadUrl, parallelUploadUrls}) plus the fingerprint they belong to. Writes go to a temporary file that is
// then renamed over the old one, so a process killed mid-write never leaves a truncated store behind.
// One test process uses one store at a time, so no locking is attempted.

class JsonFileUrlStorage {
  constructor(path) {
    this.path = path
  }

  _load() {
    if (!existsSync(this.path)) return {}
    const text = readFileSync(this.path, 'utf8')
    return text.trim() === '' ? {} : JSON.parse(text)
  }

  _save(entries) {
    mkdirSync(dirname(this.path), { recursive: true })
    const tmp = `${this.path}.${process.pid}.tmp`
    writeFileSync(tmp, `${JSON.stringify(entries, null, 2)}\n`)
    renameSync(tmp, this.path)
  }

  /** Entries as PreviousUpload objects (with urlStorageKey), newest first. */
  _list(predicate) {
    return Object.entries(this._load())
      .filter(([, entry]) => predicate(entry))
      .map(([urlStorageKey, { fingerprint, storedAt, ...upload }]) => ({ ...upload, urlStorageKey, storedAt }))
      .sort((a, b) => b.storedAt - a.storedAt)
      .map(({ storedAt, ...upload }) => upload)
  }

  async findAllUploads() {
    return this._list(() => true)
  }

  async findUploadsByFingerprint(fingerprint) {
    return this._list((entry) => entry.fingerprint === fingerprint)
  }

  async removeUpload(urlStorageKey) {
    const entries = this._load()
    delete entries[urlStorageKey]
    this._save(entries)
  }

  async addUpload(fingerprint, upload) {
    const entries = this._load()
    const urlStorageKey = `tus::${fingerprint}::${randomUUID()}`
    entries[urlStorageKey] = { ...upload, fingerprint, storedAt: Date.now() }
    this._save(entries)
    return urlStorageKey
  }
}

/**
 * A fingerprint that survives process restarts: the same file (absolute path, size, mtime) sent to the same
 * endpoint gets the same fingerprint, so a later run finds the URL an earlier run stored.
 */
function fileFingerprint(path) {
  return async (_input, options) => {
    const { size, mtimeMs } = statSync(path)
    const identity = JSON.stringify([path, size, mtimeMs, options.endpoint])
    return `node-file-${createHash('sha256').update(identity).digest('hex')}`
  }
}

// ---------------------------------------------------------------------------------------------------------
// Aligned parts (--aligned), as tusedge/server/static/upload.js cuts them

async function alignedBoundaries(endpoint, size, count) {
  const res = await fetch(endpoint, { method: 'OPTIONS', headers: { 'Tus-Resumable': '1.0.0' } })
  const header = Number(res.headers.get('Tusedge-Part-Alignment'))
  const unit = Number.isInteger(header) && header > 0 ? header : 1024 * 1024
  const units = Math.floor(size / unit)
  const parts = Math.max(1, Math.min(count, units))
  const base = Math.floor(units / parts)
  const extra = units % parts
  const boundaries = []
  let start = 0
  for (let i = 0; i < parts; i++) {
    const end = i === parts - 1 ? size : start + (base + (i < extra ? 1 : 0)) * unit
    boundaries.push({ start, end })
    start = end
  }
  return boundaries
}

// ---------------------------------------------------------------------------------------------------------
// The upload

async function main() {
  const cli = parseCli(process.argv.slice(2))
  let size
  try {
    size = statSync(cli.file).size
  } catch (err) {
    finish(EXIT_FAILED, { ok: false, error: `cannot read --file: ${err.message}`, url: null })
    return
  }

  // Progress and resumption bookkeeping, filled in by the callbacks below.
  let bytesSent = 0 // from onProgress: bytes handed to the socket, possibly not yet accepted by the server
  let created = 0 // how many times an upload was created (POST)
  let resumed = 0 // how many times an existing upload was continued after a HEAD
  let lastHead = null // {url, offset} of the latest successful HEAD; consumed by onUploadUrlAvailable
  const firstHeadOffset = new Map() // url -> Upload-Offset of the first successful HEAD to it (for --resume)
  let aborting = false
  let upload = null

  const options = {
    endpoint: cli.endpoint,
    metadata: cli.metadata,
    parallelUploads: cli.parallel,
    fingerprint: fileFingerprint(cli.file),
    // Leave tus-js-client's default (in-memory) storage in place unless --store was given.
    ...(cli.store === null ? {} : { urlStorage: new JsonFileUrlStorage(cli.store) }),
    ...(cli.chunkSize === undefined ? {} : { chunkSize: cli.chunkSize }),
    ...(cli.retryDelays === undefined ? {} : { retryDelays: cli.retryDelays }),

    // --patch-delay-ms: tus-js-client awaits this hook before it sends each request.
    async onBeforeRequest(req) {
      if (cli.patchDelayMs > 0 && !aborting && req.getMethod() === 'PATCH') {
        await new Promise((done) => setTimeout(done, cli.patchDelayMs))
      }
    },

    // Every response passes here first; HEAD answers tell at which offset an existing upload continues.
    onAfterResponse(req, res) {
      const status = res.getStatus()
      if (req.getMethod() === 'HEAD' && status >= 200 && status < 300) {
        const offset = Number.parseInt(res.getHeader('Upload-Offset'), 10)
        if (!Number.isNaN(offset)) {
          lastHead = { url: req.getURL(), offset }
          if (!firstHeadOffset.has(lastHead.url)) firstHeadOffset.set(lastHead.url, offset)
        }
      }
    },

    // Called after a POST created the upload, and after a HEAD found the offset of an existing one
    // (on --resume, and again on every automatic retry). Not called for parallel uploads.
    onUploadUrlAvailable() {
      if (lastHead !== null && lastHead.url === upload.url) {
        resumed += 1
        emit({ event: 'resumed', url: upload.url, resumedFrom: lastHead.offset })
      } else {
        created += 1
        emit({ event: 'created', url: upload.url })
      }
      lastHead = null
    },

    onProgress(sent) {
      bytesSent = sent
      if (cli.abortAfterBytes !== null && sent >= cli.abortAfterBytes && !aborting) {
        aborting = true
        // abort(false): stop sending but leave the upload on the server, so a later run can resume it.
        upload
          .abort(false)
          .catch((err) => process.stderr.write(`upload.mjs: abort: ${err.message}\n`))
          .finally(() => finish(EXIT_ABORTED, { aborted: true, url: upload.url, bytesSent: sent }))
      }
    },

    onSuccess() {
      // With --resume: where the upload continued, i.e. the sum of the first HEAD offsets over its URLs
      // (one URL normally, one per part for parallel uploads); null when nothing was resumed.
      const resumedFrom =
        cli.resume && firstHeadOffset.size > 0 ? [...firstHeadOffset.values()].reduce((a, b) => a + b, 0) : null
      finish(EXIT_OK, { ok: true, url: upload.url, bytesUploaded: bytesSent, size, resumedFrom, created, resumed })
    },

    onError(err) {
      finish(EXIT_FAILED, { ok: false, error: String(err?.message ?? err), url: upload?.url ?? null })
    },
  }

  if (cli.aligned && cli.parallel > 1) {
    const boundaries = await alignedBoundaries(cli.endpoint, size, cli.parallel)
    options.parallelUploads = boundaries.length
    if (boundaries.length > 1) options.parallelUploadBoundaries = boundaries
  }
  upload = new tus.Upload(createReadStream(cli.file), options)

  if (cli.resume) {
    const previous = await upload.findPreviousUploads()
    if (previous.length > 0) {
      upload.resumeFromPreviousUpload(previous[0])
    } else {
      emit({ event: 'no-previous-upload' })
    }
  }
  upload.start()
}

process.on('uncaughtException', (err) => {
  finish(EXIT_FAILED, { ok: false, error: `uncaught: ${err?.stack ?? err}`, url: null })
})
process.on('unhandledRejection', (err) => {
  finish(EXIT_FAILED, { ok: false, error: `unhandled rejection: ${err?.stack ?? err}`, url: null })
})

main().catch((err) => finish(EXIT_FAILED, { ok: false, error: String(err?.message ?? err), url: null }))
