// Browser half of bench/ui_bench.py (which starts both servers and passes BENCH_* variables).
import path from 'node:path';
import { gzipSync, constants } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { chromium } = await import(path.join(root, 'src/ui/node_modules/playwright-core/index.mjs'));
const E = process.env;
const START = +E.BENCH_START, END = +E.BENCH_END, STEP = +E.BENCH_STEP, SERIES = +E.BENCH_SERIES, POINTS = +E.BENCH_POINTS;
const ROUNDS = +E.BENCH_ROUNDS;

const pad = (n) => String(n).padStart(2, '0');
const utc = (sec, withSeconds) => {
  const d = new Date(sec * 1000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}` +
    (withSeconds ? `:${pad(d.getUTCSeconds())}` : '');
};
const rangeMin = Math.round((END - START) / 60);
const ONE = 'bench_gauge{series="s0000"}'; // the graph that weighs the bundle

// Each UI: its empty graph page, the URL that opens the bench graph, and "the graph is drawn".
const UIS = {
  strata: {
    empty: `${E.BENCH_STRATA}/graph`,
    graph: `${E.BENCH_STRATA}/graph?` + new URLSearchParams({ 'g0.expr': 'bench_gauge', 'g0.tab': '0', 'g0.range_input': `${(END - START)}s`,
      'g0.end_input': utc(END, true), 'g0.step_input': String(STEP) }),
    one: `${E.BENCH_STRATA}/graph?` + new URLSearchParams({ 'g0.expr': ONE, 'g0.tab': '0', 'g0.range_input': `${(END - START)}s`,
      'g0.end_input': utc(END, true), 'g0.step_input': String(STEP) }),
    drawn: (n) => document.querySelectorAll('.legend-item').length === n && !!document.querySelector('.chart canvas'),
    complete: () => !!document.querySelector('.editor .pce-textarea'), // the editor chunk is in
  },
  prometheus: {
    empty: `${E.BENCH_PROM}/classic/graph`,
    // The classic UI's end input has minute resolution: END is on a whole hour.
    graph: `${E.BENCH_PROM}/classic/graph?` + new URLSearchParams({ 'g0.expr': 'bench_gauge', 'g0.tab': '0', 'g0.range_input': `${rangeMin}m`,
      'g0.end_input': utc(END, false), 'g0.step_input': String(STEP) }),
    one: `${E.BENCH_PROM}/classic/graph?` + new URLSearchParams({ 'g0.expr': ONE, 'g0.tab': '0', 'g0.range_input': `${rangeMin}m`,
      'g0.end_input': utc(END, false), 'g0.step_input': String(STEP) }),
    drawn: (n) => document.querySelectorAll('.graph_area svg path').length >= n && document.querySelectorAll('.legend .line').length === n,
    complete: () => true,
  },
};

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});

async function newPage() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'UTC' });
  const page = await ctx.newPage();
  page.setDefaultTimeout(300000);
  return page;
}

// Bytes of every script, stylesheet and the HTML a page loads (each gzip -9): "initial", those the empty
// graph page requests before its load event (what it needs to be usable: Strata's editor chunk comes
// after it, its chart chunk with the first range query), and "all", those a graph of one series opened
// from a URL loads until it is drawn and the network is idle (every chunk: the UI's full weight).
async function assets(url, until) {
  const page = await newPage();
  const bodies = [];
  page.on('response', async (r) => {
    const t = r.request().resourceType();
    if (t === 'script' || t === 'stylesheet' || t === 'document') bodies.push([r.url(), r.body().catch(() => Buffer.alloc(0))]);
  });
  await page.goto(url, { waitUntil: 'load' });
  if (until) await page.waitForFunction(until, null, { polling: 100 });
  await page.waitForLoadState('networkidle');
  await page.waitForTimeout(500);
  await page.waitForLoadState('networkidle');
  const early = new Set(await page.evaluate(() => {
    const load = performance.getEntriesByType('navigation')[0].loadEventStart;
    return [performance.getEntriesByType('navigation')[0].name, ...performance.getEntriesByType('resource').filter((e) => e.startTime < load).map((e) => e.name)];
  }));
  const bs = await Promise.all(bodies.map(async ([url, b]) => [url, await b]));
  await page.context().close();
  return { bs, early };
}

async function bundle(ui) {
  const sum = (list) => ({ files: list.length, raw: list.reduce((n, [, b]) => n + b.length, 0),
    gzip: list.reduce((n, [, b]) => n + gzipSync(b, { level: constants.Z_BEST_COMPRESSION }).length, 0) });
  const empty = await assets(UIS[ui].empty);
  const one = await assets(UIS[ui].one, `(${UIS[ui].drawn.toString()})(1) && (${UIS[ui].complete.toString()})()`);
  return { ...sum(one.bs), initial: sum(empty.bs.filter(([url]) => empty.early.has(url))) };
}

async function load(ui) {
  const page = await newPage();
  await page.goto(UIS[ui].empty, { waitUntil: 'load' });
  const t = await page.evaluate(() => performance.getEntriesByType('navigation')[0].loadEventEnd);
  await page.context().close();
  return t;
}

async function graph(ui) {
  const page = await newPage();
  await page.goto(UIS[ui].graph, { waitUntil: 'commit' });
  await page.waitForFunction(
    ({ src, n }) => {
      if (!window.__drawn && new Function('n', `return (${src})(n)`)(n)) window.__drawn = performance.now();
      return !!window.__drawn;
    },
    { src: UIS[ui].drawn.toString(), n: SERIES },
    { polling: 'raf', timeout: 300000 }
  );
  const r = await page.evaluate(() => {
    const q = performance.getEntriesByType('resource').filter((e) => e.name.includes('query_range'));
    return { first: window.__drawn, queryEnd: q.length ? q[q.length - 1].responseEnd : null, queries: q.length };
  });
  await page.context().close();
  if (!r.queryEnd) throw new Error(`${ui}: no query_range request seen`);
  return { first: r.first, render: r.first - r.queryEnd };
}

const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const res = { strata: { load: [], first: [], render: [] }, prometheus: { load: [], first: [], render: [] } };
const sizes = { strata: await bundle('strata'), prometheus: await bundle('prometheus') };
for (let i = 0; i < ROUNDS; i++) {
  for (const ui of i % 2 ? ['prometheus', 'strata'] : ['strata', 'prometheus']) {
    res[ui].load.push(await load(ui));
    const g = await graph(ui);
    res[ui].first.push(g.first);
    res[ui].render.push(g.render);
    console.log(`round ${i + 1} ${ui}: load ${res[ui].load.at(-1).toFixed(0)} ms, first graph ${g.first.toFixed(0)} ms, render ${g.render.toFixed(0)} ms`);
  }
}
await browser.close();

const S = sizes.strata, P = sizes.prometheus;
const m = (ui, k) => med(res[ui][k]);
const desc = `${SERIES} series x ${POINTS} points, median of ${ROUNDS}, same chromium`;
console.log(`RESULT ui_bundle_gzip_strata ${S.gzip} bytes (${S.files} files, ${S.raw} raw)`);
console.log(`RESULT ui_bundle_gzip_prometheus ${P.gzip} bytes (${P.files} files, ${P.raw} raw; Prometheus 2.42 classic UI as Debian ships it)`);
console.log(`RESULT ui_bundle_gzip_ratio ${(S.gzip / P.gzip).toFixed(2)} x (strata / prometheus, every byte a graph page loads, all chunks; target <= 0.5)`);
console.log(`RESULT ui_bundle_initial_gzip_strata ${S.initial.gzip} bytes (${S.initial.files} files requested before the load event)`);
console.log(`RESULT ui_bundle_initial_gzip_prometheus ${P.initial.gzip} bytes (${P.initial.files} files requested before the load event)`);
console.log(`RESULT ui_bundle_initial_gzip_ratio ${(S.initial.gzip / P.initial.gzip).toFixed(2)} x (strata / prometheus, the empty graph page before its load event; target <= 0.5)`);
for (const k of ['load', 'first', 'render']) {
  console.log(`RESULT ui_${k}_strata_ms ${m('strata', k).toFixed(0)} ms (${desc})`);
  console.log(`RESULT ui_${k}_prometheus_ms ${m('prometheus', k).toFixed(0)} ms (${desc})`);
  console.log(`RESULT ui_${k}_ratio ${(m('strata', k) / m('prometheus', k)).toFixed(3)} x (strata / prometheus${k === 'render' ? '; target <= 1' : ''})`);
}
