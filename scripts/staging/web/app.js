// The staging page's behaviour: the file creator, the staging form, the records table and the
// live log. Every request goes to a URL relative to the page, so the service can be mounted
// anywhere; every server-supplied string is written as text, never as HTML.
'use strict';

const RECORDS_PERIOD_MS = 3000;
const RECORDS_RUNNING_PERIOD_MS = 1000; // a running copy's progress bar should move smoothly
const LOGS_PERIOD_MS = 5000; // the original's LogsViewer interval
const RECORDS_LIMIT = 50;
const STAGE_RECORD_DELAY_MS = 300; // quick copies answer before this and show no running state

const $ = (id) => document.getElementById(id);

function serviceUrl(path, query = {}) {
  // encodeURIComponent rather than URLSearchParams: spaces become %20, which every server reads
  // as a space, while "+" is only a space to form decoders.
  const pairs = Object.entries(query)
    .filter(([, value]) => value !== undefined && value !== '')
    .map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
  const url = new URL(path, document.baseURI);
  url.search = pairs.join('&');
  return url;
}

// Behind the users guard (config/users.json) the API wants "Authorization: Bearer <access token>":
// the reader pastes one into the sign-in field; it lives in this tab's session storage only.
const TOKEN_KEY = 'staging-access-token';

function serviceFetch(path, query, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  return fetch(serviceUrl(path, query), { ...options, headers });
}

function setUpSignIn() {
  const field = $('access-token');
  field.value = sessionStorage.getItem(TOKEN_KEY) || '';
  $('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = field.value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    refreshRecords();
    refreshLogs();
  });
}

async function readBody(response) {
  const type = response.headers.get('content-type') || '';
  if (type.includes('json')) return response.json();
  return response.text();
}

// FastAPI's error bodies: {"detail": "text"} or pydantic's [{loc, msg, type}, ...]; the users
// guard's: {"message": "text"} or {"msg": "text"}.
function describeError(status, body) {
  const detail = body && typeof body === 'object' ? (body.detail ?? body.message ?? body.msg) : body;
  if (typeof detail === 'string' && detail !== '') return detail;
  if (Array.isArray(detail)) {
    return detail.map((item) => `${(item.loc || []).join(' → ')}: ${item.msg}`).join('\n');
  }
  return `HTTP ${status}`;
}

function formatBytes(bytes) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function formatDuration(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

// Records carry their time as epoch seconds or as an ISO string; both are shown in local time.
function parseTime(time) {
  if (typeof time === 'number') return new Date(time < 1e12 ? time * 1000 : time);
  const date = new Date(time);
  return Number.isNaN(date.getTime()) ? null : date;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== undefined && child !== null));
  return node;
}

function showResult(container, kind, ...content) {
  container.hidden = false;
  container.className = `result ${kind}`;
  container.replaceChildren(...content);
}

async function whileBusy(form, work) {
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try {
    await work();
  } finally {
    button.disabled = false;
    form.removeAttribute('aria-busy');
  }
}

// Runs `load` now and then again every `period()` ms while the page is visible. A call while a
// load is under way queues one more run right after it, so a refresh asked for after staging is
// never lost, and loads never overlap.
function poller(load, period) {
  let timer = null;
  let loading = false;
  let again = false;
  return async function run() {
    if (loading) {
      again = true;
      return;
    }
    clearTimeout(timer);
    if (document.hidden) return; // the visibilitychange listener restarts it
    loading = true;
    try {
      await load();
    } finally {
      loading = false;
    }
    if (again) {
      again = false;
      run();
      return;
    }
    timer = setTimeout(run, period());
  };
}

// --- File creator: POST create-file/ and show the JSON answer as the original did.
function setUpCreator() {
  const form = $('creator-form');
  const result = $('creator-result');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    whileBusy(form, async () => {
      const payload = { filename: $('creator-filename').value, content: $('creator-content').value };
      try {
        const response = await serviceFetch('create-file/', {}, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(payload),
        });
        const body = await readBody(response);
        const text = typeof body === 'string' ? body : JSON.stringify(body, null, 2);
        showResult(result, response.ok ? 'success' : 'error', text);
      } catch (error) {
        showResult(result, 'error', `Failed to create file: ${error.message}`);
      }
    });
  });
}

