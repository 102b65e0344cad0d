// hookgate dashboard: plain ES module, no framework, no external URL.
// Every data call goes to this gateway's /v1 API with the signed-in key as
// `Authorization: Bearer`; the key lives in sessionStorage only (never in a
// URL). Signing secrets and new API key tokens exist only in the answer that
// created them: they are shown once and never stored.

const SESSION_KEY = 'hookgate.session';
const PAGE = 20;

// ---------- small DOM helpers ----------

/** Builds an element: h('button', {type: 'button', onclick}, 'Text'). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

/** A labelled form field; returns {wrap, input}. */
function field(label, input, hint) {
  input.id ||= nextId('f');
  const hintEl = hint ? h('p', { class: 'hint', id: `${input.id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return { wrap: h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hintEl), input };
}

function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

const REASONS = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 301: 'Moved Permanently',
  302: 'Found', 307: 'Temporary Redirect', 308: 'Permanent Redirect', 400: 'Bad Request',
  401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  408: 'Request Timeout', 409: 'Conflict', 410: 'Gone', 413: 'Payload Too Large',
  422: 'Unprocessable Entity', 429: 'Too Many Requests', 500: 'Internal Server Error',
  502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};
const statusText = (code) => (code ? `${code} ${REASONS[code] || ''}`.trim() : '');

/** "200 OK", or the error when there was no answer. */
function resultText(r) {
  if (!r) return 'No deliveries yet';
  if (r.response_code) {
    const t = statusText(r.response_code);
    const redundant = !r.error || t.includes(r.error) || r.error.startsWith(String(r.response_code));
    return r.success === false && !redundant ? `${t} (${r.error})` : t;
  }
  return r.error || (r.success ? 'OK' : 'Failed');
}

function pretty(text) {
  if (text === undefined || text === null) return '';
  try { return JSON.stringify(typeof text === 'string' ? JSON.parse(text) : text, null, 2); } catch { return String(text); }
}

// ---------- session and API ----------

function session() {
  try { return JSON.parse(sessionStorage.getItem(SESSION_KEY)); } catch { return null; }
}

class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status; this.code = code; this.field = field;
  }
  describe() {
    const where = this.field ? ` (${this.field})` : '';
    return `${this.message}${where} — HTTP ${this.status}${this.code ? ` ${this.code}` : ''}`;
  }
}

function describe(err) {
  if (err instanceof ApiError) return err.describe();
  return err && err.message ? err.message : String(err);
}

/** Calls the API; resolves with `data`, rejects with an ApiError in words. */
async function api(method, path, body, { token, raw, contentType } = {}) {
  const t = token || session()?.token;
  const headers = { Accept: 'application/json' };
  if (t) headers.Authorization = `Bearer ${t}`;
  let payload;
  if (raw !== undefined) { payload = raw; headers['Content-Type'] = contentType || 'application/octet-stream'; }
  else if (body !== undefined) { payload = JSON.stringify(body); headers['Content-Type'] = 'application/json'; }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
  } catch (e) {
    throw new Error(`Could not reach the gateway (${e.message}). Check that it is running and try again.`);
  }
  const text = await resp.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!resp.ok || !json || json.success === false) {
    const e = json && json.error;
    throw new ApiError(resp.status, e?.code, e?.message || text || resp.statusText || 'request failed', e?.field);
  }
  return json.data;
}

/** Reads every page of a cursor list. */
async function all(path, key) {
  const out = [];
  let cursor = null;
  for (let i = 0; i < 100; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const data = await api('GET', `${path}${sep}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    out.push(...data[key]);
    cursor = data.next_cursor;
    if (!cursor) break;
  }
  return out;
}

// ---------- alerts, notices, dialogs ----------

function showError(err, context) {
  const box = document.getElementById('alerts');
  const msg = `${context ? `${context}: ` : ''}${describe(err)}`;
  const item = h('div', { class: 'alert' },
    h('p', {}, msg),
    h('button', { type: 'button', class: 'secondary small', onclick: () => item.remove() }, 'Dismiss'));
  box.append(item);
  if (err instanceof ApiError && err.status === 401 && session()) {
    box.append(h('div', { class: 'alert' }, h('p', {}, 'Your key was not accepted. Sign out and sign in again with a valid key.')));
  }
}

function clearErrors() { document.getElementById('alerts').replaceChildren(); }

function notice(text) {
  const box = document.getElementById('notice');
  box.textContent = text;
  notice.at = Date.now();
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { if (box.textContent === text) box.textContent = ''; }, 6000);
}

/**
 * A modal <dialog> with a heading; `build(dialog, close)` fills it. Returns a
 * promise resolving with the value given to `close`. The dialog is removed
 * when closed and focus goes back where it was.
 */
function modal(title, build, { wide = false, guard } = {}) {
  const opener = document.activeElement;
  const titleId = nextId('dlg-title');
  const dialog = h('dialog', { 'aria-labelledby': titleId, class: wide ? 'wide' : '' });
  const heading = h('h2', { id: titleId }, title);
  dialog.append(heading);
  return new Promise((resolve) => {
    let value;
    const close = (v) => { value = v; dialog.close(); };
    dialog.addEventListener('cancel', (e) => { if (guard && !guard()) e.preventDefault(); });
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (opener && document.contains(opener)) opener.focus();
      resolve(value);
    });
    build(dialog, close, heading);
    document.body.append(dialog);
    dialog.showModal();
    const first = dialog.querySelector('[autofocus], input:not([type=hidden]):not([disabled]), select, textarea, button:not([disabled])');
    if (first) first.focus();
  });
}

/** An error line inside a dialog or form. */
function errorLine() {
  return h('p', { class: 'error', role: 'alert', hidden: true });
}
function setError(line, err) {
  if (!err) { line.hidden = true; line.textContent = ''; return; }
  line.textContent = typeof err === 'string' ? err : describe(err);
  line.hidden = false;
}

/** Confirmation dialog; resolves true when confirmed. */
function confirmDialog(title, text, confirmLabel, { danger = false } = {}) {
  return modal(title, (d, close) => {
    d.append(
      h('p', {}, text),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => close(false) }, 'Cancel'),
        h('button', { type: 'button', class: danger ? 'danger' : '', onclick: () => close(true) }, confirmLabel)));
  }).then((v) => v === true);
}

/** A clipboard icon drawn inline (no icon font or image to fetch). */
function clipboardIcon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '18');
  svg.setAttribute('height', '18');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'icon');
  for (const [tag, attrs] of [
    ['rect', { x: '5', y: '4', width: '14', height: '17', rx: '2' }],
    ['rect', { x: '9', y: '2', width: '6', height: '4', rx: '1' }],
    ['path', { d: 'M9 11h6M9 15h6' }],
  ]) {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    svg.append(el);
  }
  return svg;
}

/**
 * The "shown once" gate: the value with a copy button and the checkbox
 * "I have saved the secret in a safe place"; Done stays disabled until ticked.
 */
function secretGate(d, close, { label, value, note, what = 'secret' }) {
  const input = h('input', { type: 'text', readonly: true, value, class: 'secret', spellcheck: 'false', autocomplete: 'off' });
  const copied = h('span', { class: 'copied', role: 'status', 'aria-live': 'polite' });
  const copy = h('button', {
    type: 'button', class: 'secondary', 'aria-label': `Copy ${what} to clipboard`,
    onclick: async () => {
      try {
        if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(value);
        else { input.select(); if (!document.execCommand('copy')) throw new Error('copy refused'); }
        copied.textContent = 'Copied to clipboard';
      } catch (e) {
        input.select();
        copied.textContent = `Could not copy automatically (${e.message}); the ${what} is selected, press Ctrl+C.`;
      }
    },
  }, clipboardIcon(), 'Copy');
  const f = field(label, input);
  const box = h('input', { type: 'checkbox', id: nextId('saved') });
  const done = h('button', { type: 'button', disabled: true, onclick: () => close(true) }, 'Done');
  box.addEventListener('change', () => { done.disabled = !box.checked; });
  d.append(
    h('p', { class: 'warning' }, h('strong', {}, 'Important! '), `This ${what} will not be shown again. Copy it now and store it somewhere safe.`),
    h('div', { class: 'secret-row' }, f.wrap, copy), copied,
    note ? h('p', {}, note) : null,
    h('div', { class: 'check' }, box, h('label', { for: box.id }, 'I have saved the secret in a safe place')),
    h('div', { class: 'actions' }, done));
  return () => box.checked;
}

