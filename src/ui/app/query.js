// The query page (/graph): panels of expression + Table/Graph tabs, with Prometheus's URL state
// (g0.expr, g0.tab, g0.range_input, g0.end_input, g0.moment_input, g0.step_input, g0.stacked) and
// Thanos's (g0.deduplicate, g0.partial_response, g0.max_source_resolution), so alert links open here.
import { useState, useRef, useEffect } from 'preact/hooks';
import { html, api, useTenant, parseDuration, formatDuration, parseTime, formatTime, formatLabels, formatValue } from './util.js';
import { Editor, queryStarted, queryDone } from './editor.js';
import { Graph, loadUPlot } from './graph.js';

const DEFAULTS = { expr: '', tab: 0, range_input: '1h', end_input: '', moment_input: '', step_input: '', stacked: 0,
  deduplicate: 1, partial_response: 1, max_source_resolution: 'auto' };
const KEYS = Object.keys(DEFAULTS);
const RESOLUTIONS = [['auto', 'Auto downsampling'], ['0s', 'Only raw data'], ['5m', 'Max 5m downsampling'], ['1h', 'Max 1h downsampling']];

export function panelsFromURL(search) {
  const p = new URLSearchParams(search);
  const panels = [];
  for (let i = 0; p.has(`g${i}.expr`) || KEYS.some((k) => p.has(`g${i}.${k}`)); i++) {
    const o = { ...DEFAULTS };
    for (const k of KEYS) {
      if (!p.has(`g${i}.${k}`)) continue;
      const v = p.get(`g${i}.${k}`);
      o[k] = typeof DEFAULTS[k] === 'number' ? (parseInt(v, 10) ? 1 : 0) : v;
    }
    panels.push(o);
  }
  return panels.length ? panels : [{ ...DEFAULTS }];
}

export function panelsToURL(panels) {
  const p = new URLSearchParams();
  panels.forEach((o, i) => {
    for (const k of KEYS) {
      if (k === 'expr' || o[k] !== DEFAULTS[k] || k === 'tab' || k === 'range_input') p.set(`g${i}.${k}`, String(o[k]));
    }
  });
  return '?' + p.toString();
}

const flag = (v) => (v ? 'true' : 'false');

function TableView({ res, evalTime }) {
  if (!res) return html`<div class="empty">No data queried yet</div>`;
  const { resultType, result } = res.data;
  let rows;
  if (resultType === 'vector') {
    rows = result.map((s) => [formatLabels(s.metric), s.value[1]]);
  } else if (resultType === 'matrix') {
    rows = result.map((s) => [formatLabels(s.metric), html`${s.values.map((v) => html`<div>${v[1]} @${v[0]}</div>`)}`]);
  } else if (resultType === 'scalar') {
    rows = [['scalar', result[1]]];
  } else if (resultType === 'string') {
    rows = [['string', result[1]]];
  } else {
    rows = [];
  }
  return html`<div>
    <div class="evaltime">Evaluation time: ${formatTime(evalTime)}</div>
    ${rows.length === 0
      ? html`<div class="empty">Empty query result</div>`
      : html`<table class="data result-table"><tbody>
          ${rows.map((r) => html`<tr><td class="labels">${r[0]}</td><td class="value">${r[1]}</td></tr>`)}
        </tbody></table>`}
  </div>`;
}