// --- Staging form.
async function loadMethods() {
  const select = $('stage-method');
  try {
    const response = await serviceFetch('config/allowed-methods/');
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const { allowed_methods: methods } = await response.json();
    select.replaceChildren(...methods.map((method) => element('option', { value: method }, method)));
  } catch (error) {
    select.replaceChildren(element('option', { value: '' }, 'Failed to load methods'));
    showResult($('stage-result'), 'error', `Failed to load the allowed methods: ${error.message}`);
  }
  toggleTokenField();
}

function toggleTokenField() {
  $('stage-token-field').hidden = $('stage-method').value !== 'jupyter_copy';
}

function downloadName(response) {
  const disposition = response.headers.get('content-disposition') || '';
  const extended = disposition.match(/filename\*\s*=\s*[^']*''([^;]+)/i);
  if (extended) return decodeURIComponent(extended[1]);
  const plain = disposition.match(/filename\s*=\s*"?([^";]+)"?/i);
  return plain ? plain[1] : 'download';
}

let downloadUrl = null;

// direct_download answers with the file itself: offer it as a download instead of text.
async function offerDownload(response) {
  const blob = await response.blob();
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = URL.createObjectURL(blob);
  const name = downloadName(response);
  const link = element('a', { href: downloadUrl, download: name }, `Save ${name}`);
  showResult($('stage-result'), 'success', 'Download ready: ', link, ` (${formatBytes(blob.size)})`);
  link.click();
}

function setUpStager() {
  const form = $('stage-form');
  const result = $('stage-result');
  $('stage-method').addEventListener('change', toggleTokenField);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    whileBusy(form, async () => {
      const method = $('stage-method').value;
      const query = { method, username: $('stage-username').value };
      if (method === 'jupyter_copy') query.jupyter_token = $('stage-token').value;
      const data = {
        local_path_on_storage: $('stage-local-path').value,
        relative_path: $('stage-relative-path').value,
      };
      // The answer comes when the copy is over: show its running record (and progress) meanwhile.
      const showRunning = setTimeout(refreshRecords, STAGE_RECORD_DELAY_MS);
      try {
        const response = await serviceFetch('stage-data/', query, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ data }),
        });
        const type = response.headers.get('content-type') || '';
        if (response.ok && !type.includes('json')) {
          await offerDownload(response);
        } else {
          const body = await readBody(response);
          if (response.ok) showResult(result, 'success', body.message || 'Done');
          else showResult(result, 'error', describeError(response.status, body));
        }
      } catch (error) {
        showResult(result, 'error', `Failed to stage data: ${error.message}`);
      }
      clearTimeout(showRunning);
      refreshRecords();
      refreshLogs();
    });
  });
}

// --- Records table.
function progressCell(record) {
  if (record.status === 'running') {
    const total = record.bytes_total;
    const done = record.bytes_done || 0;
    if (typeof total === 'number' && total > 0) {
      const percent = Math.min(100, Math.floor((done / total) * 100));
      return element('td', { class: 'progress-cell' },
        element('progress', { max: total, value: done, 'aria-label': `Copied ${percent}%` }),
        element('span', { class: 'progress-text' }, `${percent}% · ${formatBytes(done)} of ${formatBytes(total)}`));
    }
    return element('td', { class: 'progress-cell' },
      element('progress', { 'aria-label': 'Copying' }),
      element('span', { class: 'progress-text' }, done ? formatBytes(done) : 'starting'));
  }
  return element('td', { class: 'numeric' }, formatBytes(record.bytes));
}

const COLUMN_NAMES = [...document.querySelectorAll('#records-table thead th')].map((th) => th.textContent);