function showSecret(title, opts) {
  let guard = () => false;
  return modal(title, (d, close) => { guard = secretGate(d, close, opts); }, { guard: () => guard() });
}

// ---------- sign in ----------

async function signIn(token) {
  // The admin token lists tenants; a tenant key is refused there with 403.
  try {
    await api('GET', '/v1/tenants?limit=1', undefined, { token });
    return { token, role: 'operator' };
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 403) throw e;
  }
  return { token, role: 'tenant' };
}

function renderSignIn() {
  setChrome(null);
  const main = document.getElementById('main');
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const f = field('API key or operator token', input, 'A tenant API key opens its webhooks; the operator admin token opens the operator view. The key is kept in this browser tab only (session storage).');
  const err = errorLine();
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'panel signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to hookgate'), f.wrap, err, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setError(err, null);
    const token = input.value.trim();
    if (!token) { setError(err, 'Enter a key.'); return; }
    submit.disabled = true;
    try {
      const s = await signIn(token);
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
      go(s.role === 'operator' ? '#/operator' : '#/endpoints');
    } catch (e) {
      setError(err, e instanceof ApiError && e.status === 401 ? `This key was not accepted: ${describe(e)}` : e);
      input.focus();
    } finally {
      submit.disabled = false;
    }
  });
  main.replaceChildren(form);
  input.focus();
}

// ---------- chrome and routing ----------

function setChrome(s) {
  const nav = document.getElementById('nav');
  const sess = document.getElementById('session');
  nav.hidden = !s; sess.hidden = !s;
  if (!s) { nav.replaceChildren(); return; }
  document.getElementById('who').textContent = s.role === 'operator' ? 'Operator' : 'Tenant key';
  const links = s.role === 'operator'
    ? [['#/operator', 'Tenants']]
    : [['#/endpoints', 'Webhooks'], ['#/plugins', 'Plugins'], ['#/catalog', 'Event catalog'], ['#/settings', 'Settings']];
  const current = location.hash.split('/').slice(0, 2).join('/');
  nav.replaceChildren(h('ul', {}, links.map(([href, text]) =>
    h('li', {}, h('a', { href, 'aria-current': href === current ? 'page' : null }, text)))));
}

/** Shows `hash`'s view (once, whether or not the hash changes). */
function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

function route() {
  clearErrors();
  const s = session();
  if (!s) { renderSignIn(); return; }
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  if (s.role === 'operator') {
    if (parts[0] !== 'operator') { location.hash = '#/operator'; return; }
  } else if (parts[0] === 'operator' || !parts[0]) { location.hash = '#/endpoints'; return; }
  setChrome(s);
  const main = document.getElementById('main');
  main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
  const views = {
    endpoints: () => (parts[2] === 'logs' ? renderLogs(decodeURIComponent(parts[1])) : renderEndpoints()),
    plugins: renderPlugins,
    catalog: renderCatalog,
    settings: renderSettings,
    operator: () => renderOperator(parts[1] ? decodeURIComponent(parts[1]) : null),
  };
  const view = views[parts[0]] || renderEndpoints;
  Promise.resolve(view()).catch((e) => {
    main.replaceChildren(h('h1', {}, 'Something went wrong'), h('p', { class: 'error' }, describe(e)));
    showError(e);
  });
}

function pageHeader(title, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', {}, title), actions.length ? h('div', { class: 'actions' }, actions) : null);
}

// ---------- event catalog helpers ----------

function prefixOf(name) { const i = name.indexOf('.'); return i > 0 ? name.slice(0, i) : name; }

/**
 * The "Events to subscribe" picker: the catalog grouped by prefix, with
 * "all <prefix> events" patterns. Returns {el, selected()}.
 */
function eventPicker(catalog, chosen = []) {
  const names = catalog.filter((t) => !t.builtin).map((t) => t.name);
  const groups = new Map();
  for (const n of names) { const p = prefixOf(n); if (!groups.has(p)) groups.set(p, []); groups.get(p).push(n); }
  const extra = chosen.filter((c) => !names.includes(c) && !(c.endsWith('.*') && groups.has(c.slice(0, -2))));
  const boxes = [];
  const box = (value, label, desc) => {
    const input = h('input', { type: 'checkbox', value, id: nextId('ev'), checked: chosen.includes(value) });
    boxes.push(input);
    return h('div', { class: 'check' }, input, h('label', { for: input.id }, label, desc ? h('span', { class: 'muted' }, ` — ${desc}`) : null));
  };
  const desc = Object.fromEntries(catalog.map((t) => [t.name, t.description]));
  const fieldsets = [...groups.entries()].sort().map(([p, list]) => h('fieldset', { class: 'group' },
    h('legend', {}, p),
    box(`${p}.*`, `All ${p} events (${p}.*)`),
    list.sort().map((n) => box(n, n, desc[n]))));
  if (extra.length) fieldsets.push(h('fieldset', { class: 'group' }, h('legend', {}, 'Other'), extra.map((n) => box(n, n))));
  const el = h('fieldset', { class: 'events' }, h('legend', {}, 'Events to subscribe'),
    h('p', { class: 'hint' }, 'Select at least one event.'),
    fieldsets.length ? fieldsets : h('p', { class: 'muted' }, 'The event catalog is empty: add event types in the Event catalog first.'));
  return { el, selected: () => boxes.filter((b) => b.checked).map((b) => b.value) };
}

// The gateway's settings the forms check against, as the API will
// (/ui/settings.json): plain http:// endpoint URLs only with HOOKGATE_ALLOW_HTTP,
// and an endpoint's default most deliveries in flight.
const settings = { allow_http: false, endpoint_concurrency: null };
fetch('/ui/settings.json', { cache: 'no-store' })
  .then((r) => (r.ok ? r.json() : null))
  .then((s) => { if (s) Object.assign(settings, s); })
  .catch(() => { /* keep the strict default: HTTPS only */ });

function checkHttps(input) {
  const v = input.value.trim();
  let msg = '';
  if (!v) msg = 'Enter the endpoint URL.';
  else {
    try {
      const u = new URL(v);
      const plainAllowed = settings.allow_http && u.protocol === 'http:';
      if (u.protocol !== 'https:' && !plainAllowed) {
        msg = settings.allow_http
          ? 'The endpoint URL must start with https:// (or http://, which this gateway allows).'
          : 'The endpoint URL must use HTTPS (start with https://).';
      }
    } catch { msg = 'This is not a valid URL; it must look like https://example.com/webhooks.'; }
  }
  input.setCustomValidity(msg);
  input.setAttribute('aria-invalid', msg ? 'true' : 'false');
  return msg;
}

