// Test of the browser playground (run by tests/playground.sh, part of `make test`).
//
// 1. Module vs CLI: the wasm-bindgen module (loaded in node) must give exactly the JSON report of
//    `stackguard check --format json` on every fixture file under fixtures/ (with the default
//    config and with the settings of the fixture's header), on the page's examples, and on the
//    biggest file of the shared corpus.
//    The module's fix(), likewise, must give exactly the diff of `stackguard fix --diff` on every
//    fixture file.
// 2. Real browser: Debian's chromium (never a downloaded one) driven by playwright-core loads the
//    page served by `stackguard playground` on 127.0.0.1 and from file://, a bad manifest is typed
//    in, and the findings shown must be the CLI's; bad YAML shows line and column; the settings
//    pane changes results; large input is debounced; Fix shows the diff of `stackguard fix --diff`
//    and Apply puts in the text of `stackguard fix -`. Screenshots and measurements go to
//    target/playground/.
//
// Usage: node tests/playground.mjs   (from anywhere; the repository is this file's parent)

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import zlib from 'node:zlib';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const web = path.join(root, 'harness/playground/web');
const pkg = path.join(web, 'pkg');
const out = path.join(root, 'target/playground');
const bin = process.env.STACKGUARD ?? path.join(root, 'target/release/stackguard');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const corpus = path.resolve(root, '../shared/corpus');
const require = createRequire(path.join(root, 'harness/playground/package.json'));
const { chromium } = require('playwright-core');
const YAML = require('yaml');

fs.mkdirSync(out, { recursive: true });
const measured = {};

function step(message) {
  console.log(`playground test: ${message}`);
}

// ------------------------------------------------------------------ the module in node

for (const f of ['stackguard_playground.js', 'stackguard_playground_bg.wasm', 'wasm_inline.js', 'examples.js']) {
  assert.ok(fs.existsSync(path.join(pkg, f)), `${f} is missing: run make playground`);
}
const wasmBytes = fs.readFileSync(path.join(pkg, 'stackguard_playground_bg.wasm'));
const sg = vm.runInThisContext(
  `${fs.readFileSync(path.join(pkg, 'stackguard_playground.js'), 'utf8')}\n;wasm_bindgen`,
  { filename: 'stackguard_playground.js' },
);
sg.initSync({ module: wasmBytes });
const examples = vm.runInNewContext(
  `${fs.readFileSync(path.join(pkg, 'examples.js'), 'utf8')}\n;STACKGUARD_EXAMPLES`,
);
measured.moduleBytes = wasmBytes.length;
measured.moduleGzipBytes = zlib.gzipSync(wasmBytes, { level: 9 }).length;
measured.inlineScriptBytes = fs.statSync(path.join(pkg, 'wasm_inline.js')).size;

const policies = JSON.parse(sg.policies());
const policyNames = policies.map((p) => p.name);
assert.ok(policyNames.length >= 1, 'the module lists no policy');

