// The tusedge upload page: tus-js-client's browser build (window.tus) against this server's endpoint.
//
// - One row per file: a progress bar, rate and ETA, Pause/Resume, Cancel.
// - Large files go up as 4 partial uploads in parallel, concatenated by the server, but only when the
//   server's OPTIONS answer lists the concatenation extension; otherwise one sequential upload. The parts
//   are cut on multiples of the server's Tusedge-Part-Alignment (1 MiB when it names none), so a server on
//   XFS or btrfs joins them without copying (tus-js-client's parallelUploadBoundaries).
// - Upload URLs are kept in localStorage by tus-js-client (its default urlStorage), so after a reload or a
//   browser restart choosing the same file again continues the upload where the server left it.
// - Finished uploads are listed (in localStorage too) with a download link: GET of the upload URL.
//
// The rows carry data-* attributes (state, bytes, resumed-from, ...) that describe what happened; the
// browser tests read them, and they cost nothing.
;(() => {
  'use strict'

  const PARALLEL_UPLOADS = 4
  // Below this size, parallel parts cost more requests than they save.
  const PARALLEL_MIN_BYTES = 8 * 1024 * 1024
  // Retries carry an upload across a server restart or a network outage of up to about a minute.
  const RETRY_DELAYS = [0, 1000, 2000, 3000, 5000, 10000, 20000, 20000]
  const FINISHED_KEY = 'tusedge:finished'
  const FINISHED_MAX = 100
  const RENDER_INTERVAL_MS = 200
  const RATE_WINDOW_MS = 5000
  const DEFAULT_ALIGNMENT = 1024 * 1024
  const MAX_ALIGNMENT = 1024 * 1024 * 1024

  const $ = (id) => document.getElementById(id)
  const endpointMeta = document.querySelector('meta[name="tusedge-endpoint"]')
  const endpoint = new URL(endpointMeta ? endpointMeta.content : '/files/', window.location.href).href
  const body = document.body

  // ------------------------------------------------------------------------------------------------
  // Formatting

  function formatBytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
    let value = n
    let unit = 0
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024
      unit += 1
    }
    return `${value.toFixed(unit === 0 || value >= 100 ? 0 : 1)} ${units[unit]}`
  }

  function formatDuration(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) return '–'
    const s = Math.round(seconds)
    const h = Math.floor(s / 3600)
    const m = Math.floor((s % 3600) / 60)
    const pad = (x) => String(x).padStart(2, '0')
    return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag)
    for (const [key, value] of Object.entries(attrs)) {
      if (key === 'className') node.className = value
      else if (key === 'text') node.textContent = value
      else node.setAttribute(key, value)
    }
    for (const child of children) node.append(child)
    return node
  }

  // ------------------------------------------------------------------------------------------------
  // Without the library there is nothing to do but say how to get it.

  if (typeof window.tus === 'undefined') {
    $('unbuilt').hidden = false
    $('file-input').disabled = true
    $('drop').classList.add('disabled')
    body.dataset.state = 'unbuilt'
    return
  }
  const tus = window.tus
  if (!tus.isSupported) {
    $('unsupported').hidden = false
    $('file-input').disabled = true
    body.dataset.state = 'unsupported'
    return
  }

  // ------------------------------------------------------------------------------------------------
  // What the server supports (core: OPTIONS lists the extensions in Tus-Extension)

  const capabilities = fetch(endpoint, { method: 'OPTIONS' })
    .then((res) => {
      const extensions = (res.headers.get('Tus-Extension') || '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
      const maxSize = Number(res.headers.get('Tus-Max-Size')) || 0
      const unit = Number(res.headers.get('Tusedge-Part-Alignment'))
      const alignment = Number.isInteger(unit) && unit > 0 && unit <= MAX_ALIGNMENT ? unit : DEFAULT_ALIGNMENT
      return { extensions, maxSize, alignment }
    })
    .catch(() => ({ extensions: [], maxSize: 0, alignment: DEFAULT_ALIGNMENT }))

  // Part boundaries as tusedge.client.boundaries.split cuts them: every part but the last a whole number
  // of units, the parts within one unit of each other, fewer parts when the file has fewer units.
  function splitParts(size, count, unit) {
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

  // The boundaries of a stored parallel upload, from its parts' lengths on the server (whatever split
  // made them, e.g. an older page's); null when a part is gone or they do not cover the file.
  async function storedBoundaries(urls, size) {
    const boundaries = []
    let start = 0
    for (const url of urls) {
      const res = await fetch(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } }).catch(() => null)
      const length = res && res.ok ? Number(res.headers.get('Upload-Length')) : NaN
      if (!Number.isInteger(length)) return null
      boundaries.push({ start, end: start + length })
      start += length
    }
    return start === size ? boundaries : null
  }

  capabilities.then(({ extensions, maxSize }) => {
    const parallel = extensions.includes('concatenation')
    body.dataset.concatenation = parallel ? 'yes' : 'no'
    const parts = [`Uploading to ${endpoint}`]
    parts.push(parallel ? `${PARALLEL_UPLOADS} parallel parts per large file` : 'one request at a time')
    if (maxSize) parts.push(`up to ${formatBytes(maxSize)} per file`)
    $('server-info').textContent = parts.join(' · ')
    body.dataset.ready = 'true'
  })

  // ------------------------------------------------------------------------------------------------
  // Finished uploads (ours, in localStorage)

  function loadFinished() {
    try {
      const list = JSON.parse(window.localStorage.getItem(FINISHED_KEY) || '[]')
      return Array.isArray(list) ? list : []
    } catch {
      return []
    }
  }

  function saveFinished(list) {
    try {
      window.localStorage.setItem(FINISHED_KEY, JSON.stringify(list.slice(0, FINISHED_MAX)))
    } catch {
      // Storage full or disabled: the list is only a convenience.
    }
  }

  function addFinished(entry) {
    saveFinished([entry, ...loadFinished().filter((e) => e.url !== entry.url)])
    renderFinished()
  }

  function renderFinished() {
    const list = loadFinished()
    const ul = $('finished-list')
    ul.replaceChildren()
    for (const entry of list) {
      const link = el('a', { href: entry.url, download: entry.name, text: entry.name })
      const when = new Date(entry.finishedAt).toLocaleString()
      ul.append(
        el('li', { className: 'finished', 'data-url': entry.url }, link, el('span', { className: 'muted', text: ` ${formatBytes(entry.size)} · ${when}` })),
      )
    }
    $('finished').hidden = list.length === 0
  }

  $('clear-finished').addEventListener('click', () => {
    saveFinished([])
    renderFinished()
  })

  // ------------------------------------------------------------------------------------------------
  // Unfinished uploads from earlier visits (tus-js-client's url storage)

  const urlStorage = tus.defaultOptions.urlStorage
  // Fingerprints (tus-js-client's: name, type, size, modification time, endpoint) of the files this page
  // is uploading now: their stored entries are not "unfinished uploads from earlier visits".
  const activeFingerprints = new Set()

  async function activeStorageKeys() {
    const keys = new Set()
    for (const fingerprint of activeFingerprints) {
      const entries = await urlStorage.findUploadsByFingerprint(fingerprint).catch(() => [])
      for (const entry of entries) keys.add(entry.urlStorageKey)
    }
    return keys
  }

  function storedUrls(entry) {
    return entry.parallelUploadUrls ? entry.parallelUploadUrls : entry.uploadUrl ? [entry.uploadUrl] : []
  }

  async function renderResumable() {
    let entries = []
    try {
      entries = await urlStorage.findAllUploads()
    } catch {
      entries = []
    }
    const active = await activeStorageKeys()
    entries = entries.filter((e) => !active.has(e.urlStorageKey))
    const ul = $('resumable-list')
    ul.replaceChildren()
    for (const entry of entries) {
      const name = (entry.metadata && entry.metadata.filename) || 'unnamed file'
      const started = entry.creationTime ? new Date(entry.creationTime).toLocaleString() : ''
      const forget = el('button', { type: 'button', className: 'link', text: 'Discard' })
      forget.addEventListener('click', async () => {
        forget.disabled = true
        // Delete it on the server too (termination extension); an error only means it is gone already.
        await Promise.all(storedUrls(entry).map((url) => tus.Upload.terminate(url, { retryDelays: null }).catch(() => {})))
        await urlStorage.removeUpload(entry.urlStorageKey)
        renderResumable()
      })
      ul.append(
        el('li', { className: 'resumable', 'data-name': name }, el('span', { text: name }), el('span', { className: 'muted', text: ` ${formatBytes(entry.size || 0)} · started ${started} ` }), forget),
      )
    }
    $('resumable').hidden = entries.length === 0
  }

  // ------------------------------------------------------------------------------------------------
  // One file

  class FileUpload {
    constructor(file) {
      this.file = file
      this.upload = null
      this.state = 'starting'
      this.bytes = 0
      this.samples = []
      this.headOffsets = new Map()
      this.creations = 0
      this.renderTimer = null
      this.fingerprint = null
      this.buildRow()
    }

    buildRow() {
      const f = this.file
      this.progress = el('progress', { max: '1', value: '0' })
      this.status = el('span', { className: 'status', text: 'Starting…' })
      this.pauseButton = el('button', { type: 'button', className: 'pause', text: 'Pause' })
      this.cancelButton = el('button', { type: 'button', className: 'cancel link', text: 'Cancel' })
      this.pauseButton.addEventListener('click', () => (this.state === 'uploading' ? this.pause() : this.resume()))
      this.cancelButton.addEventListener('click', () => this.cancel())
      this.row = el(
        'li',
        { className: 'upload', 'data-name': f.name, 'data-total': String(f.size) },
        el('div', { className: 'row-head' }, el('span', { className: 'name', text: f.name }), el('span', { className: 'muted', text: formatBytes(f.size) })),
        this.progress,
        el('div', { className: 'row-foot' }, this.status, el('span', { className: 'actions' }, this.pauseButton, this.cancelButton)),
      )
      $('uploads').prepend(this.row)
      $('active').hidden = false
    }

    setState(state) {
      this.state = state
      this.row.dataset.state = state
      this.pauseButton.textContent = state === 'uploading' ? 'Pause' : state === 'error' ? 'Retry' : 'Resume'
      this.pauseButton.hidden = !['uploading', 'paused', 'error'].includes(state)
      this.cancelButton.hidden = state === 'done' || state === 'cancelled'
      this.render()
    }

    async begin() {
      const { extensions, maxSize, alignment } = await capabilities
      if (maxSize && this.file.size > maxSize) {
        this.fail(`too large: this server takes files up to ${formatBytes(maxSize)}`)
        return
      }
      const options = {
        endpoint,
        retryDelays: RETRY_DELAYS,
        removeFingerprintOnSuccess: true,
        metadata: { filename: this.file.name, filetype: this.file.type || 'application/octet-stream' },
        parallelUploads: 1,
        onProgress: (sent, total) => this.onProgress(sent, total),
        onSuccess: () => this.onSuccess(),
        onError: (err) => this.fail(String((err && err.message) || err)),
        onBeforeRequest: (req) => this.onBeforeRequest(req),
        onAfterResponse: (req, res) => this.onAfterResponse(req, res),
      }
      let boundaries = null
      if (extensions.includes('concatenation') && this.file.size >= PARALLEL_MIN_BYTES) {
        boundaries = splitParts(this.file.size, PARALLEL_UPLOADS, alignment)
      }

      // A previous upload of the same file (same name, type, size, modification time and endpoint) is
      // continued; its own shape wins: a parallel one stays parallel with its parts (cut where they were
      // cut), a single one single. One whose parts are gone starts afresh.
      const probe = new tus.Upload(this.file, { endpoint })
      const previous = (await probe.findPreviousUploads().catch(() => [])).sort(
        (a, b) => Date.parse(b.creationTime || 0) - Date.parse(a.creationTime || 0),
      )[0]
      let resumeFrom = previous
      if (previous && previous.parallelUploadUrls) {
        const stored = await storedBoundaries(previous.parallelUploadUrls, this.file.size)
        if (stored) {
          boundaries = stored
        } else {
          resumeFrom = null
          await urlStorage.removeUpload(previous.urlStorageKey).catch(() => {})
        }
      } else if (previous) {
        boundaries = null
      }
      if (resumeFrom) this.row.dataset.resumed = 'true'
      if (boundaries && boundaries.length > 1) {
        options.parallelUploads = boundaries.length
        options.parallelUploadBoundaries = boundaries
      }
      this.row.dataset.parallel = String(options.parallelUploads)
      this.upload = new tus.Upload(this.file, options)
      if (resumeFrom) this.upload.resumeFromPreviousUpload(resumeFrom)
      this.start()
      renderResumable()
    }

    start() {
      this.samples = []
      this.setState('uploading')
      this.upload.start()
    }

    pause() {
      this.setState('paused')
      this.upload.abort()
    }

    resume() {
      this.start()
    }

    async cancel() {
      this.setState('cancelled')
      if (this.upload) {
        // abort(true) also deletes the upload (or its parts) on the server and forgets its URL.
        await this.upload.abort(true).catch(() => {})
      }
      // A parallel upload's entry is the parent's, which has no URL of its own for abort() to act on.
      if (this.fingerprint) {
        const entries = await urlStorage.findUploadsByFingerprint(this.fingerprint).catch(() => [])
        await Promise.all(entries.map((e) => urlStorage.removeUpload(e.urlStorageKey)))
      }
      this.release()
      this.row.remove()
      $('active').hidden = $('uploads').children.length === 0
      renderResumable()
    }

    release() {
      if (this.fingerprint) activeFingerprints.delete(this.fingerprint)
      this.fingerprint = null
    }

    onBeforeRequest(req) {
      const concat = req.getHeader('Upload-Concat') || ''
      if (req.getMethod() === 'POST' && !concat.startsWith('final')) {
        this.creations += 1
        this.row.dataset.creations = String(this.creations)
      }
    }

    onAfterResponse(req, res) {
      // A HEAD answers where the server stands when an upload is picked up again (after a reload, a
      // pause or a retry): the sum over the parts is where this file continues from.
      if (req.getMethod() === 'HEAD' && res.getStatus() === 200) {
        const offset = Number.parseInt(res.getHeader('Upload-Offset'), 10)
        if (Number.isFinite(offset)) {
          this.headOffsets.set(req.getURL(), offset)
          let sum = 0
          for (const value of this.headOffsets.values()) sum += value
          this.row.dataset.resumedFrom = String(sum)
          this.row.dataset.heads = String(Number(this.row.dataset.heads || 0) + 1)
        }
      }
    }

    onProgress(sent, total) {
      const now = performance.now()
      if (sent < this.bytes) this.samples = [] // a part restarted its request: measure afresh
      this.bytes = sent
      this.samples.push({ t: now, bytes: sent })
      while (this.samples.length > 2 && now - this.samples[0].t > RATE_WINDOW_MS) this.samples.shift()
      this.row.dataset.bytes = String(sent)
      this.row.dataset.total = String(total)
      if (this.renderTimer === null) {
        this.renderTimer = window.setTimeout(() => {
          this.renderTimer = null
          this.render()
        }, RENDER_INTERVAL_MS)
      }
    }

    rate() {
      if (this.samples.length < 2) return 0
      const first = this.samples[0]
      const last = this.samples[this.samples.length - 1]
      const seconds = (last.t - first.t) / 1000
      return seconds > 0.2 ? (last.bytes - first.bytes) / seconds : 0
    }

    render() {
      const total = this.file.size
      const fraction = total > 0 ? this.bytes / total : this.state === 'done' ? 1 : 0
      this.progress.value = Math.min(1, fraction)
      if (this.state === 'uploading') {
        const rate = this.rate()
        const eta = rate > 0 ? (total - this.bytes) / rate : Number.NaN
        const resumed = Number(this.row.dataset.resumedFrom || 0)
        const from = resumed > 0 ? ` · continued from ${formatBytes(resumed)}` : ''
        this.status.textContent =
          `${formatBytes(this.bytes)} of ${formatBytes(total)} (${Math.floor(fraction * 100)} %)` +
          ` · ${rate > 0 ? `${formatBytes(rate)}/s` : '–'} · ETA ${formatDuration(eta)}${from}`
      } else if (this.state === 'paused') {
        this.status.textContent = `Paused at ${formatBytes(this.bytes)} of ${formatBytes(total)}`
      }
    }

    onSuccess() {
      const url = this.upload.url
      this.release()
      this.bytes = this.file.size
      this.row.dataset.url = url
      this.setState('done')
      this.status.replaceChildren('Done · ', el('a', { href: url, download: this.file.name, text: 'download' }))
      addFinished({ name: this.file.name, size: this.file.size, url, finishedAt: Date.now() })
      renderResumable()
    }

    fail(message) {
      if (this.state === 'cancelled') return
      this.row.dataset.error = message
      this.setState('error')
      this.status.textContent = `Failed: ${message}`
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Picking and dropping

  async function addFiles(files) {
    for (const file of files) {
      const fingerprint = await tus.defaultOptions.fingerprint(file, { endpoint })
      // The same file twice at once would make two clients fight over one upload.
      if (fingerprint && activeFingerprints.has(fingerprint)) continue
      if (fingerprint) activeFingerprints.add(fingerprint)
      const upload = new FileUpload(file)
      upload.fingerprint = fingerprint
      upload.begin().catch((err) => upload.fail(String((err && err.message) || err)))
    }
  }

  const input = $('file-input')
  input.addEventListener('change', () => {
    addFiles(Array.from(input.files || []))
    input.value = '' // choosing the same file again fires another change
  })

  const drop = $('drop')
  for (const name of ['dragenter', 'dragover']) {
    drop.addEventListener(name, (event) => {
      event.preventDefault()
      drop.classList.add('over')
    })
  }
  for (const name of ['dragleave', 'drop']) {
    drop.addEventListener(name, () => drop.classList.remove('over'))
  }
  drop.addEventListener('drop', (event) => {
    event.preventDefault()
    addFiles(Array.from((event.dataTransfer && event.dataTransfer.files) || []))
  })
  // A file dropped next to the zone would otherwise make the browser navigate to it.
  window.addEventListener('dragover', (event) => event.preventDefault())
  window.addEventListener('drop', (event) => event.preventDefault())

  renderFinished()
  renderResumable()
})()