/** Name, Endpoint URL and events fields, shared by Add and Edit. */
function endpointFields(catalog, initial = {}) {
  const name = field('Name', h('input', { type: 'text', required: true, maxlength: '200', value: initial.name || '', autocomplete: 'off' }),
    'An identifier that helps you recognize this endpoint (e.g. "My integration").');
  const url = field('Endpoint URL', h('input', { type: 'url', required: true, value: initial.url || '', placeholder: 'https://example.com/webhooks', inputmode: 'url', autocomplete: 'off' }),
    'The address of your server that will receive the events. HTTPS only.');
  url.input.addEventListener('input', () => checkHttps(url.input));
  const picker = eventPicker(catalog, initial.events || []);
  const own = initial.max_in_flight != null && initial.max_in_flight !== settings.endpoint_concurrency ? String(initial.max_in_flight) : '';
  const concurrency = field('Concurrent deliveries', h('input', { type: 'number', min: '1', max: '1024', step: '1', value: own, placeholder: String(settings.endpoint_concurrency ?? ''), inputmode: 'numeric' }),
    'The most deliveries in flight at once to this endpoint. The gateway sends fewer while your server fails or slows down. Leave empty for the default.');
  const rate = field('Rate limit', h('input', { type: 'number', min: '0', step: 'any', value: initial.rate_limit ?? '', placeholder: 'No limit', inputmode: 'decimal' }),
    'The most deliveries per second to this endpoint (0.5 is one every two seconds). Deliveries past it wait their turn; none is dropped. Leave empty for no limit.');
  const ordering = field('Order', h('select', {},
    h('option', { value: 'unordered', selected: initial.ordering !== 'fifo' }, 'Any order (fastest)'),
    h('option', { value: 'fifo', selected: initial.ordering === 'fifo' }, 'One at a time, in publish order (FIFO)')),
    'FIFO sends the next event only when the one before it was delivered or failed for good, retries included.');
  const headerText = Object.entries(initial.headers || {}).map(([k, v]) => `${k}: ${v}`).join('\n');
  const headers = field('Custom headers', h('textarea', { rows: '3', spellcheck: 'false', placeholder: 'X-Env: prod' }, headerText),
    'Added to every request, one "Name: value" per line. The signature and delivery headers are the gateway\'s own and cannot be set here.');
  const had = initial.auth?.type || 'none';
  const authType = field('Authentication', h('select', {},
    h('option', { value: 'none', selected: had === 'none' }, 'None (signature only)'),
    h('option', { value: 'basic', selected: had === 'basic' }, 'Basic (username and password)'),
    h('option', { value: 'bearer', selected: had === 'bearer' }, 'Bearer token')),
    'Sent as the Authorization header of every request, besides the signature.');
  const keep = had !== 'none' ? 'Leave empty to keep the current one' : '';
  const username = field('User', h('input', { type: 'text', autocomplete: 'off', value: initial.auth?.username || '' }));
  const password = field('Password', h('input', { type: 'password', autocomplete: 'new-password', placeholder: keep }));
  const token = field('Token', h('input', { type: 'password', autocomplete: 'off', placeholder: keep }));
  const hadTls = !!initial.tls_client;
  const tlsCert = field('Client certificate (PEM, optional)', h('textarea', { rows: '3', spellcheck: 'false', class: 'code', placeholder: '-----BEGIN CERTIFICATE-----' }, initial.tls_client?.cert || ''),
    'For servers that require mutual TLS: the certificate, then any intermediates.');
  const tlsKey = field('Client key (PEM)', h('textarea', { rows: '3', spellcheck: 'false', class: 'code', placeholder: hadTls ? 'Leave empty to keep the current key' : '-----BEGIN PRIVATE KEY-----' }),
    'The certificate\'s unencrypted private key. It is never shown again.');
  const tlsValue = () => {
    const cert = tlsCert.input.value.trim();
    const key = tlsKey.input.value.trim();
    if (!cert) return hadTls ? null : undefined;
    if (!key && hadTls && cert === initial.tls_client.cert.trim()) return undefined;
    return { cert, key };
  };
  const showAuth = () => {
    const t = authType.input.value;
    username.wrap.hidden = password.wrap.hidden = t !== 'basic';
    token.wrap.hidden = t !== 'bearer';
  };
  authType.input.addEventListener('change', showAuth);
  showAuth();
  const parseHeaders = () => {
    const out = {};
    for (const [i, raw] of headers.input.value.split('\n').entries()) {
      const line = raw.trim();
      if (!line) continue;
      const at = line.indexOf(':');
      if (at < 1) return [null, `Line ${i + 1} of Custom headers must look like "Name: value".`];
      const k = line.slice(0, at).trim();
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k)) return [null, `"${k}" is not a valid header name (line ${i + 1}).`];
      if (Object.keys(out).some((o) => o.toLowerCase() === k.toLowerCase())) return [null, `Header ${k} is there twice.`];
      out[k] = line.slice(at + 1).trim();
    }
    return [out, null];
  };
  const authValue = () => {
    const t = authType.input.value;
    if (t === 'none') return had === 'none' ? undefined : null;
    if (t === 'basic') {
      if (had === 'basic' && !password.input.value && username.input.value.trim() === (initial.auth?.username || '')) return undefined;
      return { type: 'basic', username: username.input.value.trim(), password: password.input.value };
    }
    if (had === 'bearer' && !token.input.value) return undefined;
    return { type: 'bearer', token: token.input.value.trim() };
  };
  const validate = () => {
    if (!name.input.value.trim()) return ['Enter a name.', name.input];
    const u = checkHttps(url.input);
    if (u) return [u, url.input];
    if (!picker.selected().length) return ['Select at least one event from the list.', picker.el.querySelector('input')];
    const c = concurrency.input.value.trim();
    if (c && !(/^[0-9]+$/.test(c) && +c >= 1 && +c <= 1024)) return ['Concurrent deliveries must be a whole number from 1 to 1024, or empty.', concurrency.input];
    const r = rate.input.value.trim();
    if (r && !(Number(r) > 0)) return ['The rate limit must be a number of deliveries per second above 0, or empty.', rate.input];
    const [, headerError] = parseHeaders();
    if (headerError) return [headerError, headers.input];
    const a = authValue();
    if (a?.type === 'basic' && (!a.username || !a.password)) return ['Basic authentication needs a username and a password.', a.username ? password.input : username.input];
    if (a?.type === 'bearer' && !a.token) return ['Enter the bearer token.', token.input];
    const t = tlsValue();
    if (t && !t.key) return ['Enter the client certificate\'s private key.', tlsKey.input];
    return null;
  };
  const value = () => {
    const c = concurrency.input.value.trim();
    const r = rate.input.value.trim();
    const body = {
      name: name.input.value.trim(), url: url.input.value.trim(), events: picker.selected(), max_in_flight: c ? +c : null,
      rate_limit: r ? Number(r) : null, headers: parseHeaders()[0], ordering: ordering.input.value,
    };
    const a = authValue();
    if (a !== undefined) body.auth = a;
    const t = tlsValue();
    if (t !== undefined) body.tls_client = t;
    return body;
  };
  return { els: [name.wrap, url.wrap, picker.el, concurrency.wrap, rate.wrap, ordering.wrap, headers.wrap, authType.wrap, username.wrap, password.wrap, token.wrap, tlsCert.wrap, tlsKey.wrap], validate, value };
}

// ---------- endpoints ----------

async function renderEndpoints() {
  const main = document.getElementById('main');
  const [webhooks, catalog] = await Promise.all([all('/v1/webhooks', 'webhooks'), all('/v1/event-types', 'event_types')]);
  const add = h('button', { type: 'button', onclick: () => addEndpoint(catalog) }, 'Add endpoint');
  const list = h('div', { class: 'cards' });
  for (const w of webhooks) list.append(endpointCard(w, catalog));
  main.replaceChildren(
    pageHeader('Webhooks', add),
    h('p', { class: 'muted' }, 'Endpoints receive a signed HTTPS request for every event they subscribe to.'),
    webhooks.length ? list : h('p', { class: 'empty' }, 'No endpoints yet. Click Add endpoint to create one.'));
}

const STATUS_LABEL = { active: 'Active', paused: 'Paused', disabled: 'Disabled' };