function Panel({ opts, set, remove, canRemove, idx }) {
  const [state, setState] = useState({ loading: false, error: null, res: null, warnings: [], stats: null });
  const abort = useRef(null);
  const exprRef = useRef(opts.expr);
  const tenant = useTenant();

  const execute = async (expr = exprRef.current, o = opts) => {
    if (!expr.trim()) return;
    if (abort.current) abort.current.abort();
    const ctl = (abort.current = new AbortController());
    const common = { query: expr, dedup: flag(o.deduplicate), partial_response: flag(o.partial_response),
      max_source_resolution: o.max_source_resolution };
    const t0 = performance.now();
    const now = Date.now() / 1000;
    let params, path, meta;
    if (o.tab === 0) {
      loadUPlot(); // fetched while the query runs
      const range = parseDuration(o.range_input) || 3600;
      const end = parseTime(o.end_input) ?? now;
      const step = parseDuration(o.step_input) || parseFloat(o.step_input) || Math.max(Math.floor(range / 250), 1);
      params = { ...common, start: end - range, end, step };
      path = '/api/v1/query_range';
      meta = { start: end - range, end, step };
    } else {
      const t = parseTime(o.moment_input) ?? now;
      params = { ...common, time: t };
      path = '/api/v1/query';
      meta = { time: t };
    }
    setState((s) => ({ ...s, loading: true }));
    if (!inFlight.current) {
      inFlight.current = true;
      queryStarted();
    }
    try {
      const res = await api(path, params, { signal: ctl.signal, method: 'POST' });
      const ms = performance.now() - t0;
      const n = res.data.resultType === 'vector' || res.data.resultType === 'matrix' ? res.data.result.length : 1;
      setState({ loading: false, error: null, res, meta, tab: o.tab, warnings: res.warnings || [],
        stats: { ms, n, step: meta.step } });
    } catch (e) {
      if (e.name === 'AbortError') return;
      setState({ loading: false, error: e.message, res: null, warnings: [], stats: null });
    }
  };
  // A query counts as in flight (editor.js fetches its chunk only when none is) until its answer is
  // on the page: this runs after the commit, with the graph's own effects.
  const inFlight = useRef(false);
  const settle = () => {
    if (inFlight.current) {
      inFlight.current = false;
      queryDone();
    }
  };
  useEffect(() => {
    if (!state.loading) settle();
  }, [state]);
  useEffect(() => settle, []);

  // Run once on load when the URL carried an expression (alert links), and on every tab/option or tenant
  // change.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      if (opts.expr) execute(opts.expr, opts);
      return;
    }
    if (exprRef.current) execute(exprRef.current, opts);
  }, [opts.tab, opts.range_input, opts.end_input, opts.moment_input, opts.step_input, opts.deduplicate,
    opts.partial_response, opts.max_source_resolution, tenant]);

  const update = (patch) => set({ ...opts, ...patch });
  const stepRange = (dir) => {
    const r = parseDuration(opts.range_input) || 3600;
    const steps = [60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800, 1209600, 2419200, 7776000, 31536000];
    const next = dir > 0 ? steps.find((s) => s > r) || r : [...steps].reverse().find((s) => s < r) || r;
    update({ range_input: formatDuration(next) });
  };
  const shiftEnd = (dir) => {
    const r = parseDuration(opts.range_input) || 3600;
    const end = parseTime(opts.end_input) ?? Date.now() / 1000;
    update({ end_input: formatTime(Math.floor(end + (dir * r) / 2)) });
  };

  return html`<div class="panel" data-panel=${idx}>
    <div class="expr-row">
      <${Editor} value=${opts.expr} error=${state.error}
        onChange=${(v) => { exprRef.current = v; }}
        onExecute=${(v) => { exprRef.current = v; set({ ...opts, expr: v }); execute(v); }} />
      <button class="execute" onClick=${() => { set({ ...opts, expr: exprRef.current }); execute(); }}>
        ${state.loading ? 'Loading…' : 'Execute'}</button>
    </div>
    <div class="options">
      <label><input type="checkbox" class="opt-dedup" checked=${!!opts.deduplicate}
        onChange=${(e) => update({ deduplicate: e.target.checked ? 1 : 0 })} /> Use deduplication</label>
      <label><input type="checkbox" class="opt-partial" checked=${!!opts.partial_response}
        onChange=${(e) => update({ partial_response: e.target.checked ? 1 : 0 })} /> Use partial response</label>
      <select class="opt-resolution" value=${opts.max_source_resolution}
        onChange=${(e) => update({ max_source_resolution: e.target.value })}>
        ${RESOLUTIONS.map(([v, l]) => html`<option value=${v}>${l}</option>`)}
      </select>
      ${state.stats && html`<span class="stats">Load time: ${Math.round(state.stats.ms)}ms
        ${state.stats.step ? html` · Resolution: ${state.stats.step}s` : ''} · Result series: ${state.stats.n}</span>`}
      ${canRemove && html`<button class="remove" title="Remove panel" onClick=${remove}>✕</button>`}
    </div>
    ${state.error && html`<div class="alert error">Error executing query: ${state.error}</div>`}
    ${state.warnings.map((w) => html`<div class="alert warning">Warning: ${w}</div>`)}
    <div class="tabs">
      <button class=${'tab' + (opts.tab === 1 ? ' active' : '')} data-tab="table" onClick=${() => update({ tab: 1 })}>Table</button>
      <button class=${'tab' + (opts.tab === 0 ? ' active' : '')} data-tab="graph" onClick=${() => update({ tab: 0 })}>Graph</button>
    </div>
    <div class="tab-body">
      ${opts.tab === 1
        ? html`<div class="controls">
            <label>Evaluation time <input class="moment" placeholder="now (YYYY-MM-DD HH:MM:SS UTC)" value=${opts.moment_input}
              onChange=${(e) => update({ moment_input: e.target.value.trim() })} /></label>
            ${opts.moment_input && html`<button onClick=${() => update({ moment_input: '' })}>now</button>`}
          </div>
          <${TableView} res=${state.tab === 1 ? state.res : null} evalTime=${state.meta ? state.meta.time : Date.now() / 1000} />`
        : html`<div class="controls">
            <button onClick=${() => stepRange(-1)}>−</button>
            <input class="range" size="6" value=${opts.range_input}
              onChange=${(e) => parseDuration(e.target.value) && update({ range_input: e.target.value.trim() })} />
            <button onClick=${() => stepRange(1)}>+</button>
            <button onClick=${() => shiftEnd(-1)}>«</button>
            <input class="end" placeholder="End time (now)" value=${opts.end_input}
              onChange=${(e) => update({ end_input: e.target.value.trim() })} />
            <button onClick=${() => shiftEnd(1)}>»</button>
            ${opts.end_input && html`<button onClick=${() => update({ end_input: '' })}>now</button>`}
            <input class="step" size="10" placeholder="Res. (s)" value=${opts.step_input}
              onChange=${(e) => update({ step_input: e.target.value.trim() })} />
            <label><input type="checkbox" class="opt-stacked" checked=${!!opts.stacked}
              onChange=${(e) => update({ stacked: e.target.checked ? 1 : 0 })} /> Stacked</label>
          </div>
          ${state.tab === 0 && state.res
            ? html`<${Graph} res=${state.res} meta=${state.meta} stacked=${!!opts.stacked}
                onZoom=${(from, to) => update({ range_input: formatDuration(Math.max(Math.round(to - from), 1)), end_input: formatTime(Math.round(to)) })} />`
            : html`<div class="empty">No data queried yet</div>`}`}
    </div>
  </div>`;
}

export function QueryPage() {
  const [panels, setPanels] = useState(() => panelsFromURL(window.location.search));
  const keys = useRef(panels.map((_, i) => i));
  const nextKey = useRef(panels.length);
  useEffect(() => {
    const url = window.location.pathname + panelsToURL(panels);
    if (url !== window.location.pathname + window.location.search) window.history.replaceState(null, '', url);
  }, [panels]);
  const setAt = (i) => (o) => setPanels((ps) => ps.map((p, j) => (j === i ? o : p)));
  const removeAt = (i) => () => {
    keys.current.splice(i, 1);
    setPanels((ps) => ps.filter((_, j) => j !== i));
  };
  const add = () => {
    keys.current.push(nextKey.current++);
    setPanels((ps) => [...ps, { ...DEFAULTS }]);
  };
  return html`<div class="query-page">
    ${panels.map((o, i) => html`<${Panel} key=${keys.current[i]} idx=${i} opts=${o} set=${setAt(i)} remove=${removeAt(i)}
      canRemove=${panels.length > 1} />`)}
    <button class="add-panel" onClick=${add}>Add Panel</button>
  </div>`;
}

export { formatValue };