function recordRow(record) {
  const date = parseTime(record.time);
  const time = date
    ? element('time', { datetime: date.toISOString() }, date.toLocaleString())
    : String(record.time ?? '');
  const paths = element('td', { class: 'paths' },
    element('span', { class: 'path', title: record.source || '' }, record.source || '—'),
    element('span', { class: 'arrow', 'aria-label': 'to' }, ' → '),
    element('span', { class: 'path', title: record.target || '' }, record.target || '—'));
  if (record.error) paths.append(element('div', { class: 'record-error' }, record.error));
  const cells = [
    element('td', { class: 'nowrap' }, time),
    element('td', {}, record.username || ''),
    element('td', { class: 'nowrap' }, record.method || ''),
    paths,
    element('td', {}, element('span', { class: `badge badge-${record.status}` }, record.status || '')),
    progressCell(record),
    element('td', { class: 'numeric nowrap' }, formatDuration(record.duration)),
  ];
  // Narrow screens show each row as a card: a cell's column name beside one box holding its
  // content (style.css).
  cells.forEach((cell, index) => {
    cell.setAttribute('data-label', COLUMN_NAMES[index]);
    cell.replaceChildren(element('div', { class: 'cell' }, ...cell.childNodes));
  });
  return element('tr', { 'data-id': record.id, 'data-status': record.status }, ...cells);
}

let anyRunning = false;

async function loadRecords() {
  const statusLine = $('records-status-line');
  try {
    const response = await serviceFetch('stage-data/records', {
      username: $('records-username').value.trim(),
      status: $('records-status').value,
      limit: RECORDS_LIMIT,
    });
    if (!response.ok) throw new Error(describeError(response.status, await readBody(response)));
    const { records } = await response.json();
    anyRunning = records.some((record) => record.status === 'running');
    const body = $('records-table').tBodies[0];
    if (records.length === 0) {
      body.replaceChildren(element('tr', {}, element('td', { colspan: 7, class: 'empty' }, 'No staging requests yet')));
    } else {
      body.replaceChildren(...records.map(recordRow));
    }
    statusLine.textContent = `${records.length} record${records.length === 1 ? '' : 's'} · updated ${new Date().toLocaleTimeString()}`;
    statusLine.classList.remove('error');
  } catch (error) {
    anyRunning = false;
    statusLine.textContent = `Failed to fetch records: ${error.message}`;
    statusLine.classList.add('error');
  }
}

const refreshRecords = poller(loadRecords, () => (anyRunning ? RECORDS_RUNNING_PERIOD_MS : RECORDS_PERIOD_MS));

function setUpRecordsFilter() {
  const form = $('records-filter');
  form.addEventListener('submit', (event) => event.preventDefault());
  form.addEventListener('change', refreshRecords);
  let typing = null;
  $('records-username').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(refreshRecords, 300);
  });
}

// --- Log viewer: the whole staging log, refreshed every 5 s, kept scrolled to its end unless
// the reader scrolled up to read older lines.
async function loadLogs() {
  const view = $('logs-text');
  const atEnd = view.scrollHeight - view.scrollTop - view.clientHeight < 24;
  try {
    const response = await serviceFetch('logs/');
    // 404 is the original's "Log file not found": nothing was logged yet, which is no failure.
    if (!response.ok && response.status !== 404) throw new Error(`HTTP ${response.status}`);
    const text = response.ok ? await response.text() : 'No log lines yet.';
    if (view.textContent !== text) view.textContent = text;
    view.classList.remove('error');
    $('logs-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    view.textContent = 'Failed to fetch logs';
    view.classList.add('error');
  }
  if (atEnd) view.scrollTop = view.scrollHeight;
}

const refreshLogs = poller(loadLogs, () => LOGS_PERIOD_MS);

// Background tabs stop polling; they catch up when shown again.
document.addEventListener('visibilitychange', () => {
  refreshLogs();
  refreshRecords();
});

setUpSignIn();
setUpCreator();
setUpStager();
setUpRecordsFilter();
loadMethods();
refreshRecords();
refreshLogs();
