// Kataar operators' console. Framework-free; talks only to this server's v1 operator API.
// The operator key lives in sessionStorage and travels only in the Authorization header.
// Every write sends an Idempotency-Key that is reused while the same action is retried.
'use strict';

const POLL_MS = 1000;          // capacity view: ETag poll period (a booking shows within ~1 s)
const LIST_POLL_MS = 5000;     // the day's list
const STATUS_POLL_MS = 3000;   // breaker / lane refusals banner
const RETRIES = 3;             // a write retried after a network error or an unknown outcome

const T = {
  en: {
    title: "Operators' console", logout: 'Log out', login_title: 'Log in with your operator key',
    key: 'Operator key', login: 'Log in', bad_key: 'This key was refused.',
    capacity: 'Live capacity', district: 'District', centre: 'Centre', date: 'Date', days: 'Days',
    all_centres: 'All centres', updated: 'Updated', back: '← Capacity', day: "The centre's day",
    search: 'Search: booking id or last digits of a mobile', batch: 'Vaccine batch',
    no_bookings: 'No bookings.', walkin: 'Register a walk-in', slot: 'Slot', dose: 'Dose',
    name: 'Name', birth_year: 'Year of birth', gender: 'Gender', female: 'Female', male: 'Male',
    other: 'Other', id_type: 'Photo ID', id_number: 'ID number', mobile_opt: 'Mobile (optional)',
    register: 'Register and check in', pools: 'Capacity and moving places',
    move: 'Move places between pools', from: 'From', to: 'To', count: 'Places', move_btn: 'Move',
    set: 'Set', capacity_n: 'Capacity', booked: 'Booked', checked_in: 'Checked in',
    administered: 'Administered', no_show: 'No-show', available: 'Available',
    open_day: "Day's list", check_in: 'Check in', administer: 'Administer', mark_no_show: 'No-show',
    online: 'online', walkin_ch: 'walk-in', full: 'Full', no_sessions: 'No sessions on these days.',
    cancelled: 'cancelled', s_booked: 'booked', s_checked_in: 'checked in',
    s_administered: 'administered', s_cancelled: 'cancelled', s_no_show: 'no-show',
    queue: 'Launch queue', waiting: 'Waiting', admitted: 'Admitted', admit_per_s: 'Admitted per second',
    sold_out: 'Sold out', status: 'Status', walkin_done: 'Walk-in registered and checked in: token',
    moved: 'Places moved.', cap_set: 'Capacity changed.', need_batch: 'Enter the vaccine batch first.',
    offline: 'Connection to the server lost; retrying…', breaker_open: 'Store breaker OPEN: new bookings are refused (503 store_unavailable) until the store recovers.',
    breaker_half_open: 'Store breaker half-open: testing the store with one booking.',
    refusing: 'Lane refusing', per_s: '/s', not_found: 'Not found (or outside your centres).',
    token: 'Token', pool: 'Pool', slot_n: 'slot',
  },
  hi: {
    title: 'संचालक कंसोल', logout: 'लॉग आउट', login_title: 'अपनी संचालक कुंजी से लॉग इन करें',
    key: 'संचालक कुंजी', login: 'लॉग इन', bad_key: 'यह कुंजी अस्वीकार कर दी गई।',
    capacity: 'लाइव क्षमता', district: 'ज़िला', centre: 'केंद्र', date: 'तारीख़', days: 'दिन',
    all_centres: 'सभी केंद्र', updated: 'अद्यतन', back: '← क्षमता', day: 'केंद्र का दिन',
    search: 'खोजें: बुकिंग आईडी या मोबाइल के अंतिम अंक', batch: 'टीके का बैच',
    no_bookings: 'कोई बुकिंग नहीं।', walkin: 'वॉक-इन पंजीकरण', slot: 'स्लॉट', dose: 'खुराक',
    name: 'नाम', birth_year: 'जन्म वर्ष', gender: 'लिंग', female: 'महिला', male: 'पुरुष',
    other: 'अन्य', id_type: 'फ़ोटो पहचान पत्र', id_number: 'पहचान संख्या', mobile_opt: 'मोबाइल (वैकल्पिक)',
    register: 'पंजीकरण और चेक-इन', pools: 'क्षमता और स्थान स्थानांतरण',
    move: 'पूलों के बीच स्थान स्थानांतरित करें', from: 'से', to: 'को', count: 'स्थान', move_btn: 'स्थानांतरित करें',
    set: 'बदलें', capacity_n: 'क्षमता', booked: 'बुक', checked_in: 'चेक-इन',
    administered: 'टीका लगा', no_show: 'अनुपस्थित', available: 'उपलब्ध',
    open_day: 'दिन की सूची', check_in: 'चेक-इन करें', administer: 'टीका दर्ज करें', mark_no_show: 'अनुपस्थित',
    online: 'ऑनलाइन', walkin_ch: 'वॉक-इन', full: 'भरा हुआ', no_sessions: 'इन दिनों कोई सत्र नहीं।',
    cancelled: 'रद्द', s_booked: 'बुक', s_checked_in: 'चेक-इन', s_administered: 'टीका लगा',
    s_cancelled: 'रद्द', s_no_show: 'अनुपस्थित',
    queue: 'लॉन्च कतार', waiting: 'प्रतीक्षा में', admitted: 'प्रवेश मिला', admit_per_s: 'प्रति सेकंड प्रवेश',
    sold_out: 'सब बुक', status: 'स्थिति', walkin_done: 'वॉक-इन पंजीकृत और चेक-इन: टोकन',
    moved: 'स्थान स्थानांतरित हुए।', cap_set: 'क्षमता बदली गई।', need_batch: 'पहले टीके का बैच लिखें।',
    offline: 'सर्वर से संपर्क टूटा; फिर से कोशिश हो रही है…', breaker_open: 'स्टोर ब्रेकर खुला: स्टोर ठीक होने तक नई बुकिंग अस्वीकार (503 store_unavailable)।',
    breaker_half_open: 'स्टोर ब्रेकर आधा खुला: एक बुकिंग से स्टोर की जाँच हो रही है।',
    refusing: 'लेन अस्वीकार कर रही है', per_s: '/से', not_found: 'नहीं मिला (या आपके केंद्रों से बाहर)।',
    token: 'टोकन', pool: 'पूल', slot_n: 'स्लॉट',
  },
};