// `stackguard check --format json` on a file (relative to the repository) or on stdin.
function cli(args, input) {
  const r = spawnSync(bin, ['check', '--format', 'json', '--color', 'never', ...args], {
    cwd: root,
    input,
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  if (r.error) throw r.error;
  return r;
}

function tmpConfig(config) {
  const file = path.join(out, 'config.json');
  fs.writeFileSync(file, config);
  return file;
}

// The CLI names stdin `<stdin>`; the page names its text `<playground>`.
function asPlayground(report) {
  for (const item of [...report.findings, ...report.errors]) {
    if (item.file === '<stdin>') item.file = '<playground>';
  }
  return report;
}

function compareFile(rel, config) {
  const text = fs.readFileSync(path.join(root, rel), 'utf8');
  const r = cli(['--config', tmpConfig(config), rel]);
  if (r.status === 2) {
    assert.throws(() => sg.check(text, config, rel), undefined, `${rel}: the CLI rejects the config, the module must too`);
    return 'config-error';
  }
  assert.ok(r.status === 0 || r.status === 1, `${rel}: CLI exit ${r.status}: ${r.stderr}`);
  assert.deepEqual(JSON.parse(sg.check(text, config, rel)), JSON.parse(r.stdout), `${rel} (config ${config})`);
  return JSON.parse(r.stdout).summary.findings;
}

function compareText(label, text, config = '{}') {
  const r = cli(['--config', tmpConfig(config), '-'], text);
  assert.ok(r.status === 0 || r.status === 1, `${label}: CLI exit ${r.status}: ${r.stderr}`);
  const expected = asPlayground(JSON.parse(r.stdout));
  assert.deepEqual(JSON.parse(sg.check(text, config)), expected, label);
  return expected;
}

function walk(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.'))
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((e) => {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) return walk(p);
      return /\.(ya?ml|json)$/.test(e.name) ? [p] : [];
    });
}

// Every fixture: default config, and the settings of its header for its policy.
let files = 0;
let runs = 0;
let findings = 0;
for (const file of walk(path.join(root, 'fixtures'))) {
  const rel = path.relative(root, file);
  const dir = path.basename(path.dirname(file));
  files++;
  runs++;
  findings += Number(compareFile(rel, '{}')) || 0;
  let header = null;
  try {
    header = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'))[0]?.toJSON();
  } catch {
    header = null;
  }
  if (policyNames.includes(dir) && header && typeof header === 'object' && !Array.isArray(header) && header.settings) {
    runs++;
    compareFile(rel, JSON.stringify({ policies: { [dir]: { settings: header.settings } } }));
  }
}
assert.ok(files > 0, 'no fixture found');

// `stackguard fix` on a file (relative to the repository) or on stdin (`-`): never writes with
// --diff; without it, stdin's fixed text comes back on stdout.
function cliFix(args, input) {
  const r = spawnSync(bin, ['fix', '--color', 'never', ...args], { cwd: root, input, encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.error) throw r.error;
  assert.ok(r.status === 0 || r.status === 1, `fix ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

// Every fixture: the module's Fix diff == `stackguard fix --diff FILE`.
let fixed = 0;
for (const file of walk(path.join(root, 'fixtures'))) {
  const rel = path.relative(root, file);
  const got = JSON.parse(sg.fix(fs.readFileSync(file, 'utf8'), '{}', rel));
  assert.equal(got.diff, cliFix(['--diff', '--config', tmpConfig('{}'), rel]), `fix --diff ${rel}`);
  if (got.changed) fixed++;
}
assert.ok(fixed > 10, `only ${fixed} fixture files need a fix`);
step(`module fix == stackguard fix --diff on ${files} fixture files (${fixed} with changes)`);
step(`module == CLI on ${files} fixture files (${runs} runs, ${findings} findings with default settings)`);
measured.fixtureFiles = files;

for (const ex of examples) compareText(`example ${ex.id}`, ex.text);
step(`module == CLI on the ${examples.length} examples`);

// Every policy's defaults (what the page prefills) are settings the policy accepts.
for (const p of policies) {
  sg.check('', JSON.stringify({ policies: { [p.name]: { settings: p.defaults } } }));
}
step(`defaults of ${policies.length} policies validate`);

let biggest = null;
if (fs.existsSync(corpus)) {
  biggest = walk(corpus)
    .map((f) => [f, fs.statSync(f).size])
    .sort((a, b) => b[1] - a[1])[0][0];
  const r = cli(['--config', tmpConfig('{}'), biggest]);
  const text = fs.readFileSync(biggest, 'utf8');
  const t0 = performance.now();
  const got = sg.check(text, '{}', biggest);
  measured.biggestCorpusFile = path.relative(root, biggest);
  measured.biggestCorpusBytes = Buffer.byteLength(text);
  measured.biggestCheckNodeMs = +(performance.now() - t0).toFixed(1);
  assert.deepEqual(JSON.parse(got), JSON.parse(r.stdout), 'biggest corpus file');
  step(`module == CLI on ${measured.biggestCorpusFile} (${measured.biggestCorpusBytes} bytes)`);
}

// ------------------------------------------------------------------ the page in chromium

// A manifest with findings for several policies; the value below is made up for the test and
// must never be shown.
const PLAINTEXT = 'hunter2-not-a-real-password';
const BAD_MANIFEST = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
        - name: api
          image: example.org/shop/api:1.4
          env:
            - name: DB_PASSWORD
              value: ${PLAINTEXT}
          securityContext:
            privileged: true
`;

// A manifest the mutating policies repair (comments and layout must survive the fix).
const FIXABLE = `# the API of the shop
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
        - name: api   # the only container
          image: example.org/shop/api:1.4
          securityContext:
            runAsNonRoot: true
          resources:
            limits: {cpu: 500m, memory: 256Mi}
`;

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['playground', '--port', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no URL from stackguard playground: ${buf}`)), 15000);
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /http:\/\/127\.0\.0\.1:\d+\//.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[0] });
      }
    });
    child.stderr.on('data', () => {});
    child.on('exit', (code) => reject(new Error(`stackguard playground exited ${code}: ${buf}`)));
  });
}

async function checksSoFar(page) {
  return page.evaluate(() => window.stackguardPlayground.state.checks);
}

async function waitForCheck(page, before, timeout = 30000) {
  await page.waitForFunction((n) => window.stackguardPlayground.state.checks > n, before, { timeout });
}

async function shownFindings(page) {
  return page.$$eval('#findings .finding', (els) =>
    els.map((e) => ({
      policy: e.querySelector('.policy').textContent,
      path: e.querySelector('.path') ? e.querySelector('.path').textContent : null,
      message: e.querySelector('.message').textContent,
      line: Number(e.querySelector('a.loc').dataset.line),
    })),
  );
}

function key(f) {
  return JSON.stringify([f.policy, f.path, f.message, f.line]);
}

async function typeBadManifest(page) {
  // A check still running in the worker (the page's first one) would be counted as this one.
  await page.waitForFunction(() => window.stackguardPlayground.state.report && !window.stackguardPlayground.state.busy, null, { timeout: 60000 });
  const before = await checksSoFar(page);
  await page.click('#editor');
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(BAD_MANIFEST);
  await waitForCheck(page, before);
  const shown = await shownFindings(page);
  const expected = compareText('bad manifest', BAD_MANIFEST);
  assert.ok(expected.findings.length > 0, 'the bad manifest has no finding');
  assert.deepEqual(shown.map(key).sort(), expected.findings.map(key).sort(), 'findings shown == CLI findings');
  assert.ok(
    shown.some((f) => f.policy === 'run-as-non-root' && /privileged$/.test(f.path ?? '') && /is privileged/.test(f.message)),
    'the privileged container is reported',
  );
  const head = await page.textContent('#findings .object-head');
  assert.match(head, /Deployment/);
  assert.match(head, /shop\/api/);
  const results = await page.textContent('#results-pane');
  assert.ok(!results.includes(PLAINTEXT), 'a secret value is shown in the results');
  const report = await page.evaluate(() => window.stackguardPlayground.state.report);
  assert.deepEqual(report, expected, 'page report == CLI report');
  return shown;
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stackguard-chromium-'));
const { child: server, url } = await startServer();
step(`stackguard playground serves ${url}`);
const browser = await chromium.launchPersistentContext(userDataDir, {
  executablePath: chromiumPath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1440, height: 900 },
});

try {
  // ---- served over HTTP
  const page = await browser.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  const t0 = Date.now();
  await page.goto(url);
  await page.evaluate(() => window.stackguardPlayground.ready);
  measured.servedReadyMs = Date.now() - t0;
  const engine = await page.evaluate(() => window.stackguardPlayground.state.engine);
  assert.equal(engine, 'streamed', 'served: the module is stream-compiled (application/wasm)');
  const panes = await page.$$eval('#policies textarea.settings', (els) => els.map((e) => [e.dataset.policy, e.value]));
  assert.deepEqual(
    panes.map(([name, text]) => [name, JSON.parse(text)]),
    policies.map((p) => [p.name, p.defaults]),
    'a settings pane per policy, prefilled with its defaults',
  );

  const shown = await typeBadManifest(page);
  step(`served page shows the CLI's ${shown.length} findings for a pasted bad manifest`);
  await page.screenshot({ path: path.join(out, 'served-bad-manifest.png') });

  // Settings pane: switching a policy off removes its findings; bad settings are reported.
  let before = await checksSoFar(page);
  await page.uncheck('input.enabled[data-policy="run-as-non-root"]');
  await waitForCheck(page, before);
  const off = await shownFindings(page);
  assert.ok(!off.some((f) => f.policy === 'run-as-non-root'), 'disabled policy still reports');
  assert.deepEqual(
    off.map(key).sort(),
    shown.filter((f) => f.policy !== 'run-as-non-root').map(key).sort(),
    'disabling one policy keeps the others',
  );
  before = await checksSoFar(page);
  await page.check('input.enabled[data-policy="run-as-non-root"]');
  await waitForCheck(page, before);
  before = await checksSoFar(page);
  await page.fill('textarea.settings[data-policy="run-as-non-root"]', '{"bogusKey": true}');
  await waitForCheck(page, before);
  assert.ok(await page.isVisible('#settings-error'), 'invalid settings are shown');
  assert.match(await page.textContent('#settings-error'), /run-as-non-root.*bogusKey/s);
  before = await checksSoFar(page);
  await page.click('details[data-policy="run-as-non-root"] button.reset');
  await waitForCheck(page, before);
  assert.ok(!(await page.isVisible('#settings-error')), 'defaults restored');
  step('settings pane: disable, invalid settings and reset work');

  // Fix: the diff of `stackguard fix --diff -`, then Apply puts in the text of `stackguard fix -`.
  before = await checksSoFar(page);
  await page.click('#editor');
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(FIXABLE);
  await waitForCheck(page, before);
  const config = await page.evaluate(() => JSON.stringify({ policies: {} }));
  await page.click('#fix');
  await page.waitForSelector('#fix-pane:not([hidden])');
  const shownDiff = await page.textContent('#fix-diff');
  const cliDiff = cliFix(['--diff', '--config', tmpConfig(config), '-'], FIXABLE).replaceAll('<stdin>', '<playground>');
  assert.match(cliDiff, /^\+\s+allowPrivilegeEscalation: false$/m);
  assert.equal(shownDiff, cliDiff, 'the diff shown == stackguard fix --diff');
  assert.equal(await page.$$eval('#fix-diff .add', (els) => els.length), cliDiff.split('\n').filter((l) => l.startsWith('+') && !l.startsWith('+++')).length);
  assert.match(await page.textContent('#fix-summary'), /1 object repaired/);
  await page.screenshot({ path: path.join(out, 'fix-diff.png') });
  before = await checksSoFar(page);
  await page.click('#fix-apply');
  await waitForCheck(page, before);
  const applied = await page.inputValue('#editor');
  assert.equal(applied, cliFix(['--config', tmpConfig(config), '-'], FIXABLE), 'Apply == stackguard fix -');
  assert.ok(await page.isHidden('#fix-pane'));
  const afterFix = await page.evaluate(() => window.stackguardPlayground.state.report);
  assert.deepEqual(afterFix, compareText('fixed manifest', applied, config));
  assert.ok(!afterFix.findings.some((f) => ['run-as-non-root', 'resource-limits'].includes(f.policy)), 'fixed policies still report');
  step(`Fix shows the ${cliDiff.split('\n').length - 1}-line diff of stackguard fix --diff; Apply gives stackguard fix's text`);

  // Bad YAML: line and column of the parser.
  before = await checksSoFar(page);
  await page.click('#examples button[data-example="bad-yaml"]');
  await waitForCheck(page, before);
  const badText = await page.inputValue('#editor');
  const expectedBad = compareText('bad yaml', badText);
  assert.ok(expectedBad.errors.length > 0, 'the bad YAML example parses');
  const { line } = expectedBad.errors[0];
  const column = Number(/\(column (\d+)\)$/.exec(expectedBad.errors[0].message)?.[1]);
  assert.ok(line > 0 && column > 0, `line and column in ${JSON.stringify(expectedBad.errors[0])}`);
  assert.equal((await page.textContent('#errors .error .loc')).trim(), `line ${line}, column ${column}`);
  await page.click('#errors .error a.loc');
  const cursor = await page.textContent('#cursor');
  assert.equal(cursor, `Ln ${line}, Col ${column}`, 'clicking the error moves the cursor there');
  await page.screenshot({ path: path.join(out, 'bad-yaml.png') });
  step(`bad YAML shows "line ${line}, column ${column}" and jumps there`);

  // The reference stack: equal to the CLI; time the check in the page.
  before = await checksSoFar(page);
  const clickMs = await page.evaluate(() => {
    const t = performance.now();
    document.querySelector('#examples button[data-example="reference-stack"]').click();
    return performance.now() - t;
  });
  await waitForCheck(page, before);
  const stackText = await page.inputValue('#editor');
  const stackReport = await page.evaluate(() => window.stackguardPlayground.state.report);
  assert.deepEqual(stackReport, compareText('reference stack in the page', stackText));
  const times = await page.evaluate(() => {
    const text = document.getElementById('editor').value;
    const ms = [];
    for (let i = 0; i < 60; i++) {
      const t = performance.now();
      wasm_bindgen.check(text, '{}');
      ms.push(performance.now() - t);
    }
    return ms.sort((a, b) => a - b);
  });
  measured.referenceStack = {
    objects: stackReport.summary.objects,
    findings: stackReport.summary.findings,
    checkMedianMs: +times[times.length >> 1].toFixed(2),
    checkP95Ms: +times[Math.floor(times.length * 0.95)].toFixed(2),
    clickToResultsMs: +clickMs.toFixed(1),
  };
  await page.screenshot({ path: path.join(out, 'reference-stack.png') });
  step(`reference stack: ${JSON.stringify(measured.referenceStack)}`);

  // The fixtures menu: a rejected fixture of every policy, each equal to the CLI.
  const fixtureIds = examples.filter((e) => e.group).map((e) => e.id);
  const perPolicy = [...new Map(examples.filter((e) => e.group).map((e) => [e.group, e.id])).values()];
  for (const id of perPolicy) {
    before = await checksSoFar(page);
    await page.selectOption('#fixtures', id);
    await waitForCheck(page, before);
    const got = await page.evaluate(() => window.stackguardPlayground.state.report);
    const text = await page.inputValue('#editor');
    assert.deepEqual(got, compareText(`fixture ${id} in the page`, text));
    assert.ok(got.summary.rejected > 0, `${id}: a rejected fixture shows no finding`);
  }
  step(`fixtures menu: ${fixtureIds.length} rejected fixtures; one per policy (${perPolicy.length}) checked in the page`);

  // Large input: the biggest corpus file. Typing is debounced (no check per keystroke).
  if (biggest) {
    const big = fs.readFileSync(biggest, 'utf8');
    before = await checksSoFar(page);
    await page.evaluate((t) => {
      const e = document.getElementById('editor');
      e.value = t;
      e.dispatchEvent(new Event('input'));
    }, big);
    await waitForCheck(page, before);
    const bigState = await page.evaluate(() => {
      const s = window.stackguardPlayground.state;
      return { check: s.lastCheckMs, render: s.lastRenderMs, report: s.report };
    });
    assert.deepEqual(bigState.report, asPlayground(JSON.parse(cli(['--config', tmpConfig('{}'), '-'], big).stdout)));
    await page.focus('#editor');
    await page.keyboard.press('Control+End');
    before = await checksSoFar(page);
    const typed = '# typing at the end of a 2 MB file\n';
    const keyMs = [];
    for (const ch of typed) {
      const t = Date.now();
      await page.keyboard.type(ch);
      keyMs.push(Date.now() - t);
    }
    await waitForCheck(page, before);
    await page.waitForTimeout(1200);
    const checks = (await checksSoFar(page)) - before;
    // One check after the pause is expected; a very slow keystroke may let one more through.
    assert.ok(checks <= 3, `typing ${typed.length} characters ran ${checks} checks: not debounced`);
    measured.largeInput = {
      bytes: Buffer.byteLength(big),
      objects: bigState.report.summary.objects,
      checkMs: +bigState.check.toFixed(1),
      renderMs: +bigState.render.toFixed(1),
      keystrokes: typed.length,
      checksWhileTyping: checks,
      keystrokeMeanMs: +(keyMs.reduce((a, b) => a + b, 0) / keyMs.length).toFixed(1),
      keystrokeMaxMs: Math.max(...keyMs),
    };
    step(`large input: ${JSON.stringify(measured.largeInput)}`);
  }
  // Hostile input (issue 11): the checks run in a Web Worker, so the page answers while a
  // costly check runs; the result (or the reader's bounded error) arrives afterwards.
  {
    const deployments = [];
    for (let size = 0, i = 0; size < 3 << 20; i++) {
      const env = Array.from({ length: 30 }, (_, k) => `        - name: SETTING_${k}\n          value: "v-${i}-${k}"\n`).join('');
      deployments.push(
        `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-${i}\n  namespace: shop\nspec:\n  replicas: 1\n` +
          `  selector:\n    matchLabels: {app: app-${i}}\n  template:\n    metadata:\n      labels: {app: app-${i}}\n` +
          `    spec:\n      containers:\n      - name: web\n        image: registry.example/app:1.${i}\n        env:\n${env}`,
      );
      size += deployments[i].length + 4;
    }
    const bigText = deployments.join('---\n');
    before = await checksSoFar(page);
    // (Filling a textarea with megabytes is slow by itself: only the time of the check counts.)
    await page.evaluate((t) => {
      document.getElementById('editor').value = t;
    }, bigText);
    await page.evaluate(() => {
      window.__gaps = { last: performance.now(), max: 0 };
      window.__gapTimer = setInterval(() => {
        const now = performance.now();
        window.__gaps.max = Math.max(window.__gaps.max, now - window.__gaps.last);
        window.__gaps.last = now;
      }, 10);
      window.stackguardPlayground.checkNow();
    });
    // While the worker checks 3 MiB, the main thread handles a click and reports the check busy.
    const during = await page.evaluate(() => {
      const busy = Boolean(window.stackguardPlayground.state.busy);
      document.querySelector('details[data-policy="resource-limits"] summary').click();
      return { busy, open: document.querySelector('details[data-policy="resource-limits"]').open };
    });
    assert.ok(during.busy, 'the page answered only after the check: it is not off the main thread');
    assert.equal(during.open, false, 'a click during the check was not handled');
    // (A click on the summary itself: its middle is the label of the policy's enabled checkbox.)
    await page.$eval('details[data-policy="resource-limits"] summary', (s) => s.click());
    await waitForCheck(page, before, 60000);
    const hostile = await page.evaluate(() => {
      clearInterval(window.__gapTimer);
      const s = window.stackguardPlayground.state;
      return { summary: s.report.summary, checkMs: s.lastCheckMs, maxGapMs: window.__gaps.max };
    });
    assert.equal(hostile.summary.objects, deployments.length, 'every Deployment of the 3 MiB input was checked');
    measured.hostileLarge = {
      bytes: Buffer.byteLength(bigText),
      objects: hostile.summary.objects,
      workerCheckMs: +hostile.checkMs.toFixed(0),
      mainThreadMaxGapMs: +hostile.maxGapMs.toFixed(0),
    };
    step(`hostile 3 MiB input checked in the worker, page responsive: ${JSON.stringify(measured.hostileLarge)}`);

    // Fix of the same 3 MiB runs in the worker too: the click returns at once.
    const fixStarted = await page.evaluate(() => {
      const t0 = performance.now();
      window.stackguardPlayground.fixNow();
      const busy = window.stackguardPlayground.state.busy;
      return { op: busy && busy.op, clickMs: performance.now() - t0 };
    });
    assert.equal(fixStarted.op, 'fix', 'Fix did not go to the worker');
    await page.waitForSelector('#fix-pane:not([hidden])', { timeout: 120000 });
    const fixedBig = await page.evaluate(() => window.stackguardPlayground.state.fix);
    assert.ok(fixedBig && fixedBig.changed && fixedBig.changes.length === deployments.length, 'every Deployment repaired');
    measured.hostileLargeFix = { clickMs: +fixStarted.clickMs.toFixed(1), objectsRepaired: fixedBig.changes.length };
    await page.click('#fix-close');
    step(`Fix of the 3 MiB input ran in the worker (the click took ${measured.hostileLargeFix.clickMs} ms)`);

    // A YAML alias bomb: reported as a bounded error, and the page keeps working after it.
    const bomb = ['apiVersion: v1', 'kind: ConfigMap', 'metadata: {name: bomb}', 'data:', '  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    let prev = 'a';
    for (const c of 'bcdefghi') {
      bomb.push(`  ${c}: &${c} [${Array(9).fill(`*${prev}`).join(', ')}]`);
      prev = c;
    }
    const bombText = `${bomb.join('\n')}\n`;
    before = await checksSoFar(page);
    await page.evaluate((t) => {
      document.getElementById('editor').value = t;
      window.stackguardPlayground.checkNow();
    }, bombText);
    await waitForCheck(page, before);
    const bombReport = await page.evaluate(() => window.stackguardPlayground.state.report);
    assert.deepEqual(bombReport, compareText('alias bomb in the page', bombText));
    assert.ok(bombReport.errors.length > 0, 'the alias bomb is reported');
    assert.ok(await page.isVisible('#errors .error'), 'the error is shown');
    await typeBadManifest(page);
    step(`alias bomb reported (${bombReport.errors[0].message}); the page checks the next input`);
  }
  assert.deepEqual(problems, [], 'console errors or warnings on the served page');
  await page.close();

  // ---- opened from disk
  const disk = await browser.newPage();
  const diskProblems = [];
  disk.on('pageerror', (e) => diskProblems.push(e.message));
  await disk.goto(`file://${path.join(web, 'index.html')}#example=broken-postgres`);
  await disk.evaluate(() => window.stackguardPlayground.ready);
  assert.equal(await disk.evaluate(() => window.stackguardPlayground.state.engine), 'inlined');
  // The example's first check runs in the worker: wait for its report.
  await disk.waitForFunction(() => window.stackguardPlayground.state.report, null, { timeout: 30000 });
  const diskExample = await disk.evaluate(() => ({
    text: document.getElementById('editor').value,
    report: window.stackguardPlayground.state.report,
  }));
  if (examples.some((e) => e.id === 'broken-postgres')) {
    assert.deepEqual(diskExample.report, compareText('broken-postgres from disk', diskExample.text));
  }
  await disk.screenshot({ path: path.join(out, 'file-example.png') });
  const diskShown = await typeBadManifest(disk);
  assert.deepEqual(diskShown, shown, 'file:// and http:// show the same findings');
  await disk.screenshot({ path: path.join(out, 'file-bad-manifest.png') });
  assert.deepEqual(diskProblems, []);
  step('page opened from disk (file://) works with the inlined module');
} finally {
  await browser.close();
  server.kill();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}

fs.writeFileSync(path.join(out, 'measurements.json'), `${JSON.stringify(measured, null, 2)}\n`);
step(`module ${measured.moduleBytes} bytes (${measured.moduleGzipBytes} gzip -9); measurements in target/playground/measurements.json`);
step('ok');