function endpointCard(w, catalog) {
  const titleId = nextId('ep');
  const result = h('p', { class: 'test-result', role: 'status', 'aria-live': 'polite' });
  const active = w.status === 'active';
  const toggle = h('button', {
    type: 'button', role: 'switch', class: 'switch', 'aria-checked': active ? 'true' : 'false',
    'aria-label': `Receive events (${w.name})`,
    onclick: () => toggleEndpoint(w),
  }, h('span', { class: 'knob', 'aria-hidden': 'true' }), h('span', { class: 'switch-text' }, active ? 'On' : 'Off'));
  const status = h('span', { class: `status status-${w.status}` }, h('span', { class: 'dot', 'aria-hidden': 'true' }), STATUS_LABEL[w.status] || w.status);
  const last = w.last_delivery;
  // The tester sends an example of a chosen type, as Menon's does.
  const testable = ['webhook.test', ...catalog.map((t) => t.name).filter((n) => n !== 'webhook.test' && subscribes(w.events, n))];
  const testType = h('select', { class: 'test-type', 'aria-label': `Event type to test (${w.name})` },
    testable.map((n) => h('option', { value: n }, n)));
  const chart = h('div', { class: 'chart', role: 'img', 'aria-label': 'Last 24 hours: loading' });
  loadChart(w, chart);
  const card = h('article', { class: 'card', 'aria-labelledby': titleId, dataset: { endpointId: w.id } },
    h('div', { class: 'card-head' },
      h('h2', { id: titleId }, w.name),
      status),
    w.status === 'disabled' && w.disabled_reason ? h('p', { class: 'reason' }, `Reason: ${w.disabled_reason}`) : null,
    h('dl', { class: 'facts' },
      h('dt', {}, 'URL'), h('dd', { class: 'url' }, w.url),
      h('dt', {}, 'Events'), h('dd', {}, h('ul', { class: 'chips' }, w.events.map((e) => h('li', {}, e)))),
      h('dt', {}, 'Last delivery'), h('dd', { class: `last-delivery ${last ? (last.success ? 'ok' : 'bad') : ''}` },
        last ? `${resultText(last)} · ${fmtTime(last.at)}` : 'No deliveries yet'),
      w.plugins?.length ? [h('dt', {}, 'Plugins'), h('dd', {}, `${w.plugins.length} in chain`)] : null,
      w.rate_limit != null ? [h('dt', {}, 'Rate limit'), h('dd', { class: 'rate-limit' }, `${w.rate_limit} per second`)] : null,
      w.ordering === 'fifo' ? [h('dt', {}, 'Order'), h('dd', { class: 'ordering' }, 'one at a time, in publish order')] : null,
      Object.keys(w.headers || {}).length ? [h('dt', {}, 'Headers'), h('dd', { class: 'headers' }, Object.keys(w.headers).join(', '))] : null,
      w.auth ? [h('dt', {}, 'Authentication'), h('dd', { class: 'auth' }, w.auth.type === 'basic' ? `Basic (${w.auth.username})` : 'Bearer token')] : null,
      w.tls_client ? [h('dt', {}, 'Mutual TLS'), h('dd', { class: 'tls-client' }, 'client certificate set')] : null,
      h('dt', {}, 'Last 24 hours'), h('dd', {}, chart),
      h('dt', {}, 'In flight'), h('dd', { class: 'in-flight' }, w.in_flight_limit < w.max_in_flight
        ? `up to ${w.in_flight_limit} of ${w.max_in_flight}, fewer while the server fails or slows down`
        : `up to ${w.max_in_flight} at once`),
      w.previous_secret_expires_at ? [h('dt', {}, 'Old secret'), h('dd', {}, `valid until ${fmtTime(w.previous_secret_expires_at)}`)] : null),
    h('div', { class: 'switch-row' }, toggle, h('span', { class: 'muted' }, active ? 'Receiving events' : 'Not receiving events')),
    result,
    h('div', { class: 'card-actions' },
      testType,
      h('button', { type: 'button', onclick: (e) => sendTest(w, result, e.currentTarget, testType.value) }, 'Send test'),
      h('button', { type: 'button', class: 'secondary', onclick: () => editEndpoint(w, catalog) }, 'Edit'),
      h('a', { class: 'button secondary', href: `#/endpoints/${encodeURIComponent(w.id)}/logs` }, 'Logs'),
      h('button', { type: 'button', class: 'secondary', onclick: () => editChain(w) }, 'Plugins'),
      h('button', { type: 'button', class: 'secondary', onclick: () => rotateSecret(w) }, 'Rotate secret'),
      h('button', { type: 'button', class: 'secondary', onclick: () => recoverEndpoint(w) }, 'Recover'),
      h('button', { type: 'button', class: 'danger', onclick: () => deleteEndpoint(w) }, 'Delete')));
  return card;
}

async function addEndpoint(catalog) {
  let step = 1;
  let guard = () => true;
  const done = await modal('Step 1 of 2: New endpoint', (d, close, heading) => {
    const f = endpointFields(catalog);
    const err = errorLine();
    const create = h('button', { type: 'submit' }, 'Create endpoint');
    const form = h('form', { novalidate: true }, f.els, err,
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => close(false) }, 'Cancel'), create));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const bad = f.validate();
      if (bad) { setError(err, bad[0]); bad[1]?.focus(); return; }
      setError(err, null);
      create.disabled = true;
      try {
        const data = await api('POST', '/v1/webhooks', f.value());
        step = 2;
        heading.textContent = 'Step 2 of 2: Save your signing secret';
        form.remove();
        guard = secretGate(d, close, {
          label: 'Signing secret', value: data.webhook.secret,
          note: 'Your technical team needs it to verify that each event comes from this gateway. If you don\'t copy it now, you\'ll have to rotate it to generate a new one.',
        });
        d.querySelector('button').focus();
      } catch (e) {
        setError(err, e);
      } finally {
        create.disabled = false;
      }
    });
    d.append(form);
  }, { wide: true, guard: () => step === 1 || guard() });
  if (step === 2 || done) { notice('Endpoint created.'); route(); }
}

async function editEndpoint(w, catalog) {
  const saved = await modal(`Edit ${w.name}`, (d, close) => {
    const f = endpointFields(catalog, w);
    const err = errorLine();
    const save = h('button', { type: 'submit' }, 'Save changes');
    const form = h('form', { novalidate: true }, f.els,
      h('p', { class: 'hint' }, 'The signing secret is kept: you don\'t need to reconfigure your server unless you change the URL.'),
      err, h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => close(false) }, 'Cancel'), save));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const bad = f.validate();
      if (bad) { setError(err, bad[0]); bad[1]?.focus(); return; }
      save.disabled = true;
      try { await api('PATCH', `/v1/webhooks/${w.id}`, f.value()); close(true); } catch (e) { setError(err, e); } finally { save.disabled = false; }
    });
    d.append(form);
  }, { wide: true });
  if (saved) { notice('Endpoint saved.'); route(); }
}

async function toggleEndpoint(w) {
  const pausing = w.status === 'active';
  const ok = pausing
    ? await confirmDialog('Pause this endpoint?', 'You\'ll stop receiving events until you reactivate it. Events generated while the endpoint is paused are not re-sent when you reactivate it.', 'Pause')
    : await confirmDialog('Reactivate this endpoint?', 'Events will resume immediately. Events generated while it was paused are not re-sent.', 'Reactivate');
  if (!ok) return;
  try {
    await api('POST', `/v1/webhooks/${w.id}/${pausing ? 'pause' : 'resume'}`);
    notice(pausing ? 'Endpoint paused.' : 'Endpoint reactivated.');
    route();
  } catch (e) { showError(e, pausing ? 'Could not pause the endpoint' : 'Could not reactivate the endpoint'); }
}

/** Fills `el` with the endpoint's last 24 hours: a bar an hour, delivered over failed. */
async function loadChart(w, el) {
  let hours;
  try { ({ hours } = await api('GET', `/v1/webhooks/${w.id}/stats`)); } catch { el.setAttribute('aria-label', 'Last 24 hours: not available'); return; }
  const most = Math.max(1, ...hours.map((x) => x.delivered + x.failed));
  const delivered = hours.reduce((n, x) => n + x.delivered, 0);
  const failed = hours.reduce((n, x) => n + x.failed, 0);
  const p50s = hours.map((x) => x.latency_p50_ms).filter((x) => x != null).sort((a, b) => a - b);
  const p50 = p50s.length ? p50s[Math.floor((p50s.length - 1) / 2)] : null;
  const summary = `${delivered} delivered, ${failed} failed${p50 != null ? `, median ${p50} ms` : ''}`;
  el.setAttribute('aria-label', `Last 24 hours: ${summary}`);
  el.replaceChildren(...hours.map((x) => {
    const bar = h('span', { class: 'bar', title: `${new Date(x.start).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}: ${x.delivered} delivered, ${x.failed} failed${x.latency_p50_ms != null ? `, p50 ${x.latency_p50_ms} ms` : ''}` });
    const ok = h('span', { class: 'ok' });
    const bad = h('span', { class: 'bad' });
    ok.style.height = `${(100 * x.delivered) / most}%`;
    bad.style.height = `${(100 * x.failed) / most}%`;
    bar.append(ok, bad);
    return bar;
  }), h('span', { class: 'chart-summary' }, summary));
}

/** Whether an endpoint subscribed to `events` gets events of type `name`. */
function subscribes(events, name) {
  return events.some((e) => e === name || (e === '*' ? !name.startsWith('hookgate.') : e.endsWith('.*') && name.startsWith(e.slice(0, -1))));
}

async function sendTest(w, out, button, eventType = 'webhook.test') {
  button.disabled = true;
  out.className = 'test-result';
  out.textContent = `Sending a ${eventType} event…`;
  try {
    const { result } = await api('POST', `/v1/webhooks/${w.id}/test`, { event_type: eventType });
    out.className = `test-result ${result.success ? 'ok' : 'bad'}`;
    out.textContent = result.success
      ? `Test delivered: your server answered ${statusText(result.response_code)} in ${result.response_time_ms} ms.`
      : `Test failed: ${resultText(result)}${result.response_time_ms ? ` after ${result.response_time_ms} ms` : ''}.`;
  } catch (e) {
    out.className = 'test-result bad';
    out.textContent = `Could not send the test: ${describe(e)}`;
  } finally {
    button.disabled = false;
  }
}

