// Browser steps of tests/integration/ui_browser.py (which starts the servers and passes their URLs in
// UI_* variables). Debian's chromium, driven by playwright-core from src/ui/node_modules. Prints one
// PASS/FAIL line per check; every page's console errors, page errors and failed requests fail it.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const { chromium } = await import(path.join(root, 'src/ui/node_modules/playwright-core/index.mjs'));

const env = process.env;
const Q = env.UI_QUERY;
const SHOTS = env.UI_SHOTS;
const START = +env.UI_START, END = +env.UI_END;
let failed = 0;

function result(name, ok, why = '') {
  if (ok) console.log(`PASS ui_browser:${name}`);
  else {
    failed++;
    console.log(`FAIL ui_browser:${name}: ${why}`);
  }
}

async function check(name, fn) {
  try {
    await fn();
    result(name, true);
  } catch (e) {
    result(name, false, String(e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e));
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// Polls cond (a function of this process's state) until it holds, or throws after 15 s.
async function wait(cond) {
  for (const t0 = Date.now(); !cond(); await new Promise((r) => setTimeout(r, 50)))
    if (Date.now() - t0 > 15000) throw new Error(`timed out waiting for ${cond}`);
}

function eq(a, b, what) {
  const ja = JSON.stringify(a), jb = JSON.stringify(b);
  if (ja !== jb) throw new Error(`${what}: got ${ja.slice(0, 400)} want ${jb.slice(0, 400)}`);
}

async function apiGet(base, p, params, headers = {}) {
  const r = await fetch(`${base}${p}?${new URLSearchParams(params)}`, { headers });
  return r.json();
}

// Prometheus UI's label formatting (the UI must show exactly this).
function fmtLabels(m) {
  const name = m.__name__ || '';
  const rest = Object.keys(m).filter((k) => k !== '__name__').sort().map((k) => `${k}=${JSON.stringify(m[k])}`);
  return rest.length || !name ? `${name}{${rest.join(', ')}}` : name;
}

const pad = (n) => String(n).padStart(2, '0');
function fmtTime(sec) {
  const d = new Date(sec * 1000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
context.setDefaultTimeout(15000);

// A page whose problems (console errors, uncaught errors, failed requests, HTTP errors other than the
// ones a step expects) are collected; done() fails the step if there were any.
async function open(url, expectStatus = []) {
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => m.type() === 'error' && !expectStatus.some((c) => m.text().includes(`status of ${c}`)) &&
    problems.push('console: ' + m.text()));
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('requestfailed', (r) => !/aborted/i.test(r.failure()?.errorText || '') && problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400 && !expectStatus.includes(r.status())) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  await page.goto(url);
  page.problems = problems;
  return page;
}

async function done(page, shot) {
  if (shot) await page.screenshot({ path: path.join(SHOTS, shot + '.png'), fullPage: true });
  const p = page.problems;
  await page.close();
  assert(p.length === 0, p.join('; '));
}

const tableRows = (page) =>
  page.$$eval('.result-table tr', (trs) => trs.map((tr) => [tr.querySelector('.labels').textContent, tr.querySelector('.value').textContent]));

const MOMENT = END - 1200;
const EDITOR = '.editor textarea.pce-textarea'; // the expression editor's text area (code_editor.js)

// ---- query page: typing with completion, table equals the API
await check('table_with_autocompletion', async () => {
  const page = await open(`${Q}/graph`);
  await page.click('button[data-tab="table"]');
  await page.fill('input.moment', fmtTime(MOMENT));
  await page.press('input.moment', 'Enter');
  await page.click(EDITOR);
  await page.keyboard.type('ui_te');
  const opt = page.locator('.pce-ac-tooltip li', { hasText: 'ui_temp' }).first();
  await opt.waitFor();
  await page.keyboard.press('Enter'); // accept the completion
  eq(await page.inputValue(EDITOR), 'ui_temp', 'editor text after completion');
  await page.keyboard.press('Enter'); // run
  await page.waitForSelector('.result-table tr');
  const api = await apiGet(Q, '/api/v1/query', { query: 'ui_temp', time: MOMENT });
  const want = api.data.result.map((s) => [fmtLabels(s.metric), s.value[1]]);
  assert(want.length >= 5, `API returned ${want.length} series`);
  eq(await tableRows(page), want, 'table rows');
  const evalText = await page.textContent('.evaltime');
  assert(evalText.includes(fmtTime(MOMENT)), `evaluation time shown: ${evalText}`);
  await done(page, 'query-table');
});

// ---- the editor chunk comes after the page's load event; until it does, the plain text area takes the
// expression and runs it, and the editor then takes over the text, the cursor and the focus
await check('query_before_editor_chunk', async () => {
  const CHUNK = /\/static\/code_editor-[^/]*\.js$/;
  let release;
  const gate = new Promise((r) => (release = r));
  await context.route(CHUNK, async (route) => {
    await gate;
    await route.continue();
  });
  try {
    const page = await open(`${Q}/graph`);
    await page.click('button[data-tab="table"]');
    await page.fill('input.moment', fmtTime(MOMENT));
    await page.press('input.moment', 'Enter');
    await page.click('.editor textarea.editor-plain');
    await page.keyboard.type('ui_temp');
    await page.keyboard.press('Enter');
    await page.waitForSelector('.result-table tr');
    const api = await apiGet(Q, '/api/v1/query', { query: 'ui_temp', time: MOMENT });
    eq(await tableRows(page), api.data.result.map((s) => [fmtLabels(s.metric), s.value[1]]), 'table rows');
    assert((await page.$(EDITOR)) === null, 'the editor is there although its chunk is held back');
    release();
    await page.waitForSelector(EDITOR);
    eq(await page.inputValue(EDITOR), 'ui_temp', 'the editor takes over the text');
    assert(await page.evaluate(() => !!document.activeElement.closest('.prism-code-editor')), 'the editor takes over the focus');
    eq(await page.$eval(EDITOR, (t) => t.selectionStart), 'ui_temp'.length, 'the editor takes over the cursor');
    const [loadEnd, chunkStart] = await page.evaluate(() => [performance.getEntriesByType('navigation')[0].loadEventEnd,
      performance.getEntriesByType('resource').find((e) => /code_editor-/.test(e.name))?.startTime]);
    assert(chunkStart >= loadEnd, `editor chunk requested at ${chunkStart} ms, before the load event (${loadEnd} ms)`);
    await done(page, null);
  } finally {
    release();
    await context.unroute(CHUNK);
  }
});

// ---- the editor: label name and value completion from the API, bracket closing, Shift+Enter, undo
await check('editor_label_completion_keys', async () => {
  const page = await open(`${Q}/graph`);
  await page.click('button[data-tab="table"]');
  await page.fill('input.moment', fmtTime(MOMENT));
  await page.press('input.moment', 'Enter');
  await page.click(EDITOR);
  await page.keyboard.type('ui_temp{clu');
  await page.locator('.pce-ac-tooltip li', { hasText: 'cluster' }).first().waitFor();
  await page.keyboard.press('Enter');
  eq(await page.inputValue(EDITOR), 'ui_temp{cluster}', 'label name completed, brace closed');
  await page.keyboard.type('=');
  const api = await apiGet(Q, '/api/v1/label/cluster/values', { 'match[]': 'ui_temp' });
  const want = api.data.map((v) => JSON.stringify(v)).sort();
  await page.locator('.pce-ac-tooltip li').first().waitFor();
  // (the list's 13 rows are reused: those past aria-setsize hold an earlier list's items)
  const got = await page.$$eval('.pce-ac-tooltip li', (ls) => ls.slice(0, +ls[0].getAttribute('aria-setsize'))
    .map((l) => l.querySelector('.pce-ac-label').textContent));
  assert(got.length > 0 && got.every((g) => want.includes(g)), `offered ${got}, the API's values ${want}`);
  assert(got.includes('"ui"'), `"ui" offered: ${got}`);
  await page.keyboard.press('ArrowDown'); // keyboard navigation of the list
  await page.keyboard.press('ArrowUp');
  while ((await page.getAttribute('.pce-ac-tooltip li[aria-selected]', 'aria-posinset')) !== String(got.indexOf('"ui"')))
    await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  eq(await page.inputValue(EDITOR), 'ui_temp{cluster="ui"}', 'label value completed');
  await page.keyboard.press('End');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('> 0');
  eq(await page.inputValue(EDITOR), 'ui_temp{cluster="ui"}\n> 0', 'Shift+Enter inserts a newline');
  await page.keyboard.press('Control+z');
  assert(!(await page.inputValue(EDITOR)).endsWith('> 0'), 'Ctrl+Z undoes');
  await page.keyboard.press('Control+Shift+z');
  eq(await page.inputValue(EDITOR), 'ui_temp{cluster="ui"}\n> 0', 'Ctrl+Shift+Z redoes');
  await page.keyboard.press('Enter'); // runs, multi-line
  await page.waitForSelector('.result-table tr');
  await done(page, 'query-editor');
});

// ---- graph: one legend entry per series, a drawn canvas, hover value at a known timestamp
const RANGE_EXPR = 'ui_temp{cluster="ui"}';
await check('graph_legend_canvas_hover', async () => {
  const qs = new URLSearchParams({ 'g0.expr': RANGE_EXPR, 'g0.tab': '0', 'g0.range_input': '1h', 'g0.end_input': fmtTime(END),
    'g0.step_input': '60' });
  const page = await open(`${Q}/graph?${qs}`);
  await page.waitForSelector('.legend-item');
  const api = await apiGet(Q, '/api/v1/query_range', { query: RANGE_EXPR, start: END - 3600, end: END, step: 60 });
  const want = api.data.result.map((s) => fmtLabels(s.metric));
  eq(await page.$$eval('.legend-labels', (els) => els.map((e) => e.textContent)), want, 'legend entries');
  // Not blank: many non-background pixels on the series canvas.
  const painted = await page.$eval('.chart canvas', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
  assert(painted > 2000, `canvas has only ${painted} painted pixels`);
  // Hover the middle of the plot: the tooltip names a time, a series and its value; the API agrees.
  const box = await page.locator('.chart .u-over').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForSelector('.tooltip');
  const tip = {
    time: await page.textContent('.tip-time'),
    labels: await page.textContent('.tip-labels'),
    value: (await page.textContent('.tip-value')).replace('value: ', ''),
  };
  const series = api.data.result.find((s) => fmtLabels(s.metric) === tip.labels);
  assert(series, `tooltip series ${tip.labels} not in the API answer`);
  const point = series.values.find((v) => fmtTime(v[0]) === tip.time);
  assert(point, `no API point at ${tip.time}`);
  eq(tip.value, String(parseFloat(point[1])), `value at ${tip.time}`);
  await done(page, 'query-graph');
});

// ---- dedup switch changes the number of series for HA data
await check('dedup_switch', async () => {
  const qs = new URLSearchParams({ 'g0.expr': 'ui_requests_total', 'g0.tab': '1', 'g0.moment_input': fmtTime(MOMENT) });
  const page = await open(`${Q}/graph?${qs}`);
  await page.waitForSelector('.result-table tr');
  const on = await tableRows(page);
  const apiOn = await apiGet(Q, '/api/v1/query', { query: 'ui_requests_total', time: MOMENT, dedup: 'true' });
  eq(on.length, apiOn.data.result.length, 'series with dedup');
  eq(on.length, 3, 'series with dedup');
  await page.uncheck('input.opt-dedup');
  await page.waitForFunction(() => document.querySelectorAll('.result-table tr').length === 6);
  const off = await tableRows(page);
  const apiOff = await apiGet(Q, '/api/v1/query', { query: 'ui_requests_total', time: MOMENT, dedup: 'false' });
  eq(off, apiOff.data.result.map((s) => [fmtLabels(s.metric), s.value[1]]), 'rows without dedup');
  assert(new URL(page.url()).searchParams.get('g0.deduplicate') === '0', 'URL carries g0.deduplicate=0');
  await done(page, 'query-dedup-off');
});

// ---- the parser's error, shown and marked at its position
await check('invalid_expression_error', async () => {
  const page = await open(`${Q}/graph`, [400]);
  await page.click('button[data-tab="table"]');
  await page.click(EDITOR);
  await page.keyboard.type('sum(ui_temp) / on');
  await page.keyboard.press('Escape');
  await page.click('button.execute');
  await page.waitForSelector('.alert.error');
  const msg = await page.textContent('.alert.error');
  const api = await apiGet(Q, '/api/v1/query', { query: 'sum(ui_temp) / on' });
  assert(api.status === 'error' && api.error, 'API answers an error');
  eq(msg, 'Error executing query: ' + api.error, 'error message');
  // the querier's error is marked at the column it names
  const col = +/1:(\d+): parse error/.exec(api.error)[1];
  const text = 'sum(ui_temp) / on';
  eq(await page.textContent('.editor .lint-error'), text[Math.min(col, text.length) - 1], `marked character (column ${col})`);
  // a syntax error is marked as it is typed, before any query runs (lezer-promql in the page)
  await page.fill(EDITOR, '');
  await page.click(EDITOR);
  await page.keyboard.type('ui_temp +');
  await page.keyboard.press('Escape');
  await page.waitForSelector('.editor .lint-error');
  eq(await page.textContent('.editor .lint-error'), '+', 'syntax error marked where the text stops being PromQL');
  await page.keyboard.type(' 1');
  await page.waitForSelector('.editor .lint-error', { state: 'detached' });
  await done(page, 'query-error');
});

// ---- URL state round-trips: a g0.* link opens the same panel, and the page keeps it in the URL
await check('url_state_roundtrip', async () => {
  const qs = new URLSearchParams({ 'g0.expr': 'sum by (sensor) (ui_temp)', 'g0.tab': '1', 'g0.moment_input': fmtTime(MOMENT),
    'g1.expr': RANGE_EXPR, 'g1.tab': '0', 'g1.range_input': '30m', 'g1.end_input': fmtTime(END), 'g1.stacked': '1' });
  const page = await open(`${Q}/graph?${qs}`);
  await page.waitForSelector('.panel[data-panel="0"] .result-table tr');
  await page.waitForSelector('.panel[data-panel="1"] .legend-item');
  const api = await apiGet(Q, '/api/v1/query', { query: 'sum by (sensor) (ui_temp)', time: MOMENT });
  eq(await page.$$eval('.panel[data-panel="0"] .result-table tr', (t) => t.length), api.data.result.length, 'panel 0 rows');
  const editor = await page.inputValue(`.panel[data-panel="1"] ${EDITOR}`);
  eq(editor, RANGE_EXPR, 'panel 1 expression');
  eq(await page.inputValue('.panel[data-panel="1"] input.range'), '30m', 'panel 1 range');
  assert(await page.isChecked('.panel[data-panel="1"] input.opt-stacked'), 'panel 1 stacked');
  const u = new URL(page.url()).searchParams;
  for (const [k, v] of qs) eq(u.get(k), v, 'URL ' + k);
  // Reopening the page's own URL gives the same table.
  const rows0 = await page.$$eval('.panel[data-panel="0"] .result-table tr', (t) => t.map((r) => r.textContent));
  const again = await open(page.url());
  await again.waitForSelector('.panel[data-panel="0"] .result-table tr');
  eq(await again.$$eval('.panel[data-panel="0"] .result-table tr', (t) => t.map((r) => r.textContent)), rows0, 'rows after reopening');
  await done(again, null);
  await done(page, 'query-two-panels');
});

// ---- max_source_resolution against downsampled data: bucket D's raw block (0/100 alternating every
// minute) and the 5m block strata compact made of it give different answers; the page shows each as the
// API gives it and keeps the choice in the URL
await check('max_source_resolution_downsampled', async () => {
  const T = +env.UI_DS_START + 30 * 3600 + 150;
  const rows = (res) => apiGet(Q, '/api/v1/query', { query: 'ui_ds', time: T, max_source_resolution: res })
    .then((a) => a.data.result.map((s) => [fmtLabels(s.metric), s.value[1]]));
  const raw = await rows('0s'), ds = await rows('5m');
  eq(raw.length, 2, 'raw series');
  assert(JSON.stringify(raw) !== JSON.stringify(ds), `5m answer equals raw: ${JSON.stringify(ds)}`);
  const qs = new URLSearchParams({ 'g0.expr': 'ui_ds', 'g0.tab': '1', 'g0.moment_input': fmtTime(T), 'g0.max_source_resolution': '0s' });
  const page = await open(`${Q}/graph?${qs}`);
  await page.waitForSelector('.result-table tr');
  eq(await tableRows(page), raw, 'rows, only raw data');
  await page.selectOption('select.opt-resolution', '5m');
  await page.waitForFunction((want) => [...document.querySelectorAll('.result-table .value')].map((v) => v.textContent).join() === want,
    ds.map((r) => r[1]).join());
  eq(await tableRows(page), ds, 'rows, max 5m downsampling');
  eq(new URL(page.url()).searchParams.get('g0.max_source_resolution'), '5m', 'URL g0.max_source_resolution');
  await done(page, 'query-downsampled');
});

// ---- warnings: the prefixed querier has an endpoint nobody listens on; with partial response the
// answer carries a warning naming it (shown above the rows), without it the query fails
await check('partial_response_warning', async () => {
  const P = env.UI_QUERY_PREFIX_HOST + '/strata';
  // The endpoint's error names the time to its next connection attempt, which moves between two asks.
  const stable = (t) => t.replace(/ \(reconnecting in \d+ ms\)/g, '');
  const qs = new URLSearchParams({ 'g0.expr': 'ui_temp', 'g0.tab': '1', 'g0.moment_input': fmtTime(MOMENT) });
  const page = await open(`${P}/graph?${qs}`, [500, 503]);
  await page.waitForSelector('.result-table tr');
  const api = await apiGet(P, '/api/v1/query', { query: 'ui_temp', time: MOMENT });
  assert(api.warnings && api.warnings.length === 1, `API warnings: ${JSON.stringify(api.warnings)}`);
  await page.waitForSelector('.alert.warning');
  eq((await page.$$eval('.alert.warning', (w) => w.map((x) => x.textContent))).map(stable), api.warnings.map((w) => stable('Warning: ' + w)),
    'warnings shown');
  eq(await tableRows(page), api.data.result.map((s) => [fmtLabels(s.metric), s.value[1]]), 'rows next to the warning');
  await page.uncheck('input.opt-partial');
  await page.waitForSelector('.alert.error');
  const strict = await apiGet(P, '/api/v1/query', { query: 'ui_temp', time: MOMENT, partial_response: 'false' });
  eq(strict.status, 'error', 'without partial response');
  eq(stable(await page.textContent('.alert.error')), stable('Error executing query: ' + strict.error), 'error shown');
  eq(await page.$$('.alert.warning').then((w) => w.length), 0, 'no warning with the error');
  await done(page, 'query-warning');
});

// ---- stores, status, flags, rules, alerts
await check('stores_page', async () => {
  const page = await open(`${Q}/stores`);
  await page.waitForSelector('.store-row');
  const api = await apiGet(Q, '/api/v1/stores', {});
  const want = Object.values(api.data).flat().map((s) => [s.name, s.labelSets.map(fmtLabels).join('')]).sort();
  const got = (await page.$$eval('.store-row', (rs) => rs.map((r) => [r.querySelector('.store-name').textContent,
    [...r.querySelectorAll('.labelset')].map((l) => l.textContent).join('')]))).sort();
  eq(got, want, 'stores');
  eq(got.map((g) => g[0]), JSON.parse(env.UI_STORES).sort(), 'every endpoint listed');
  // A page without a graph never fetches the chart chunk (nor, with no query, anything but the editor).
  const fetched = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname));
  assert(!fetched.some((p) => /uPlot/.test(p)), `the stores page fetched the chart chunk: ${fetched}`);
  await done(page, 'stores');
});

await check('status_flags_rules_alerts_pages', async () => {
  let page = await open(`${Q}/status`);
  await page.waitForSelector('.buildinfo');
  assert((await page.textContent('.buildinfo')).includes('version'), 'build info shown');
  await done(page, 'status');
  page = await open(`${Q}/flags`);
  await page.waitForSelector('table.flags');
  assert((await page.textContent('table.flags')).includes('--query.replica-label'), 'flags shown');
  await done(page, 'flags');
  // the ruler's group, served through the querier's Rules API
  page = await open(`${Q}/rules`);
  await page.waitForSelector('.rule-group');
  const rules = await page.textContent('.rule-group');
  for (const want of ['ui-example', 'record: ruler:example:one', 'alert: UIExampleFiring', 'expr: vector(1) > 0', 'summary: value is {{ $value }}'])
    assert(rules.includes(want), `rules page shows ${want}: ${rules}`);
  assert((await page.$$('.rule-ok')).length === 3, 'three healthy rules');
  await done(page, 'rules');
  page = await open(`${Q}/alerts`);
  await page.waitForSelector('.alert-rule.alert-firing table.alerts');
  const firing = await page.textContent('.alert-rule.alert-firing');
  assert(firing.includes('UIExampleFiring') && firing.includes('severity="info"') && firing.includes('value is 1'),
    `firing alert with its labels and annotation: ${firing}`);
  assert((await page.textContent('.alert-counts')).includes('inactive (1)'), 'the quiet rule counted inactive');
  await page.click('.alert-filters .state-inactive input');
  assert((await page.$$('.alert-rule.alert-inactive')).length === 0, 'inactive rules hidden by the filter');
  await done(page, 'alerts');
});

// ---- under --web.route-prefix=/strata: "/" leads to /strata/graph, completion and the query use the
// prefixed API, the navigation links carry the prefix (any unprefixed request would fail the step: 404)
await check('route_prefix', async () => {
  const H = env.UI_QUERY_PREFIX_HOST, P = H + '/strata';
  const page = await open(`${H}/`);
  eq(new URL(page.url()).pathname, '/strata/graph', 'where / leads');
  await page.click('button[data-tab="table"]');
  await page.fill('input.moment', fmtTime(MOMENT));
  await page.press('input.moment', 'Enter');
  await page.click(EDITOR);
  await page.keyboard.type('ui_te');
  await page.locator('.pce-ac-tooltip li', { hasText: 'ui_temp' }).first().waitFor();
  await page.keyboard.press('Enter');
  await page.keyboard.press('Enter');
  await page.waitForSelector('.result-table tr');
  const api = await apiGet(P, '/api/v1/query', { query: 'ui_temp', time: MOMENT });
  eq(await tableRows(page), api.data.result.map((s) => [fmtLabels(s.metric), s.value[1]]), 'table rows');
  eq(await page.getAttribute('a.nav-link:has-text("Stores")', 'href'), '/strata/stores', 'Stores link');
  await page.click('a.nav-link:has-text("Stores")');
  await page.waitForSelector('.store-row');
  eq(new URL(page.url()).pathname, '/strata/stores', 'Stores page URL');
  await done(page, 'route-prefix');
});

// ---- tenancy: a querier with --query.enforce-tenancy and --query.tenant-header=X-Scope-OrgID over three
// tenants' blocks. The navbar's tenant field (empty: the default tenant, its placeholder) is sent in that
// header with every API call — queries, completion lists, the other pages — so the page shows only that
// tenant's series and completes only its names and values; it is kept across reloads, and a change
// re-runs the panel's query. A querier without enforcement has no field.
await check('tenant_field', async () => {
  const T = env.UI_QUERY_TENANCY;
  const HDR = 'x-scope-orgid';
  const sent = []; // [path, tenant header or null] of every API request to the tenancy querier
  const onReq = (r) => {
    const u = new URL(r.url());
    if (u.origin === T && u.pathname.startsWith('/api/')) sent.push([u.pathname, r.headers()[HDR] ?? null]);
  };
  context.on('request', onReq);
  try {
    const rowsAs = async (tenant) => {
      const a = await apiGet(T, '/api/v1/query', { query: 'ui_tenant_up', time: MOMENT }, tenant ? { 'X-Scope-OrgID': tenant } : {});
      return a.data.result.map((s) => [fmtLabels(s.metric), s.value[1]]);
    };
    const want = { '': await rowsAs(''), 'team-a': await rowsAs('team-a'), 'team-b': await rowsAs('team-b') };
    const jobs = (rows) => rows.map((r) => /job="(\w+)"/.exec(r[0])?.[1]).sort();
    eq(jobs(want['']), ['d1'], 'API, default tenant');
    eq(jobs(want['team-a']), ['a1', 'a2'], 'API, team-a');
    eq(jobs(want['team-b']), ['b1'], 'API, team-b');
    const showing = (page, rows) => page.waitForFunction((w) => JSON.stringify([...document.querySelectorAll('.result-table tr')]
      .map((tr) => [tr.querySelector('.labels').textContent, tr.querySelector('.value').textContent])) === w, JSON.stringify(rows));
    // what the completion list offers for text typed into an emptied editor, once it offers `expect`
    // (the API's list arrives after the text is typed; the list is then completed again)
    const offered = async (page, text, expect) => {
      await page.fill(EDITOR, '');
      await page.click(EDITOR);
      await page.keyboard.type(text);
      const list = () => {
        const ls = [...document.querySelectorAll('.pce-ac-tooltip li')];
        return ls.slice(0, +(ls[0]?.getAttribute('aria-setsize') || 0)).map((l) => l.querySelector('.pce-ac-label').textContent);
      };
      await page.waitForFunction(`(${list})().includes(${JSON.stringify(expect)})`);
      const got = await page.evaluate(list);
      await page.keyboard.press('Escape');
      return got;
    };
    const setTenant = async (page, t) => {
      await page.fill('input.tenant-input', t);
      await page.press('input.tenant-input', 'Enter');
    };

    const qs = new URLSearchParams({ 'g0.expr': 'ui_tenant_up', 'g0.tab': '1', 'g0.moment_input': fmtTime(MOMENT) });
    let page = await open(`${T}/graph?${qs}`);
    eq(await page.getAttribute('input.tenant-input', 'placeholder'), 'default-tenant', 'placeholder');
    eq(await page.inputValue('input.tenant-input'), '', 'no tenant given yet');
    await showing(page, want['']);
    assert(sent.length && sent.every(([, h]) => h === null), `a tenant header sent before one was given: ${JSON.stringify(sent)}`);

    // team-a: its rows, then (after a reload: kept) its metric names and label values
    await setTenant(page, 'team-a');
    await showing(page, want['team-a']);
    await page.reload();
    eq(await page.inputValue('input.tenant-input'), 'team-a', 'tenant after a reload');
    await showing(page, want['team-a']);
    await page.waitForSelector(EDITOR);
    let names = await offered(page, 'ui_only', 'ui_only_team_a');
    assert(names.includes('ui_only_team_a') && !names.includes('ui_only_team_b'), `team-a's metric names: ${names}`);
    let values = await offered(page, 'ui_tenant_up{job="', 'a1');
    eq(values.sort(), ['a1', 'a2'], "team-a's job values");
    const mark = sent.length;

    // team-b on the same page: the editor's text re-runs as team-b, the completion lists are team-b's
    await page.fill(EDITOR, 'ui_tenant_up');
    await setTenant(page, 'team-b');
    await showing(page, want['team-b']);
    names = await offered(page, 'ui_only', 'ui_only_team_b');
    assert(names.includes('ui_only_team_b') && !names.includes('ui_only_team_a'), `team-b's metric names: ${names}`);
    values = await offered(page, 'ui_tenant_up{job="', 'b1');
    eq(values, ['b1'], "team-b's job values");
    const asB = sent.slice(mark);
    for (const p of ['/api/v1/query', '/api/v1/label/__name__/values', '/api/v1/label/job/values'])
      assert(asB.some(([q]) => q === p), `no ${p} request as team-b: ${JSON.stringify(asB)}`);
    assert(asB.every(([, h]) => h === 'team-b'), `requests after choosing team-b: ${JSON.stringify(asB)}`);
    assert(sent.slice(0, mark).filter(([, h]) => h !== null).every(([, h]) => h === 'team-a'), 'requests as team-a');
    await done(page, 'query-tenant');

    // the other pages call the API as the tenant too
    const before = sent.length;
    page = await open(`${T}/stores`);
    await page.waitForSelector('.store-row');
    eq(await page.inputValue('input.tenant-input'), 'team-b', 'tenant on the stores page');
    const stores = () => sent.slice(before).filter(([p]) => p === '/api/v1/stores').map(([, h]) => h);
    eq(stores(), ['team-b'], 'stores page requests');
    await setTenant(page, 'team-a'); // asks again as team-a
    await page.waitForFunction(() => document.querySelectorAll('.store-row').length > 0);
    await wait(() => stores().length === 2);
    eq(stores(), ['team-b', 'team-a'], 'stores page requests after choosing team-a');
    // emptied: the default tenant again, no header, and nothing kept
    await page.goto(`${T}/graph?${qs}`);
    await showing(page, want['team-a']);
    await setTenant(page, '');
    await showing(page, want['']);
    eq(await page.evaluate(() => localStorage.getItem('strata.tenant')), null, 'stored tenant once emptied');
    await done(page, null);

    // no enforcement, no field
    page = await open(`${Q}/graph`);
    await page.waitForSelector('nav.navbar');
    eq(await page.$$('input.tenant-input').then((l) => l.length), 0, 'tenant fields without --query.enforce-tenancy');
    await done(page, null);
  } finally {
    context.off('request', onReq);
  }
});

if (env.UI_BUCKET_WEB) {
  const { blockViewerChecks } = await import('./ui_blocks.mjs');
  await blockViewerChecks({ check, assert, eq, open, done, apiGet, env });
}

await browser.close();
process.exit(failed ? 1 : 0);