// Short explanations of the API's own error codes (the server's message is shown as well).
const CODES = {
  en: {
    pool_full: 'The pool is full.', already_booked: 'This person already has a booking for this dose.',
    not_eligible: 'Not in the age band of this session.', dose_sequence: 'Dose out of sequence.',
    dose_interval: 'Too early for dose 2.', vaccine_mismatch: 'Different vaccine from dose 1.',
    session_closed: 'The session is closed.', booking_state: 'Not possible in the booking’s current state.',
    capacity_below_booked: 'Capacity cannot go below what is already booked.',
    id_already_registered: 'This photo ID is registered on another account.',
    invalid_request: 'Check the highlighted field.', not_found: 'Not found (or outside your centres).',
    unauthenticated: 'The key was refused.', forbidden: 'Your key cannot do this.',
    too_many_requests: 'Too many requests; wait a moment.', overloaded: 'The server is busy; retry shortly.',
    store_unavailable: 'The store is unavailable.', idempotency_key_mismatch: 'Conflicting retry.',
  },
  hi: {
    pool_full: 'पूल भरा हुआ है।', already_booked: 'इस व्यक्ति की इस खुराक की बुकिंग पहले से है।',
    not_eligible: 'इस सत्र की आयु सीमा में नहीं।', dose_sequence: 'खुराक का क्रम सही नहीं।',
    dose_interval: 'दूसरी खुराक के लिए अभी जल्दी है।', vaccine_mismatch: 'पहली खुराक से अलग टीका।',
    session_closed: 'सत्र बंद है।', booking_state: 'बुकिंग की वर्तमान स्थिति में संभव नहीं।',
    capacity_below_booked: 'क्षमता पहले से बुक संख्या से कम नहीं हो सकती।',
    id_already_registered: 'यह पहचान पत्र किसी दूसरे खाते पर पंजीकृत है।',
    invalid_request: 'चिह्नित जानकारी जाँचें।', not_found: 'नहीं मिला (या आपके केंद्रों से बाहर)।',
    unauthenticated: 'कुंजी अस्वीकार की गई।', forbidden: 'आपकी कुंजी से यह संभव नहीं।',
    too_many_requests: 'बहुत अधिक अनुरोध; थोड़ा रुकें।', overloaded: 'सर्वर व्यस्त है; थोड़ी देर में फिर करें।',
    store_unavailable: 'स्टोर उपलब्ध नहीं है।', idempotency_key_mismatch: 'विरोधी दोहराव।',
  },
};