async function recoverEndpoint(w) {
  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const since = field('Failed since', h('input', { type: 'datetime-local', required: true, value: local(new Date(Date.now() - 24 * 3600 * 1000)) }),
    'Every delivery that failed for good since then is sent again now. The endpoint is reactivated.');
  const recovered = await modal(`Recover ${w.name}`, (d, close) => {
    const err = errorLine();
    const run = h('button', { type: 'submit' }, 'Recover');
    const form = h('form', { novalidate: true }, since.wrap, err,
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => close(null) }, 'Cancel'), run));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const at = new Date(since.input.value);
      if (isNaN(at)) { setError(err, 'Choose a date and time.'); since.input.focus(); return; }
      run.disabled = true;
      try { close(await api('POST', `/v1/webhooks/${w.id}/recover`, { since: at.toISOString() })); } catch (e) { setError(err, e); } finally { run.disabled = false; }
    });
    d.append(form);
  });
  if (recovered) { notice(`${recovered.recovered} failed deliveries queued again.`); route(); }
}

async function rotateSecret(w) {
  const ok = await confirmDialog('Rotate the signing secret?', 'A new secret is generated now. The current one keeps working for a while (24 hours by default) so your team can switch without interrupting deliveries.', 'Rotate secret');
  if (!ok) return;
  let data;
  try { data = await api('POST', `/v1/webhooks/${w.id}/rotate-secret`); } catch (e) { showError(e, 'Could not rotate the secret'); return; }
  const until = data.webhook.previous_secret_expires_at;
  await showSecret('Save your new signing secret', {
    label: 'New signing secret', value: data.webhook.secret,
    note: until ? `The old secret expires at ${fmtTime(until)}. Until then both secrets are valid, so you can migrate without interrupting event delivery.` : 'The old secret no longer signs.',
  });
  route();
}

async function deleteEndpoint(w) {
  const ok = await confirmDialog(`Delete ${w.name}?`, 'This action cannot be undone. Your system will immediately stop receiving events at this endpoint.', 'Delete endpoint', { danger: true });
  if (!ok) return;
  try { await api('DELETE', `/v1/webhooks/${w.id}`); notice('Endpoint deleted.'); route(); } catch (e) { showError(e, 'Could not delete the endpoint'); }
}

// ---------- plugin chain of an endpoint ----------

async function editChain(w) {
  let plugins;
  try { plugins = await all('/v1/plugins', 'plugins'); } catch (e) { showError(e, 'Could not list plugins'); return; }
  const saved = await modal(`Plugin chain of ${w.name}`, (d, close) => {
    const steps = (w.plugins || []).map((p) => ({ plugin_id: p.plugin_id, config: JSON.stringify(p.config ?? {}, null, 2) }));
    const list = h('ol', { class: 'chain' });
    const err = errorLine();
    const draw = () => {
      list.replaceChildren(...steps.map((s, i) => {
        const sel = h('select', { required: true },
          plugins.map((p) => h('option', { value: p.id, selected: p.id === s.plugin_id }, `${p.name} v${p.version} (${p.id})`)));
        if (!plugins.some((p) => p.id === s.plugin_id)) sel.prepend(h('option', { value: s.plugin_id, selected: true }, s.plugin_id));
        sel.addEventListener('change', () => { s.plugin_id = sel.value; });
        const cfg = h('textarea', { rows: '4', spellcheck: 'false', class: 'code' });
        cfg.value = s.config;
        cfg.addEventListener('input', () => { s.config = cfg.value; });
        return h('li', { class: 'step' },
          field(`Plugin ${i + 1}`, sel).wrap,
          field(`Configuration of plugin ${i + 1} (JSON)`, cfg).wrap,
          h('div', { class: 'actions' },
            h('button', { type: 'button', class: 'secondary small', disabled: i === 0, onclick: () => { [steps[i - 1], steps[i]] = [steps[i], steps[i - 1]]; draw(); } }, `Move plugin ${i + 1} up`),
            h('button', { type: 'button', class: 'secondary small', disabled: i === steps.length - 1, onclick: () => { [steps[i + 1], steps[i]] = [steps[i], steps[i + 1]]; draw(); } }, `Move plugin ${i + 1} down`),
            h('button', { type: 'button', class: 'danger small', onclick: () => { steps.splice(i, 1); draw(); } }, `Remove plugin ${i + 1}`)));
      }));
      if (!steps.length) list.append(h('li', { class: 'muted' }, 'No plugins: events are delivered as published.'));
    };
    draw();
    const addBtn = h('button', {
      type: 'button', class: 'secondary', disabled: !plugins.length,
      onclick: () => { steps.push({ plugin_id: plugins[0].id, config: '{}' }); draw(); list.querySelector('li:last-child select')?.focus(); },
    }, 'Add plugin to chain');
    const save = h('button', { type: 'button', onclick: async () => {
      const chain = [];
      for (const [i, s] of steps.entries()) {
        try { chain.push({ plugin_id: s.plugin_id, config: JSON.parse(s.config || '{}') }); } catch (e) { setError(err, `The configuration of plugin ${i + 1} is not valid JSON: ${e.message}`); return; }
      }
      save.disabled = true;
      try { await api('PATCH', `/v1/webhooks/${w.id}`, { plugins: chain }); close(true); } catch (e) { setError(err, e); } finally { save.disabled = false; }
    } }, 'Save chain');
    d.append(h('p', { class: 'hint' }, 'Plugins run in this order on every delivery, before signing. Each gets its own JSON configuration.'),
      plugins.length ? null : h('p', { class: 'muted' }, 'No plugins uploaded yet: upload one on the Plugins page.'),
      list, addBtn, err,
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => close(false) }, 'Cancel'), save));
  }, { wide: true });
  if (saved) { notice('Plugin chain saved.'); route(); }
}

// ---------- delivery logs ----------

const LOG_STATUSES = ['pending', 'delivered', 'failed', 'filtered', 'plugin_failed', 'skipped'];
const logState = { cursors: [null], page: 0, status: '', eventType: '' };

