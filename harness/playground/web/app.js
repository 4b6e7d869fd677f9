// The stackguard playground page. The checking happens in the WebAssembly module built from the
// harness crate (`check(yaml, settingsJson)`, the engine of `stackguard check --format json`),
// run in a Web Worker (worker.js) so that the page stays responsive on any input; this file only
// loads it, collects the inputs and draws the report. Classic script (no ES
// modules) so that the page also works when opened from disk.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const editor = $('editor');

  const state = {
    policies: [],
    report: null,
    // Milliseconds the module spent in the last check() call, and how many calls were made.
    lastCheckMs: 0,
    lastRenderMs: 0,
    checks: 0,
    timer: null,
    engine: '',
    // The last Fix result (see runFix), until applied or the text changes.
    fix: null,
    // The check the worker is running ({id, started}), if any.
    busy: null,
  };

  // A check that runs longer than this is stopped (the worker is replaced): the page never waits
  // on an input without bound.
  const CHECK_LIMIT_MS = 30000;

  // A small example written for the page: YAML with a syntax error.
  const BAD_YAML = {
    id: 'bad-yaml',
    title: 'Bad YAML',
    description: 'a syntax error: the results show the line and column the parser stopped at',
    text: [
      'apiVersion: v1',
      'kind: Pod',
      'metadata:',
      '  name: typo',
      '  labels: {app: web',
      'spec:',
      '  containers:',
      '    - name: web',
      '      image: nginx:1.27',
      '',
    ].join('\n'),
  };

  // ---------------------------------------------------------------- engine loading

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = src;
      s.onload = resolve;
      s.onerror = () => reject(new Error(`cannot load ${src}`));
      document.head.appendChild(s);
    });
  }

  function base64Bytes(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // Served over HTTP: stream-compile the .wasm file (needs `application/wasm`). From disk,
  // Chromium refuses fetch() on file://, so use the inlined copy instead.
  async function loadEngine() {
    if (typeof wasm_bindgen === 'undefined') {
      throw new Error('pkg/ is missing: build the engine with `make playground`');
    }
    // The compiled module also goes to the check worker (startWorker).
    if (location.protocol === 'http:' || location.protocol === 'https:') {
      try {
        worker.module = await WebAssembly.compileStreaming(fetch('pkg/stackguard_playground_bg.wasm'));
        wasm_bindgen.initSync({ module: worker.module });
        return 'streamed';
      } catch (e) {
        console.warn('stackguard: loading pkg/stackguard_playground_bg.wasm failed, using the inlined copy', e);
      }
    }
    await loadScript('pkg/wasm_inline.js');
    worker.module = await WebAssembly.compile(base64Bytes(STACKGUARD_WASM_BASE64));
    wasm_bindgen.initSync({ module: worker.module });
    return 'inlined';
  }

  // ---------------------------------------------------------------- settings pane

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }

  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }

  function buildSettingsPane() {
    const box = $('policies');
    box.replaceChildren();
    for (const p of state.policies) {
      const enabled = el('input', { type: 'checkbox', 'data-policy': p.name, class: 'enabled' });
      enabled.checked = true;
      const settings = el('textarea', {
        class: 'settings',
        'data-policy': p.name,
        spellcheck: 'false',
        'aria-label': `settings of ${p.name} (JSON)`,
      });
      settings.value = pretty(p.defaults);
      settings.rows = Math.min(12, settings.value.split('\n').length + 1);
      const reset = el('button', { type: 'button', class: 'reset', text: 'defaults' });
      reset.addEventListener('click', () => {
        settings.value = pretty(p.defaults);
        schedule(0);
      });
      const error = el('div', { class: 'settings-error', 'data-policy': p.name });
      error.hidden = true;
      const title = el('label', {}, enabled, ` ${p.title || p.name}`);
      const link = p.url ? el('a', { href: p.url, target: '_blank', rel: 'noopener', text: p.name }) : p.name;
      const item = el(
        'details',
        { class: 'policy', 'data-policy': p.name, open: '' },
        el('summary', {}, title, ' ', el('code', {}, link)),
        el('p', { class: 'description', text: p.description }),
        p.resources ? el('p', { class: 'resources', text: `Reviews: ${p.resources}` }) : null,
        settings,
        el('div', { class: 'settings-actions' }, reset),
        error,
      );
      enabled.addEventListener('change', () => schedule(0));
      settings.addEventListener('input', () => schedule());
      box.append(item);
    }
  }

  // The config passed to the module: the `.stackguard.yaml` schema, as JSON.
  function buildConfig() {
    const policies = {};
    let bad = null;
    for (const p of state.policies) {
      const enabled = document.querySelector(`input.enabled[data-policy="${p.name}"]`).checked;
      const area = document.querySelector(`textarea.settings[data-policy="${p.name}"]`);
      const error = document.querySelector(`.settings-error[data-policy="${p.name}"]`);
      const entry = { enabled };
      const text = area.value.trim();
      error.hidden = true;
      area.classList.remove('invalid');
      if (text !== '') {
        try {
          entry.settings = JSON.parse(text);
        } catch (e) {
          error.textContent = `not valid JSON: ${e.message}`;
          error.hidden = false;
          area.classList.add('invalid');
          bad = bad || `${p.name}: the settings are not valid JSON`;
        }
      }
      policies[p.name] = entry;
    }
    if (bad) throw new Error(bad);
    return JSON.stringify({ policies });
  }

  // ---------------------------------------------------------------- checking

  function schedule(delay) {
    clearTimeout(state.timer);
    $('results-pane').classList.add('pending');
    // Debounced: quick for small inputs, longer when a check costs more, and on large input
    // longer than a keystroke takes there (a big textarea is slow to edit by itself).
    const cost = 3 * (state.lastCheckMs + state.lastRenderMs);
    const wait = delay ?? Math.min(1000, Math.max(150, cost, editor.textLength > 200000 ? 800 : 0));
    state.timer = setTimeout(runCheck, wait);
  }

  function showConfigError(message) {
    const box = $('settings-error');
    box.textContent = message;
    box.hidden = false;
    $('summary').className = 'summary config';
    $('summary').textContent = `Not checked: the settings are invalid (${message})`;
    $('errors').replaceChildren();
    $('findings').replaceChildren();
  }

  // ---------------------------------------------------------------- the engine's worker

  // `queued`: per operation ('check', 'fix'), the latest request waiting for the worker.
  const worker = { current: null, module: null, nextId: 1, queued: {}, watchdog: null };

  function startWorker() {
    const url = URL.createObjectURL(new Blob([STACKGUARD_WORKER_SOURCE], { type: 'text/javascript' }));
    const w = new Worker(url);
    w.onmessage = (event) => {
      if (event.data.ready) URL.revokeObjectURL(url);
      else finishCheck(event.data);
    };
    w.postMessage({ module: worker.module });
    worker.current = w;
  }

  // Send a check or a fix to the worker; while one runs, only the latest request of each
  // operation waits for it.
  function post(op, text, config) {
    if (state.busy) {
      worker.queued[op] = { text, config };
      return;
    }
    const id = worker.nextId++;
    state.busy = { id, op, text, started: performance.now() };
    worker.watchdog = setTimeout(() => stopCheck(id), CHECK_LIMIT_MS);
    worker.current.postMessage({ id, op, text, config });
  }

  function postCheck(text, config) {
    post('check', text, config);
  }

  // A waiting fix (asked for by a click) goes before a waiting check.
  function nextQueued() {
    for (const op of ['fix', 'check']) {
      const q = worker.queued[op];
      if (q) {
        delete worker.queued[op];
        post(op, q.text, q.config);
        return;
      }
    }
  }

  // The worker did not answer in time: replace it and say so.
  function stopCheck(id) {
    if (!state.busy || state.busy.id !== id) return;
    const op = state.busy.op;
    worker.current.terminate();
    state.busy = null;
    startWorker();
    if (op === 'fix') {
      $('fix-pane').hidden = false;
      $('fix-summary').textContent =
        `Not fixed: Fix was stopped after ${CHECK_LIMIT_MS / 1000} s. ` +
        'Fix this input with the stackguard CLI instead.';
      $('fix-changes').replaceChildren();
      $('fix-diff').hidden = true;
      $('fix-apply').disabled = true;
    } else {
      state.checks++;
      $('summary').className = 'summary bad';
      $('summary').textContent =
        `Not checked: the check was stopped after ${CHECK_LIMIT_MS / 1000} s. ` +
        'Check this input with the stackguard CLI instead.';
      $('errors').replaceChildren();
      $('findings').replaceChildren();
    }
    nextQueued();
  }

  function finishCheck(msg) {
    if (!state.busy || state.busy.id !== msg.id) return;
    clearTimeout(worker.watchdog);
    const done = state.busy;
    state.busy = null;
    if (msg.op === 'fix') {
      // A fix of a text edited since is not shown (Apply would put the old text back).
      if (done.text === editor.value) finishFix(msg);
      nextQueued();
      return;
    }
    state.checks++;
    if (msg.error !== undefined) {
      if (msg.trap) {
        // A trap (a panic: a bug, never bad input by design) leaves the instance unusable.
        worker.current.terminate();
        startWorker();
        $('summary').className = 'summary bad';
        $('summary').textContent = `The policy engine stopped (${msg.error}): please report the input.`;
      } else {
        showConfigError(msg.error);
      }
    } else {
      state.lastCheckMs = msg.ms;
      $('settings-error').hidden = true;
      const r0 = performance.now();
      state.report = JSON.parse(msg.out);
      render(state.report);
      state.lastRenderMs = performance.now() - r0;
      $('timing').textContent =
        `checked in ${state.lastCheckMs.toFixed(1)} ms` +
        ` (+${state.lastRenderMs.toFixed(1)} ms to draw)`;
      document.dispatchEvent(new CustomEvent('stackguard:checked', { detail: state.report }));
    }
    nextQueued();
  }

  function runCheck() {
    clearTimeout(state.timer);
    $('results-pane').classList.remove('pending');
    let config;
    try {
      config = buildConfig();
    } catch (e) {
      showConfigError(e.message);
      return;
    }
    postCheck(editor.value, config);
  }

  // ---------------------------------------------------------------- fix

  // `stackguard fix` on the editor's text, in the worker: the diff, the repaired objects, Apply
  // to take it.
  function runFix() {
    let config;
    try {
      config = buildConfig();
    } catch (e) {
      showConfigError(e.message);
      return;
    }
    post('fix', editor.value, config);
  }

  function finishFix(msg) {
    if (msg.error !== undefined) {
      if (msg.trap) {
        worker.current.terminate();
        startWorker();
      }
      showConfigError(msg.error);
      return;
    }
    const out = JSON.parse(msg.out);
    state.fix = out;
    const remaining = out.report.summary.findings;
    let summary;
    if (out.skipped) summary = `nothing edited: ${out.skipped}`;
    else if (!out.changed) summary = 'nothing to fill in';
    else summary = `${plural(out.changes.length, 'object')} repaired`;
    summary += ` · ${plural(remaining, 'finding')} left after it`;
    $('fix-summary').textContent = summary;
    $('fix-changes').replaceChildren(
      ...out.changes.map((c) =>
        el('li', {}, jumpLink(c.line, 1, `line ${c.line}`), ` ${c.object} `, el('span', { class: 'policies', text: `[${c.policies.join(', ')}]` })),
      ),
    );
    const lines = out.diff.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    $('fix-diff').replaceChildren(
      ...lines.map((line) => {
        const kind = line.startsWith('@@') ? 'hunk' : line.startsWith('+') && !line.startsWith('+++') ? 'add' : line.startsWith('-') && !line.startsWith('---') ? 'del' : 'ctx';
        return el('span', { class: kind, text: `${line}\n` });
      }),
    );
    $('fix-diff').hidden = !out.changed;
    $('fix-apply').disabled = !out.changed;
    // Shown once filled in.
    $('fix-pane').hidden = false;
    document.dispatchEvent(new CustomEvent('stackguard:fixed', { detail: out }));
  }

  function applyFix() {
    if (!state.fix || !state.fix.changed) return;
    editor.value = state.fix.text;
    $('fix-pane').hidden = true;
    state.fix = null;
    showSize();
    runCheck();
  }

  $('fix').addEventListener('click', runFix);
  $('fix-apply').addEventListener('click', applyFix);
  $('fix-close').addEventListener('click', () => {
    $('fix-pane').hidden = true;
  });

  // ---------------------------------------------------------------- results pane

  const MAX_OBJECTS = 300;

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? '' : 's'}`;
  }

  // The YAML reader reports "… (column N)": split it off for the location label.
  function splitColumn(message) {
    const m = /^(.*) \(column (\d+)\)$/.exec(message);
    return m ? [m[1], Number(m[2])] : [message, null];
  }

  function jumpLink(line, column, label) {
    const a = el('a', { href: '#', class: 'loc', 'data-line': String(line), text: label });
    a.addEventListener('click', (ev) => {
      ev.preventDefault();
      jumpTo(line, column || 1);
    });
    return a;
  }

  function render(report) {
    const s = report.summary;
    const summary = $('summary');
    if (s.errors > 0) summary.className = 'summary bad';
    else if (s.rejected > 0) summary.className = 'summary rejected';
    else summary.className = 'summary ok';
    const parts = [plural(s.objects, 'object'), `${s.rejected} rejected`, plural(s.findings, 'finding')];
    if (s.errors) parts.push(plural(s.errors, 'error'));
    summary.textContent =
      (s.errors > 0 ? '✗ ' : s.rejected > 0 ? '✗ ' : s.objects > 0 ? '✓ ' : '') + parts.join(' · ');

    const errors = report.errors.map((e) => {
      const [message, column] = splitColumn(e.message);
      const where = e.line == null ? 'input' : column ? `line ${e.line}, column ${column}` : `line ${e.line}`;
      const label = e.line == null ? el('span', { class: 'loc', text: where }) : jumpLink(e.line, column, where);
      const item = el('div', { class: 'error' }, label, ' ', el('span', { class: 'message', text: message }));
      if (e.line != null) item.dataset.line = String(e.line);
      if (column) item.dataset.column = String(column);
      return item;
    });
    $('errors').replaceChildren(...errors);

    // Findings grouped by object, in report order (by line).
    const groups = new Map();
    for (const f of report.findings) {
      const key = [f.apiVersion, f.kind, f.namespace, f.name].join('\u0000');
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(f);
    }
    const items = [];
    for (const list of groups.values()) {
      if (items.length === MAX_OBJECTS) break;
      const o = list[0];
      const first = Math.min(...list.map((f) => f.line));
      const ref = o.namespace ? `${o.namespace}/${o.name}` : o.name || '(no name)';
      const head = el(
        'div',
        { class: 'object-head' },
        el('span', { class: 'kind', text: o.kind }),
        ' ',
        el('span', { class: 'ref', text: ref }),
        ' ',
        el('span', { class: 'api', text: o.apiVersion }),
        ' ',
        jumpLink(first, 1, `line ${first}`),
      );
      const rows = list.map((f) =>
        el(
          'li',
          { class: 'finding', 'data-policy': f.policy },
          el('span', { class: 'policy', text: f.policy }),
          ' ',
          f.path ? el('code', { class: 'path', text: f.path }) : null,
          ' ',
          jumpLink(f.line, 1, `line ${f.line}`),
          el('span', { class: 'message', text: f.message }),
        ),
      );
      items.push(
        el('article', { class: 'object', 'data-kind': o.kind, 'data-name': o.name }, head, el('ul', {}, ...rows)),
      );
    }
    if (groups.size > MAX_OBJECTS) {
      items.push(el('p', { class: 'more', text: `… and ${groups.size - MAX_OBJECTS} more rejected objects` }));
    }
    if (report.findings.length === 0 && report.errors.length === 0 && s.objects > 0) {
      items.push(el('p', { class: 'all-good', text: 'Every policy accepts every object.' }));
    }
    $('findings').replaceChildren(...items);
  }

  // ---------------------------------------------------------------- editor helpers

  function offsetOf(text, line, column) {
    let pos = 0;
    for (let l = 1; l < line; l++) {
      const nl = text.indexOf('\n', pos);
      if (nl < 0) return text.length;
      pos = nl + 1;
    }
    const end = text.indexOf('\n', pos);
    const lineEnd = end < 0 ? text.length : end;
    return Math.min(pos + column - 1, lineEnd);
  }

  function jumpTo(line, column) {
    const text = editor.value;
    const at = offsetOf(text, line, column);
    const lineEnd = text.indexOf('\n', at);
    editor.focus();
    editor.setSelectionRange(at, lineEnd < 0 ? text.length : lineEnd);
    const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 18;
    editor.scrollTop = Math.max(0, (line - 1) * lineHeight - editor.clientHeight / 3);
    showCursor();
  }

  function showCursor() {
    const text = editor.value;
    const pos = editor.selectionStart;
    let line = 1;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1 && nl < pos; nl = text.indexOf('\n', nl + 1)) {
      line++;
      start = nl + 1;
    }
    $('cursor').textContent = `Ln ${line}, Col ${pos - start + 1}`;
  }

  // Reading `editor.value` copies the whole text: on large input do it once per pause, not per key.
  let cursorTimer = null;
  function showCursorSoon() {
    clearTimeout(cursorTimer);
    cursorTimer = setTimeout(showCursor, editor.textLength > 100000 ? 250 : 0);
  }

  function showSize() {
    const n = editor.textLength;
    $('size').textContent = n > 4096 ? `${(n / 1024).toFixed(0)} KiB` : `${n} chars`;
  }

  function loadExample(ex) {
    $('fix-pane').hidden = true;
    editor.value = ex.text;
    editor.scrollTop = 0;
    editor.setSelectionRange(0, 0);
    for (const b of document.querySelectorAll('#examples button')) {
      b.classList.toggle('active', b.dataset.example === ex.id);
    }
    if ($('fixtures')) $('fixtures').value = ex.group ? ex.id : '';
    showSize();
    showCursor();
    runCheck();
  }

  // The generated examples (pkg/examples.js) and the page's own.
  const EXAMPLES = (typeof STACKGUARD_EXAMPLES === 'undefined' ? [] : STACKGUARD_EXAMPLES).concat([BAD_YAML]);

  function pick(ex) {
    history.replaceState(null, '', `#example=${ex.id}`);
    loadExample(ex);
  }

  // Buttons for the stacks, a menu for the policy fixtures (grouped by policy).
  function buildExamples() {
    const nav = $('examples');
    for (const ex of EXAMPLES.filter((e) => !e.group)) {
      const b = el('button', { type: 'button', 'data-example': ex.id, title: ex.description, text: ex.title });
      b.addEventListener('click', () => pick(ex));
      nav.append(b);
    }
    const fixtures = EXAMPLES.filter((e) => e.group);
    if (fixtures.length === 0) return;
    const menu = el('select', { id: 'fixtures', 'aria-label': 'Rejected policy fixtures' });
    menu.append(el('option', { value: '', text: `Policy fixtures (${fixtures.length})…` }));
    const groups = new Map();
    for (const ex of fixtures) {
      if (!groups.has(ex.group)) groups.set(ex.group, el('optgroup', { label: ex.group }));
      groups.get(ex.group).append(el('option', { value: ex.id, title: ex.description, text: ex.title }));
    }
    menu.append(...groups.values());
    menu.addEventListener('change', () => {
      const ex = fixtures.find((e) => e.id === menu.value);
      if (ex) pick(ex);
    });
    nav.append(menu);
  }

  // ---------------------------------------------------------------- start

  editor.addEventListener('input', () => {
    $('fix-pane').hidden = true;
    for (const b of document.querySelectorAll('#examples button.active')) b.classList.remove('active');
    showSize();
    schedule();
  });
  for (const ev of ['keyup', 'click', 'select']) editor.addEventListener(ev, showCursorSoon);
  // Tab indents with two spaces instead of leaving the editor.
  editor.addEventListener('keydown', (ev) => {
    if (ev.key === 'Tab' && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
      ev.preventDefault();
      editor.setRangeText('  ', editor.selectionStart, editor.selectionEnd, 'end');
      editor.dispatchEvent(new Event('input'));
    }
  });

  const ready = (async () => {
    buildExamples();
    const t0 = performance.now();
    state.engine = await loadEngine();
    startWorker();
    const loadMs = performance.now() - t0;
    state.policies = JSON.parse(wasm_bindgen.policies());
    buildSettingsPane();
    $('engine').textContent =
      `stackguard ${wasm_bindgen.version()} · ${state.policies.length} ${state.policies.length === 1 ? 'policy' : 'policies'}` +
      ` · engine ${state.engine} in ${loadMs.toFixed(0)} ms ·`;
    const wanted = /example=([\w/-]+)/.exec(location.hash);
    const first =
      EXAMPLES.find((e) => wanted && e.id === wanted[1]) ||
      EXAMPLES.find((e) => e.id.startsWith('broken-')) ||
      EXAMPLES[0];
    loadExample(first);
  })().catch((e) => {
    $('summary').className = 'summary bad';
    $('summary').textContent = `The policy engine could not start: ${e.message}`;
    throw e;
  });

  // For the browser test and the curious: the state and a check now (answered by the worker).
  window.stackguardPlayground = {
    ready,
    state,
    checkNow: runCheck,
    fixNow: runFix,
    loadExample: (id) => {
      const ex = EXAMPLES.find((e) => e.id === id);
      if (!ex) throw new Error(`no example ${id}`);
      loadExample(ex);
    },
  };
})();