const $ = (id) => document.getElementById(id);
function browserLang() {
  const l = ((navigator.languages && navigator.languages[0]) || navigator.language || 'en').toLowerCase();
  return l.startsWith('hi') ? 'hi' : 'en';
}
const S = {
  key: sessionStorage.getItem('kataar.key'),
  lang: sessionStorage.getItem('kataar.lang') || browserLang(),
  centres: [], districts: {}, capacity: null, etag: null, scopeKey: '',
  session: null, detail: null, bookings: [], listSig: '', status: null, offline: false,
  timers: [],
};

function t(k) { return (T[S.lang] && T[S.lang][k]) || T.en[k] || k; }

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

function newKey() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return 'console-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function api(method, path, body, opts) {
  const headers = { Authorization: 'Bearer ' + S.key, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts && opts.idem) headers['Idempotency-Key'] = opts.idem;
  if (opts && opts.etag) headers['If-None-Match'] = opts.etag;
  const r = await fetch(path, {
    method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if (r.status !== 304 && r.status !== 204) {
    try { data = await r.json(); } catch (e) { data = null; }
  }
  return { status: r.status, data, etag: r.headers.get('ETag') };
}

// One write: an Idempotency-Key bound to (action, body), kept while the outcome is unknown
// (network error, 5xx) so the retry applies once; dropped once the server gave an answer.
const pending = new Map();
async function write(action, method, path, body, button) {
  if (button && button.disabled) return null;
  const sig = action + ' ' + JSON.stringify(body === undefined ? null : body);
  let key = pending.get(sig);
  if (!key) { key = newKey(); pending.set(sig, key); }
  if (button) button.disabled = true;
  try {
    for (let i = 0; i < RETRIES; i++) {
      let res = null;
      try { res = await api(method, path, body, { idem: key }); } catch (e) { res = null; }
      if (res && res.status < 500) { pending.delete(sig); return res; }
      if (i + 1 < RETRIES) await sleep(400 * (i + 1));
      else if (res) return res;
    }
    return { status: 0, data: { error: { code: 'network', message: t('offline') } } };
  } finally {
    if (button) button.disabled = false;
  }
}

function errorText(res) {
  const e = (res && res.data && res.data.error) || {};
  const code = e.code || String(res ? res.status : 'network');
  const hint = (CODES[S.lang] && CODES[S.lang][code]) || '';
  return (hint ? hint + ' ' : '') + (e.message || '') + ' (' + code + ')';
}

function showError(node, res) { node.textContent = errorText(res); node.dataset.code = (res && res.data && res.data.error && res.data.error.code) || ''; }

// ---------- language ----------
function applyLang() {
  document.documentElement.lang = S.lang;
  for (const n of document.querySelectorAll('[data-i18n]')) n.textContent = t(n.dataset.i18n);
  $('lang').textContent = S.lang === 'en' ? 'हिन्दी' : 'English';
  $('lang').setAttribute('lang', S.lang === 'en' ? 'hi' : 'en');
  $('search').placeholder = '1234';
  renderScope();
  renderCapacity();
  renderDay();
  renderBanner();
}

// ---------- login ----------
async function login(key) {
  S.key = key;
  let res;
  try { res = await api('GET', '/v1/admin/centres?limit=500'); } catch (e) { res = null; }
  if (!res || res.status !== 200) {
    S.key = null;
    $('login-error').textContent = t('bad_key') + ' ' + (res ? errorText(res) : t('offline'));
    showLogin();
    return false;
  }
  sessionStorage.setItem('kataar.key', key);
  $('login-error').textContent = '';
  S.centres = res.data.centres || [];
  let after = res.data.next_after;
  while (after) {
    const more = await api('GET', '/v1/admin/centres?limit=500&after=' + encodeURIComponent(after));
    if (more.status !== 200) break;
    S.centres.push(...more.data.centres);
    after = more.data.next_after;
  }
  await loadDistrictNames();
  $('login-view').hidden = true;
  $('logout').hidden = false;
  start();
  route();
  return true;
}

async function loadDistrictNames() {
  const states = [...new Set(S.centres.map((c) => c.state_id))];
  for (const sid of states) {
    try {
      const r = await fetch('/v1/states/' + sid + '/districts', { cache: 'no-store' });
      if (r.ok) for (const d of (await r.json()).districts) S.districts[d.district_id] = d;
    } catch (e) { /* names are a nicety: ids are shown instead */ }
  }
}

function showLogin() {
  stop();
  $('login-view').hidden = false;
  $('capacity-view').hidden = true;
  $('day-view').hidden = true;
  $('logout').hidden = true;
  $('banner').hidden = true;
  $('key').focus();
}

function logout() {
  for (const k of ['kataar.key', 'kataar.district', 'kataar.centre']) sessionStorage.removeItem(k);
  S.key = null; S.capacity = null; S.etag = null; S.scopeKey = ''; S.centres = []; S.status = null;
  S.session = null; S.detail = null; S.bookings = []; S.listSig = '';
  history.replaceState(null, '', location.pathname);
  $('key').value = '';
  $('district').replaceChildren(); $('centre').replaceChildren();
  renderCapacity(); renderDay();
  showLogin();
}

// ---------- polling ----------
function start() {
  stop();
  S.timers.push(setInterval(pollCapacity, POLL_MS));
  S.timers.push(setInterval(pollStatus, STATUS_POLL_MS));
  S.timers.push(setInterval(() => { if (S.session) loadDay(false); }, LIST_POLL_MS));
  pollStatus();
}
function stop() { S.timers.forEach(clearInterval); S.timers = []; }

function scopeQuery() {
  const c = $('centre').value, d = $('district').value;
  const q = new URLSearchParams();
  if (c) q.set('centre_id', c); else if (d) q.set('district_id', d); else return null;
  if ($('date').value) q.set('date', $('date').value);
  q.set('days', $('days').value || '1');
  return q.toString();
}

let polling = false;
async function pollCapacity() {
  const q = scopeQuery();
  if (!q || polling || !S.key) return;
  polling = true;
  try {
    if (q !== S.scopeKey) { S.scopeKey = q; S.etag = null; }
    const res = await api('GET', '/v1/admin/capacity?' + q, undefined, { etag: S.etag });
    setOffline(false);
    if (res.status === 401) { logout(); return; }
    if (q !== S.scopeKey) return;
    if (res.status === 200) {
      S.etag = res.etag; S.capacity = res.data; renderCapacity();
      if (S.session) refreshDayCounters();
    }
    $('updated').textContent = new Date().toLocaleTimeString(S.lang === 'hi' ? 'hi-IN' : 'en-IN');
  } catch (e) {
    setOffline(true);
  } finally {
    polling = false;
  }
}

async function pollStatus() {
  if (!S.key) return;
  try {
    const res = await api('GET', '/v1/admin/status');
    if (res.status === 200) { S.status = res.data; renderBanner(); }
  } catch (e) { setOffline(true); }
}

function setOffline(v) { if (S.offline !== v) { S.offline = v; renderBanner(); } }

function renderBanner() {
  const b = $('banner');
  const lines = [];
  let bad = false;
  if (S.offline) { lines.push(t('offline')); bad = true; }
  const st = S.status;
  if (st && st.breaker === 'open') { lines.push(t('breaker_open')); bad = true; }
  if (st && st.breaker === 'half_open') lines.push(t('breaker_half_open'));
  for (const l of (st && st.lanes) || []) {
    if (l.refused_per_s > 0) {
      const why = Object.entries(l.refused_per_s_by_reason || {}).filter(([, v]) => v > 0)
        .map(([k, v]) => k + ' ' + v + t('per_s')).join(', ');
      lines.push(t('refusing') + ' ' + l.lane + ': ' + l.refused_per_s + t('per_s') + (why ? ' (' + why + ')' : ''));
    }
  }
  b.hidden = lines.length === 0 || !S.key;
  b.className = 'banner' + (bad ? ' bad' : '');
  b.dataset.breaker = (st && st.breaker) || '';
  b.replaceChildren(...lines.map((x) => el('div', { text: x })));
}

// ---------- scope (district, centre, date) ----------
function districtName(id) {
  const d = S.districts[id];
  return d ? d.district_name : '#' + id;
}

function renderScope() {
  if (!S.centres.length && !S.key) return;
  const dsel = $('district'), csel = $('centre');
  const keepD = dsel.value || sessionStorage.getItem('kataar.district') || '';
  const districts = [...new Set(S.centres.map((c) => c.district_id))].sort((a, b) => a - b);
  dsel.replaceChildren(...districts.map((d) => el('option', { value: d, text: districtName(d) })));
  if (districts.map(String).includes(keepD)) dsel.value = keepD;
  const keepC = csel.value || sessionStorage.getItem('kataar.centre') || '';
  const inD = S.centres.filter((c) => String(c.district_id) === dsel.value);
  csel.replaceChildren(el('option', { value: '', text: t('all_centres') }),
    ...inD.map((c) => el('option', { value: c.centre_id, text: c.name })));
  if (inD.some((c) => String(c.centre_id) === keepC)) csel.value = keepC;
}

function scopeChanged() {
  sessionStorage.setItem('kataar.district', $('district').value);
  sessionStorage.setItem('kataar.centre', $('centre').value);
  S.capacity = null;
  renderCapacity();
  pollCapacity();
}

// ---------- capacity view ----------
const FIELDS = ['capacity', 'booked', 'checked_in', 'administered', 'no_show', 'available'];

function numbers(tot, prefix) {
  return el('div', { class: 'totals' }, FIELDS.map((f) => el('span', { class: 'num' },
    el('b', { 'data-total': f, 'data-scope': prefix, text: tot[f] }),
    el('small', { text: t(f === 'capacity' ? 'capacity_n' : f) }))));
}

// Through the CSSOM: the content security policy refuses inline style attributes.
function widthOf(node, w) { node.style.width = w; return node; }

function bar(tot) {
  const cap = Math.max(tot.capacity, 1);
  const pct = (n) => Math.max(0, Math.min(100, (100 * n) / cap)).toFixed(1) + '%';
  const rest = Math.max(0, tot.booked - tot.checked_in - tot.administered);
  return el('div', { class: 'bar', role: 'img',
    'aria-label': t('booked') + ' ' + tot.booked + ' / ' + t('capacity_n') + ' ' + tot.capacity },
  widthOf(el('span', { class: 'administered' }), pct(tot.administered)),
  widthOf(el('span', { class: 'checked_in' }), pct(tot.checked_in)),
  widthOf(el('span', { class: 'booked' }), pct(rest)));
}

function poolLabel(p, session) {
  const slots = [...new Set(session.pools.map((x) => x.slot_id))];
  return t('slot_n') + ' ' + (slots.indexOf(p.slot_id) + 1) + ' · ' + t('dose') + ' ' + p.dose + ' · ' +
    (p.channel === 'walkin' ? t('walkin_ch') : t('online'));
}

function renderQueue(waiting) {
  const q = $('queue');
  if (!waiting || (typeof waiting === 'object' && Object.keys(waiting).length === 0)) { q.hidden = true; return; }
  const list = Array.isArray(waiting) ? waiting : (waiting.releases || [waiting]);
  q.hidden = false;
  q.replaceChildren(el('h3', { text: t('queue') }), ...list.map((w) => {
    const known = [['status', w.status], ['waiting', w.waiting], ['admitted', w.admitted],
      ['admit_per_s', w.admit_per_s], ['available', w.available]].filter(([, v]) => v !== undefined && v !== null);
    return el('div', { class: 'totals', 'data-release': w.release_id || '' },
      known.map(([k, v]) => el('span', { class: 'num' }, el('b', { 'data-queue': k, text: k === 'status' && v === 'sold_out' ? t('sold_out') : v }), el('small', { text: t(k) }))));
  }));
}

function renderCapacity() {
  const box = $('capacity');
  const cap = S.capacity;
  if (!cap) { box.replaceChildren(); $('totals').replaceChildren(); renderQueue(null); return; }
  renderQueue(cap.waiting);
  $('totals').replaceChildren(numbers(cap.totals, 'all'), bar(cap.totals));
  const cards = cap.centres.map((c) => el('article', { class: 'card', 'data-centre': c.centre_id },
    el('h3', { text: c.name }),
    numbers(c.totals, 'centre'), bar(c.totals),
    c.sessions.length === 0 ? el('p', { class: 'muted', text: t('no_sessions') }) : null,
    c.sessions.map((s) => el('section', { class: 'session', 'data-session': s.session_id },
      el('div', { class: 'session-head' },
        el('strong', { text: s.date + ' · ' + s.vaccine + (s.cancelled ? ' · ' + t('cancelled') : '') }),
        el('button', { type: 'button', class: 'secondary', 'data-open-day': s.session_id,
          onclick: () => { location.hash = '#day/' + s.session_id; } , text: t('open_day') })),
      numbers(s.totals, 'session'), bar(s.totals),
      el('ul', { class: 'pools' }, s.pools.map((p) => el('li', { 'data-pool': p.pool_id },
        el('div', { text: poolLabel(p, s) }),
        el('div', { class: 'pool-line' },
          FIELDS.map((f) => el('span', {}, t(f === 'capacity' ? 'capacity_n' : f) + ' ',
            el('b', { 'data-field': f, text: p[f] }))),
          p.available === 0 && p.capacity > 0 ? el('span', { class: 'full', text: t('full') }) : null),
        bar(p))))))));
  box.replaceChildren(...(cards.length ? cards : [el('p', { class: 'muted', text: t('no_sessions') })]));
}

// ---------- the centre's day ----------
function route() {
  if (!S.key) return showLogin();
  const m = /^#day\/(\d+)$/.exec(location.hash);
  renderScope();
  if (m) {
    S.session = Number(m[1]);
    $('capacity-view').hidden = true;
    $('day-view').hidden = false;
    S.detail = null; S.bookings = []; S.listSig = '';
    $('day-error').textContent = '';
    renderDay();
    loadDay(true);
  } else {
    S.session = null;
    $('day-view').hidden = true;
    $('capacity-view').hidden = false;
    pollCapacity();
  }
}

async function loadDay(first) {
  const id = S.session;
  if (!id) return;
  try {
    const d = await api('GET', '/v1/admin/sessions/' + id);
    if (id !== S.session) return;
    if (d.status !== 200) {
      $('day-body').hidden = true;
      showError($('day-error'), d);
      if (d.status === 404) $('day-error').textContent = t('not_found') + ' (not_found)';
      return;
    }
    $('day-body').hidden = false;
    $('day-error').textContent = '';
    S.detail = d.data;
    const list = [];
    let after = null;
    do {
      const r = await api('GET', '/v1/admin/bookings?session_id=' + id + '&limit=500' + (after ? '&after=' + encodeURIComponent(after) : ''));
      if (r.status !== 200) { showError($('list-error'), r); break; }
      list.push(...r.data.bookings);
      after = r.data.next_after;
    } while (after);
    if (id !== S.session) return;
    const sig = JSON.stringify(list) + JSON.stringify(S.detail);
    if (first || sig !== S.listSig) { S.listSig = sig; S.bookings = list; renderDay(); }
  } catch (e) {
    setOffline(true);
  }
}

function centreName(id) {
  const c = S.centres.find((x) => x.centre_id === id);
  return c ? c.name : '#' + id;
}

function slotText(sl) { return sl.start + '–' + sl.end; }

function refreshDayCounters() {
  if (!S.detail || !S.capacity) return;
  for (const c of S.capacity.centres) for (const s of c.sessions) {
    if (s.session_id === S.session) $('day-totals').replaceChildren(numbers(s.totals, 'day'), bar(s.totals));
  }
}

function isPast(date) {
  const today = new Date();
  const iso = today.getFullYear() + '-' + String(today.getMonth() + 1).padStart(2, '0') + '-' + String(today.getDate()).padStart(2, '0');
  return date < iso;
}

function renderDay() {
  const d = S.detail;
  if (!d || !S.session) { $('bookings').replaceChildren(); $('day-sub').textContent = ''; return; }
  $('day-sub').textContent = centreName(d.centre_id) + ' · ' + d.date + ' · ' + d.vaccine + (d.cancelled ? ' · ' + t('cancelled') : '');
  refreshDayCounters();
  const q = $('search').value.trim();
  const shown = S.bookings.filter((b) => !q || String(b.booking_id) === q ||
    (b.mobile_masked && /^\d+$/.test(q) && b.mobile_masked.endsWith(q)) || String(b.token_number) === q);
  $('no-bookings').hidden = shown.length > 0;
  $('bookings').replaceChildren(...shown.map((b) => bookingItem(b, d)));
  // Walk-in slots and pool editors.
  const wslot = $('w-slot'), keep = wslot.value;
  wslot.replaceChildren(...d.slots.map((sl) => el('option', { value: sl.slot_id, text: slotText(sl) })));
  if (keep) wslot.value = keep;
  renderPools(d);
}

function bookingItem(b, d) {
  const li = el('li', { 'data-booking': b.booking_id, 'data-status': b.status });
  const err = el('p', { class: 'error', role: 'alert' });
  const actions = el('div', { class: 'actions' });
  if (b.status === 'booked') {
    actions.append(el('button', { type: 'button', 'data-action': 'check-in', text: t('check_in'),
      onclick: (ev) => bookingAction(ev.currentTarget, b, 'check-in', undefined, err) }));
    if (isPast(d.date)) {
      actions.append(el('button', { type: 'button', class: 'secondary', 'data-action': 'no-show', text: t('mark_no_show'),
        onclick: (ev) => bookingAction(ev.currentTarget, b, 'no-show', undefined, err) }));
    }
  }
  if (b.status === 'checked_in') {
    actions.append(el('button', { type: 'button', 'data-action': 'administer', text: t('administer') + ' · ' + d.vaccine,
      onclick: (ev) => {
        const batch = $('batch').value.trim();
        if (!batch) { err.textContent = t('need_batch'); $('batch').focus(); return; }
        bookingAction(ev.currentTarget, b, 'administer', { vaccine: d.vaccine, batch }, err);
      } }));
  }
  li.append(
    el('div', { class: 'who' },
      el('span', { class: 'token', title: t('token'), text: '#' + b.token_number }),
      el('strong', { text: b.name || '' }),
      el('span', { class: 'muted', text: b.id_masked || '' }),
      el('span', { class: 'muted', text: b.mobile_masked || '' }),
      el('span', { class: 'muted', text: t('dose') + ' ' + b.dose + ' · ' + (b.slot ? b.slot.start : '') + ' · ' + (b.channel === 'walkin' ? t('walkin_ch') : t('online')) + ' · ID ' + b.booking_id }),
      el('span', { class: 'status ' + b.status, 'data-status-label': b.status, text: t('s_' + b.status) })),
    actions, err);
  return li;
}

async function bookingAction(button, b, action, body, err) {
  err.textContent = '';
  const res = await write(action + ' ' + b.booking_id, 'POST', '/v1/admin/bookings/' + b.booking_id + '/' + action, body, button);
  if (!res) return;
  if (res.status === 200) {
    const i = S.bookings.findIndex((x) => x.booking_id === b.booking_id);
    if (i >= 0 && res.data) S.bookings[i] = Object.assign({}, S.bookings[i], res.data);
    renderDay();
    const again = document.querySelector('[data-booking="' + b.booking_id + '"] button');
    if (again) again.focus();
    pollCapacity();
  } else {
    showError(err, res);
  }
}

function poolName(p, d) {
  const idx = d.slots.findIndex((sl) => sl.pools.some((x) => x.pool_id === p.pool_id));
  return slotText(d.slots[idx]) + ' · ' + t('dose') + ' ' + p.dose + ' · ' + (p.channel === 'walkin' ? t('walkin_ch') : t('online'));
}

function renderPools(d) {
  const pools = d.slots.flatMap((sl) => sl.pools);
  const focused = document.activeElement && document.activeElement.id;
  $('pools').replaceChildren(...pools.map((p) => {
    const input = el('input', { id: 'cap-' + p.pool_id, inputmode: 'numeric', value: p.capacity, 'aria-label': t('capacity_n') + ' ' + poolName(p, d) });
    const btn = el('button', { type: 'button', 'data-set-pool': p.pool_id, text: t('set') });
    btn.addEventListener('click', async () => {
      $('pools-error').textContent = ''; $('pools-ok').textContent = '';
      const n = Number(input.value);
      const res = await write('cap ' + p.pool_id, 'PATCH', '/v1/admin/pools/' + p.pool_id, { capacity: Number.isInteger(n) ? n : input.value }, btn);
      if (res && res.status === 200) { $('pools-ok').textContent = t('cap_set'); loadDay(true); pollCapacity(); }
      else if (res) showError($('pools-error'), res);
    });
    return el('div', { class: 'pool-edit', 'data-pool-edit': p.pool_id },
      el('label', { for: 'cap-' + p.pool_id, text: poolName(p, d) + ' (' + t('booked') + ' ' + p.booked + ')' }), input, btn);
  }));
  if (focused && focused.startsWith('cap-') && $(focused)) $(focused).focus();
  for (const id of ['m-from', 'm-to']) {
    const sel = $(id), keep = sel.value;
    sel.replaceChildren(...pools.map((p) => el('option', { value: p.pool_id, text: poolName(p, d) + ' (' + p.capacity + ')' })));
    if (keep) sel.value = keep;
  }
}

async function submitMove(ev) {
  ev.preventDefault();
  $('pools-error').textContent = ''; $('pools-ok').textContent = '';
  const n = Number($('m-count').value);
  const body = { from_pool_id: Number($('m-from').value), to_pool_id: Number($('m-to').value), count: Number.isInteger(n) ? n : $('m-count').value };
  const res = await write('move', 'POST', '/v1/admin/pools/move', body, $('m-submit'));
  if (res && res.status === 200) { $('pools-ok').textContent = t('moved'); loadDay(true); pollCapacity(); }
  else if (res) showError($('pools-error'), res);
}

async function submitWalkin(ev) {
  ev.preventDefault();
  const f = $('walkin-form');
  for (const p of f.querySelectorAll('[data-field]')) p.textContent = '';
  $('walkin-error').textContent = ''; $('walkin-ok').textContent = '';
  const by = Number($('w-birth').value);
  const person = {
    name: $('w-name').value, birth_year: Number.isInteger(by) && $('w-birth').value !== '' ? by : $('w-birth').value,
    gender: $('w-gender').value, id_type: $('w-idtype').value, id_number: $('w-idnumber').value,
  };
  if ($('w-mobile').value.trim()) person.mobile = $('w-mobile').value.trim();
  const body = { session_id: S.session, slot_id: Number($('w-slot').value), dose: Number($('w-dose').value), beneficiary: person };
  const res = await write('walkin', 'POST', '/v1/admin/walkins', body, $('w-submit'));
  if (!res) return;
  if (res.status === 201) {
    $('walkin-ok').textContent = t('walkin_done') + ' #' + res.data.token_number + ' (ID ' + res.data.booking_id + ')';
    $('w-name').value = ''; $('w-birth').value = ''; $('w-idnumber').value = ''; $('w-mobile').value = '';
    loadDay(true); pollCapacity();
    return;
  }
  showError($('walkin-error'), res);
  const field = res.data && res.data.error && res.data.error.details && res.data.error.details.field;
  if (field) {
    const name = field.startsWith('beneficiary.') ? field : 'beneficiary.' + field;
    const slot = f.querySelector('[data-field="' + name + '"]');
    if (slot) slot.textContent = res.data.error.message;
    const input = f.querySelector('[name="' + name.replace('beneficiary.', '') + '"]');
    if (input) input.focus();
  }
}

// ---------- wiring ----------
function init() {
  $('login-form').addEventListener('submit', (ev) => { ev.preventDefault(); login($('key').value.trim()); });
  $('logout').addEventListener('click', logout);
  $('lang').addEventListener('click', () => { S.lang = S.lang === 'en' ? 'hi' : 'en'; sessionStorage.setItem('kataar.lang', S.lang); applyLang(); });
  $('district').addEventListener('change', () => { $('centre').value = ''; renderScope(); scopeChanged(); });
  $('centre').addEventListener('change', scopeChanged);
  $('date').addEventListener('change', scopeChanged);
  $('days').addEventListener('change', scopeChanged);
  $('scope-form').addEventListener('submit', (ev) => ev.preventDefault());
  $('back').addEventListener('click', () => { location.hash = '#capacity'; });
  $('search').addEventListener('input', renderDay);
  $('batch').value = sessionStorage.getItem('kataar.batch') || '';
  $('batch').addEventListener('input', () => sessionStorage.setItem('kataar.batch', $('batch').value));
  $('walkin-form').addEventListener('submit', submitWalkin);
  $('move-form').addEventListener('submit', submitMove);
  window.addEventListener('hashchange', route);
  applyLang();
  if (S.key) login(S.key); else showLogin();
}

init();