async function renderLogs(id) {
  const main = document.getElementById('main');
  const [{ webhook }, catalog] = await Promise.all([api('GET', `/v1/webhooks/${encodeURIComponent(id)}`), all('/v1/event-types', 'event_types')]);
  if (logState.id !== id) Object.assign(logState, { id, cursors: [null], page: 0, status: '', eventType: '' });
  const statusSel = h('select', {}, h('option', { value: '' }, 'All statuses'), LOG_STATUSES.map((s) => h('option', { value: s, selected: s === logState.status }, s)));
  const typeSel = h('select', {}, h('option', { value: '' }, 'All event types'), catalog.map((t) => h('option', { value: t.name, selected: t.name === logState.eventType }, t.name)));
  const filters = h('form', { class: 'filters', 'aria-label': 'Filter the log' },
    field('Status', statusSel).wrap, field('Event type', typeSel).wrap,
    h('button', { type: 'submit', class: 'secondary' }, 'Apply filters'));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    Object.assign(logState, { status: statusSel.value, eventType: typeSel.value, cursors: [null], page: 0 });
    route();
  });
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (logState.status) q.set('status', logState.status);
  if (logState.eventType) q.set('event_type', logState.eventType);
  const cursor = logState.cursors[logState.page];
  if (cursor) q.set('cursor', cursor);
  const data = await api('GET', `/v1/webhooks/${encodeURIComponent(id)}/deliveries?${q}`);
  const rows = data.deliveries.map((l) => h('tr', { dataset: { logId: l.id } },
    h('td', { 'data-label': 'Status' }, h('span', { class: `log-status log-${l.status}` }, l.status), l.test ? h('span', { class: 'muted' }, ' (test)') : null),
    h('td', { 'data-label': 'Response' }, l.response_code ? statusText(l.response_code) : (l.error || '—')),
    h('td', { 'data-label': 'Time' }, fmtTime(l.delivered_at || l.updated_at), l.response_time_ms != null ? h('span', { class: 'muted' }, ` (${l.response_time_ms} ms)`) : null),
    h('td', { 'data-label': 'Event' }, l.event_type, h('br'), h('span', { class: 'muted mono' }, l.event_id)),
    h('td', { 'data-label': 'Retries' }, String(l.retry_count)),
    h('td', { 'data-label': 'Next retry' }, fmtTime(l.next_retry)),
    h('td', { 'data-label': 'Actions', class: 'row-actions' },
      h('button', { type: 'button', class: 'secondary small', 'aria-label': `View ${l.event_type} delivery ${l.id}`, onclick: () => viewLog(webhook, l.id) }, 'View'),
      ['failed', 'plugin_failed', 'pending'].includes(l.status)
        ? h('button', { type: 'button', class: 'small', 'aria-label': `Retry ${l.event_type} delivery ${l.id}`, onclick: (e) => retryLog(webhook, l, e.currentTarget) }, 'Retry')
        : null)));
  const table = h('div', { class: 'table-wrap' }, h('table', { class: 'logs' },
    h('caption', { class: 'visually-hidden' }, `Delivery log of ${webhook.name}`),
    h('thead', {}, h('tr', {}, ['Status', 'Response', 'Time', 'Event', 'Retries', 'Next retry', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows)));
  const pager = h('nav', { class: 'pager', 'aria-label': 'Log pages' },
    h('button', { type: 'button', class: 'secondary', disabled: logState.page === 0, onclick: () => { logState.page--; route(); } }, 'Previous page'),
    h('span', {}, `Page ${logState.page + 1}`),
    h('button', { type: 'button', class: 'secondary', disabled: !data.next_cursor, onclick: () => { logState.cursors[logState.page + 1] = data.next_cursor; logState.page++; route(); } }, 'Next page'));
  main.replaceChildren(
    pageHeader(`Delivery logs: ${webhook.name}`,
      h('button', { type: 'button', class: 'secondary', onclick: () => route() }, 'Refresh'),
      h('a', { class: 'button secondary', href: '#/endpoints' }, 'Back to webhooks')),
    h('p', { class: 'muted url' }, webhook.url),
    filters,
    data.deliveries.length ? table : h('p', { class: 'empty' }, 'No deliveries match.'),
    pager);
}

async function retryLog(webhook, l, button) {
  button.disabled = true;
  try {
    const { delivery } = await api('POST', `/v1/webhooks/${webhook.id}/deliveries/${l.id}/retry`);
    const a = delivery.attempts[delivery.attempts.length - 1];
    notice(`Retry of ${l.id}: ${delivery.status}${a ? ` (${resultText(a)})` : ''}.`);
    route();
  } catch (e) {
    showError(e, 'Could not retry the delivery');
    button.disabled = false;
  }
}

async function viewLog(webhook, logId) {
  let data;
  try { data = await api('GET', `/v1/webhooks/${webhook.id}/deliveries/${logId}`); } catch (e) { showError(e, 'Could not load the delivery'); return; }
  const l = data.delivery;
  await modal(`Delivery ${l.id}`, (d, close) => {
    d.append(
      h('dl', { class: 'facts' },
        h('dt', {}, 'Status'), h('dd', {}, l.status), h('dt', {}, 'Event'), h('dd', {}, `${l.event_type} (${l.event_id})`),
        h('dt', {}, 'Retries'), h('dd', {}, String(l.retry_count)), h('dt', {}, 'Next retry'), h('dd', {}, fmtTime(l.next_retry)),
        l.error ? [h('dt', {}, 'Error'), h('dd', {}, l.error)] : null),
      h('div', { class: 'side-by-side' },
        h('section', { 'aria-label': 'Payload' }, h('h3', {}, 'Payload'), h('pre', { class: 'code', tabindex: '0' }, data.payload ? pretty(data.payload) : 'The event is no longer stored.')),
        h('section', { 'aria-label': 'Attempts' }, h('h3', {}, `Attempts (${l.attempts.length})`),
          l.attempts.length ? h('ol', { class: 'attempts' }, l.attempts.map((a) => h('li', {},
            h('p', {}, h('strong', {}, resultText(a)), ` · ${fmtTime(a.at)} · ${a.response_time_ms} ms${a.manual ? ' · manual retry' : ''}`),
            a.error && a.response_code ? h('p', { class: 'muted' }, a.error) : null,
            h('pre', { class: 'code', tabindex: '0', 'aria-label': 'Response body' }, a.response_body ? pretty(a.response_body) : '(no response body)')))) : h('p', { class: 'muted' }, 'Not attempted yet.'))),
      h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => close() }, 'Close')));
  }, { wide: true });
}

// ---------- plugins ----------

async function renderPlugins() {
  const main = document.getElementById('main');
  const [plugins, catalog] = await Promise.all([all('/v1/plugins', 'plugins'), all('/v1/event-types', 'event_types').catch(() => [])]);
  const name = field('Plugin name', h('input', { type: 'text', required: true, pattern: '[a-z0-9_\\-]+', autocomplete: 'off' }), 'Lowercase letters, digits, - and _. Uploading again under the same name makes a new version.');
  const file = field('WebAssembly component (.wasm)', h('input', { type: 'file', accept: '.wasm,application/wasm', required: true }));
  file.input.addEventListener('change', () => {
    const f = file.input.files[0];
    if (f && !name.input.value) name.input.value = f.name.replace(/\.wasm$/, '').toLowerCase().replace(/[^a-z0-9_-]/g, '-');
  });
  const err = errorLine();
  const upload = h('button', { type: 'submit' }, 'Upload plugin');
  const form = h('form', { class: 'panel', 'aria-labelledby': 'upload-title' }, h('h2', { id: 'upload-title' }, 'Upload a plugin'), name.wrap, file.wrap, err, h('div', { class: 'actions' }, upload));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setError(err, null);
    const f = file.input.files[0];
    if (!name.input.value.trim()) { setError(err, 'Enter a plugin name.'); name.input.focus(); return; }
    if (!f) { setError(err, 'Choose a .wasm file.'); file.input.focus(); return; }
    upload.disabled = true;
    try {
      const bytes = await f.arrayBuffer();
      const data = await api('POST', `/v1/plugins?name=${encodeURIComponent(name.input.value.trim())}`, undefined, { raw: bytes, contentType: 'application/wasm' });
      notice(`Uploaded ${data.plugin.name} v${data.plugin.version}.`);
      route();
    } catch (e) {
      setError(err, `The plugin was refused: ${describe(e)}`);
    } finally {
      upload.disabled = false;
    }
  });
  // A JavaScript plugin: its source in a textarea, uploaded as text/javascript.
  const jsName = field('Script name', h('input', { type: 'text', required: true, pattern: '[a-z0-9_\\-]+', autocomplete: 'off' }), 'Lowercase letters, digits, - and _.');
  const jsSource = field('JavaScript source', h('textarea', { rows: '10', spellcheck: 'false', class: 'code' }), 'An ES module exporting transform(event, config); return { body }, { body, headers, content_type } or { drop: reason }.');
  jsSource.input.value = 'export function transform(event, config) {\n  return { body: { id: event.id, data: event.data } };\n}\n';
  const jsErr = errorLine();
  const jsUpload = h('button', { type: 'submit' }, 'Upload script');
  const jsForm = h('form', { class: 'panel', 'aria-labelledby': 'js-title' }, h('h2', { id: 'js-title' }, 'Write a JavaScript plugin'), jsName.wrap, jsSource.wrap, jsErr, h('div', { class: 'actions' }, jsUpload));
  jsForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setError(jsErr, null);
    if (!jsName.input.value.trim()) { setError(jsErr, 'Enter a script name.'); jsName.input.focus(); return; }
    jsUpload.disabled = true;
    try {
      const data = await api('POST', `/v1/plugins?name=${encodeURIComponent(jsName.input.value.trim())}`, undefined, { raw: jsSource.input.value, contentType: 'text/javascript' });
      notice(`Uploaded ${data.plugin.name} v${data.plugin.version}.`);
      route();
    } catch (e) {
      setError(jsErr, `The script was refused: ${describe(e)}`);
    } finally {
      jsUpload.disabled = false;
    }
  });
  const state = (p) => p.state === 'failed' ? h('abbr', { title: p.error || '' }, 'failed') : (p.state || '—');
  const rows = plugins.map((p) => h('tr', { dataset: { pluginId: p.id } },
    h('td', { 'data-label': 'Name' }, p.name), h('td', { 'data-label': 'Version' }, `v${p.version}`),
    h('td', { 'data-label': 'Language' }, p.language === 'javascript' ? 'JavaScript' : 'WebAssembly'),
    h('td', { 'data-label': 'State' }, state(p)),
    h('td', { 'data-label': 'p50' }, p.p50_us != null ? `${(p.p50_us / 1000).toFixed(2)} ms` : '—'),
    h('td', { 'data-label': 'Size' }, `${(p.size / 1024).toFixed(1)} KiB`),
    h('td', { 'data-label': 'SHA-256', class: 'mono' }, h('abbr', { title: p.sha256 }, p.sha256.slice(0, 12))),
    h('td', { 'data-label': 'Uploaded' }, fmtTime(p.created_at)),
    h('td', { 'data-label': 'Actions', class: 'row-actions' },
      h('button', { type: 'button', class: 'secondary small', 'aria-label': `Dry run ${p.name} v${p.version}`, onclick: () => dryRun(p, catalog) }, 'Dry run'),
      h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${p.name} v${p.version}`, onclick: () => deletePlugin(p) }, 'Delete'))));
  main.replaceChildren(
    pageHeader('Plugins'),
    h('p', { class: 'muted' }, 'WebAssembly components or JavaScript modules that reshape or filter an endpoint\'s payload before it is signed. A component compiles after its upload (state: compiling, then ready or failed); a script is ready at once. Attach them to an endpoint with its Plugins button.'),
    form,
    jsForm,
    h('h2', {}, 'Uploaded plugins'),
    plugins.length ? h('div', { class: 'table-wrap' }, h('table', {}, h('caption', { class: 'visually-hidden' }, 'Uploaded plugins'),
      h('thead', {}, h('tr', {}, ['Name', 'Version', 'Language', 'State', 'p50', 'Size', 'SHA-256', 'Uploaded', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows))) : h('p', { class: 'empty' }, 'No plugins yet.'));
}

async function deletePlugin(p) {
  if (!await confirmDialog(`Delete ${p.name} v${p.version}?`, 'Endpoints using it must drop it from their chain first.', 'Delete plugin', { danger: true })) return;
  try { await api('DELETE', `/v1/plugins/${p.id}`); notice('Plugin deleted.'); route(); } catch (e) { showError(e, 'Could not delete the plugin'); }
}

async function dryRun(p, catalog) {
  await modal(`Dry run: ${p.name} v${p.version}`, (d, close) => {
    const types = catalog.map((t) => t.name);
    const typeIn = h('input', { type: 'text', list: nextId('types'), value: types.find((t) => t !== 'webhook.test') || 'webhook.test', autocomplete: 'off' });
    const dl = h('datalist', { id: typeIn.getAttribute('list') }, types.map((t) => h('option', { value: t })));
    const dataIn = h('textarea', { rows: '8', spellcheck: 'false', class: 'code' });
    const fillExample = () => { const t = catalog.find((c) => c.name === typeIn.value); if (t) dataIn.value = JSON.stringify(t.example ?? {}, null, 2); };
    fillExample();
    if (!dataIn.value) dataIn.value = '{}';
    typeIn.addEventListener('input', fillExample);
    const cfgIn = h('textarea', { rows: '3', spellcheck: 'false', class: 'code' }); cfgIn.value = '{}';
    const err = errorLine();
    const inputPre = h('pre', { class: 'code', tabindex: '0' }, '—');
    const outputPre = h('pre', { class: 'code', tabindex: '0' }, '—');
    const outcome = h('p', { class: 'outcome', role: 'status' });
    const run = h('button', { type: 'submit' }, 'Run');
    const form = h('form', { novalidate: true },
      field('Event type', typeIn).wrap, dl, field('Event data (JSON)', dataIn).wrap, field('Plugin configuration (JSON)', cfgIn).wrap, err,
      h('div', { class: 'actions' }, run));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      setError(err, null);
      let data, config;
      try { data = JSON.parse(dataIn.value); } catch (e) { setError(err, `The event data is not valid JSON: ${e.message}`); return; }
      try { config = JSON.parse(cfgIn.value || '{}'); } catch (e) { setError(err, `The configuration is not valid JSON: ${e.message}`); return; }
      run.disabled = true;
      try {
        const out = await api('POST', `/v1/plugins/${p.id}/test`, { event: { type: typeIn.value.trim(), data }, config });
        inputPre.textContent = pretty(out.input);
        if (out.outcome === 'deliver') {
          outcome.textContent = `Outcome: deliver (${out.duration_us} µs)`;
          outputPre.textContent = pretty(out.body) + (out.headers?.length ? `\n\nExtra headers:\n${out.headers.map(([k, v]) => `${k}: ${v}`).join('\n')}` : '');
        } else if (out.outcome === 'drop') {
          outcome.textContent = `Outcome: drop — ${out.reason}`;
          outputPre.textContent = `(dropped: ${out.reason})`;
        } else {
          outcome.textContent = `Outcome: error — ${out.error}`;
          outputPre.textContent = `(error: ${out.error})`;
        }
        if (out.logs?.length) outputPre.textContent += `\n\nPlugin log:\n${out.logs.map((l) => `${l.level ?? ''} ${l.message ?? JSON.stringify(l)}`).join('\n')}`;
      } catch (e) { setError(err, e); } finally { run.disabled = false; }
    });
    d.append(form, outcome,
      h('div', { class: 'side-by-side' },
        h('section', { 'aria-label': 'Input' }, h('h3', {}, 'Input'), inputPre),
        h('section', { 'aria-label': 'Output' }, h('h3', {}, 'Output'), outputPre)),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => close() }, 'Close')));
  }, { wide: true });
}

// ---------- event catalog ----------

async function renderSettings() {
  const main = document.getElementById('main');
  const { tenant } = await api('GET', '/v1/tenant');
  const names = tenant.headers;
  const fields = [
    ['event', 'Event header', 'Carries the event type.'],
    ['delivery', 'Delivery header', 'Carries the delivery id, the same on every retry.'],
    ['signature', 'Signature header', 'Carries sha256=<hex HMAC-SHA256 of the body>.'],
  ].map(([key, label, hint]) => [key, field(label, h('input', { type: 'text', value: names[key], autocomplete: 'off', spellcheck: 'false' }), hint)]);
  const err = errorLine();
  const save = h('button', { type: 'submit' }, 'Save header names');
  const form = h('form', { novalidate: true }, fields.map(([, f]) => f.wrap), err, h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const headers = Object.fromEntries(fields.map(([key, f]) => [key, f.input.value.trim()]));
    save.disabled = true;
    try { await api('PATCH', '/v1/tenant', { headers }); notice('Header names saved.'); route(); } catch (e) { setError(err, e); } finally { save.disabled = false; }
  });
  main.replaceChildren(
    pageHeader('Settings'),
    h('p', { class: 'muted' }, `The names of the headers every delivery of ${tenant.name} carries, e.g. X-Mogu-Event, X-Mogu-Delivery and X-Mogu-Signature-256.`),
    form);
}

async function renderCatalog() {
  const main = document.getElementById('main');
  const types = await all('/v1/event-types', 'event_types');
  const add = h('button', { type: 'button', onclick: () => editEventType(null) }, 'Add event type');
  const rows = types.map((t) => h('tr', { dataset: { eventType: t.name } },
    h('td', { 'data-label': 'Name', class: 'mono' }, t.name, t.builtin ? h('span', { class: 'muted' }, ' (built in)') : null),
    h('td', { 'data-label': 'Description' }, t.description || '—'),
    h('td', { 'data-label': 'Example payload' }, t.example !== undefined ? h('pre', { class: 'code small', tabindex: '0' }, JSON.stringify(t.example, null, 2)) : '—'),
    h('td', { 'data-label': 'Actions', class: 'row-actions' }, t.builtin ? null : [
      h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit ${t.name}`, onclick: () => editEventType(t) }, 'Edit'),
      h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${t.name}`, onclick: () => deleteEventType(t) }, 'Delete')])));
  main.replaceChildren(
    pageHeader('Event catalog', add),
    h('p', { class: 'muted' }, 'The event types your platform publishes. Endpoints subscribe to them; the example payload is what Send test delivers for that type.'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'catalog' }, h('caption', { class: 'visually-hidden' }, 'Event types'),
      h('thead', {}, h('tr', {}, ['Name', 'Description', 'Example payload', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows))));
}

async function editEventType(t) {
  const saved = await modal(t ? `Edit ${t.name}` : 'Add event type', (d, close) => {
    const name = field('Name', h('input', { type: 'text', required: true, value: t?.name || '', disabled: !!t, placeholder: 'booking.created', autocomplete: 'off' }), t ? 'The name cannot change.' : 'Lowercase, dot-separated, e.g. booking.created.');
    const desc = field('Description', h('input', { type: 'text', value: t?.description || '', maxlength: '1000', autocomplete: 'off' }));
    const ex = field('Example payload (JSON, optional)', h('textarea', { rows: '8', spellcheck: 'false', class: 'code' }));
    ex.input.value = t?.example !== undefined && t ? JSON.stringify(t.example, null, 2) : '';
    const err = errorLine();
    const save = h('button', { type: 'submit' }, t ? 'Save changes' : 'Add event type');
    const form = h('form', { novalidate: true }, name.wrap, desc.wrap, ex.wrap, err,
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => close(false) }, 'Cancel'), save));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      let example = null;
      if (ex.input.value.trim()) {
        try { example = JSON.parse(ex.input.value); } catch (e) { setError(err, `The example payload is not valid JSON: ${e.message}`); ex.input.focus(); return; }
      }
      if (!t && !name.input.value.trim()) { setError(err, 'Enter a name.'); name.input.focus(); return; }
      save.disabled = true;
      try {
        if (t) await api('PATCH', `/v1/event-types/${encodeURIComponent(t.name)}`, { description: desc.input.value, example });
        else await api('POST', '/v1/event-types', { name: name.input.value.trim(), description: desc.input.value, ...(example !== null ? { example } : {}) });
        close(true);
      } catch (e) { setError(err, e); } finally { save.disabled = false; }
    });
    d.append(form);
  }, { wide: true });
  if (saved) { notice(t ? 'Event type saved.' : 'Event type added.'); route(); }
}

async function deleteEventType(t) {
  if (!await confirmDialog(`Delete ${t.name}?`, 'Endpoints subscribed to it by name must drop it first.', 'Delete event type', { danger: true })) return;
  try { await api('DELETE', `/v1/event-types/${encodeURIComponent(t.name)}`); notice('Event type deleted.'); route(); } catch (e) { showError(e, 'Could not delete the event type'); }
}

// ---------- operator view ----------

const SCOPES = [['endpoints', 'Endpoints: webhooks, logs, event catalog'], ['publish', 'Publish: send events'], ['plugins', 'Plugins: upload and test']];

async function renderOperator(selected) {
  const main = document.getElementById('main');
  const tenants = await all('/v1/tenants', 'tenants');
  const tname = field('Tenant name', h('input', { type: 'text', required: true, autocomplete: 'off' }));
  const err = errorLine();
  const form = h('form', { class: 'panel inline-form', 'aria-labelledby': 'new-tenant' }, h('h2', { id: 'new-tenant' }, 'Create a tenant'), tname.wrap, err,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create tenant')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!tname.input.value.trim()) { setError(err, 'Enter a name.'); tname.input.focus(); return; }
    try {
      const { tenant } = await api('POST', '/v1/tenants', { name: tname.input.value.trim() });
      notice(`Tenant ${tenant.name} created.`);
      go(`#/operator/${tenant.id}`);
    } catch (e) { setError(err, e); }
  });
  const rows = tenants.map((t) => h('tr', { dataset: { tenantId: t.id }, class: t.id === selected ? 'selected' : '' },
    h('td', { 'data-label': 'Name' }, t.name), h('td', { 'data-label': 'Id', class: 'mono' }, t.id), h('td', { 'data-label': 'Created' }, fmtTime(t.created_at)),
    h('td', { 'data-label': 'Actions', class: 'row-actions' },
      h('a', { class: 'button secondary small', href: `#/operator/${t.id}`, 'aria-label': `API keys of ${t.name}` }, 'API keys'),
      h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete tenant ${t.name}`, onclick: () => deleteTenant(t) }, 'Delete'))));
  const stats = await api('GET', '/v1/stats');
  const overview = h('section', { class: 'panel overview', 'aria-labelledby': 'overview' }, h('h2', { id: 'overview' }, 'Deliveries now'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Queue depth'), h('dd', { class: 'queue-depth' }, String(stats.queue_depth)),
      h('dt', {}, 'Deliveries per second'), h('dd', { class: 'rate' }, stats.delivered_per_second.toFixed(1)),
      h('dt', {}, 'Failure rate'), h('dd', { class: 'failure-rate' }, `${(100 * stats.failure_rate).toFixed(1)}% of ${stats.attempts_last_minute} attempts in the last minute`)));
  const parts = [pageHeader('Tenants'), overview, form,
    tenants.length ? h('div', { class: 'table-wrap' }, h('table', {}, h('caption', { class: 'visually-hidden' }, 'Tenants'),
      h('thead', {}, h('tr', {}, ['Name', 'Id', 'Created', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows)))
      : h('p', { class: 'empty' }, 'No tenants yet.')];
  const tenant = tenants.find((t) => t.id === selected);
  if (tenant) parts.push(await keysSection(tenant));
  main.replaceChildren(...parts);
}

async function keysSection(tenant) {
  const keys = await all(`/v1/tenants/${tenant.id}/keys`, 'keys');
  const kname = field('Key name', h('input', { type: 'text', autocomplete: 'off', placeholder: 'backend' }));
  const boxes = SCOPES.map(([s, label]) => { const b = h('input', { type: 'checkbox', value: s, id: nextId('scope'), checked: s === 'endpoints' }); return [b, h('div', { class: 'check' }, b, h('label', { for: b.id }, label))]; });
  const err = errorLine();
  const form = h('form', { class: 'panel', 'aria-labelledby': 'new-key' }, h('h3', { id: 'new-key' }, `Create an API key for ${tenant.name}`), kname.wrap,
    h('fieldset', {}, h('legend', {}, 'Scopes'), boxes.map(([, w]) => w)), err,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create key')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const scopes = boxes.filter(([b]) => b.checked).map(([b]) => b.value);
    if (!scopes.length) { setError(err, 'Choose at least one scope.'); boxes[0][0].focus(); return; }
    try {
      const { key } = await api('POST', `/v1/tenants/${tenant.id}/keys`, { name: kname.input.value.trim() || undefined, scopes });
      await showSecret('Save the new API key', { label: 'API key', value: key.token, what: 'key', note: `Scopes: ${key.scopes.join(', ')}. Give it to ${tenant.name}; it signs in to this dashboard and the API.` });
      route();
    } catch (e) { setError(err, e); }
  });
  const rows = keys.map((k) => h('tr', { dataset: { keyId: k.id } },
    h('td', { 'data-label': 'Name' }, k.name || '—'), h('td', { 'data-label': 'Starts with', class: 'mono' }, `${k.token_prefix}…`),
    h('td', { 'data-label': 'Scopes' }, k.scopes.join(', ')), h('td', { 'data-label': 'Created' }, fmtTime(k.created_at)),
    h('td', { 'data-label': 'Actions', class: 'row-actions' }, h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke key ${k.name || k.id}`, onclick: () => revokeKey(tenant, k) }, 'Revoke'))));
  return h('section', { 'aria-labelledby': 'keys-title', class: 'keys' }, h('h2', { id: 'keys-title' }, `API keys of ${tenant.name}`),
    keys.length ? h('div', { class: 'table-wrap' }, h('table', {}, h('caption', { class: 'visually-hidden' }, `API keys of ${tenant.name}`),
      h('thead', {}, h('tr', {}, ['Name', 'Starts with', 'Scopes', 'Created', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows)))
      : h('p', { class: 'empty' }, 'No keys yet.'),
    form);
}

async function deleteTenant(t) {
  if (!await confirmDialog(`Delete tenant ${t.name}?`, 'Its keys stop working at once, and its endpoints, plugins and logs are deleted. This cannot be undone.', 'Delete tenant', { danger: true })) return;
  try { await api('DELETE', `/v1/tenants/${t.id}`); notice('Tenant deleted.'); go('#/operator'); } catch (e) { showError(e, 'Could not delete the tenant'); }
}

async function revokeKey(t, k) {
  if (!await confirmDialog(`Revoke key ${k.name || k.id}?`, 'Requests with this key are refused from now on.', 'Revoke key', { danger: true })) return;
  try { await api('DELETE', `/v1/tenants/${t.id}/keys/${k.id}`); notice('Key revoked.'); route(); } catch (e) { showError(e, 'Could not revoke the key'); }
}

// ---------- start ----------

document.getElementById('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(SESSION_KEY);
  go('');
});
window.addEventListener('hashchange', () => {
  // A notice belongs to the screen it was shown on (or the one it led to).
  if (Date.now() - (notice.at || 0) > 1000) document.getElementById('notice').textContent = '';
  route();
});
window.addEventListener('unhandledrejection', (e) => showError(e.reason));
route();
