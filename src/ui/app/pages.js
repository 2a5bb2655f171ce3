// Stores, Status (build info), Flags, Rules and Alerts pages of `strata query`.
import { useEffect, useState } from 'preact/hooks';
import { html, api, formatLabels, formatTime } from './util.js';

// Loads an API path once; renders loading / error / children(data).
export function useAPI(path, params) {
  const [st, setSt] = useState({ loading: true });
  const reload = (extra) =>
    api(path, { ...params, ...extra })
      .then((r) => setSt({ data: r.data, warnings: r.warnings || [] }))
      .catch((e) => setSt({ error: e.message }));
  useEffect(() => {
    reload();
  }, [path]);
  return [st, reload];
}

export function Loading({ st, children }) {
  if (st.loading) return html`<div class="empty">Loading…</div>`;
  if (st.error) return html`<div class="alert error">Error: ${st.error}</div>`;
  return children(st.data);
}

const ms = (t) => (t === undefined || t === null ? '' : Math.abs(t) >= 9e15 ? (t < 0 ? '-∞' : '+∞') : formatTime(t / 1000));
const ago = (iso) => {
  const t = Date.parse(iso);
  if (!t || t < 86400000) return 'never';
  const s = Math.round((Date.now() - t) / 1000);
  return s < 1 ? 'just now' : `${s}s ago`;
};

export function StoresPage() {
  const [st] = useAPI('/api/v1/stores');
  return html`<div class="page"><h2>Stores</h2>
    <${Loading} st=${st}>${(data) => {
      const types = Object.keys(data || {}).sort();
      if (!types.length) return html`<div class="empty">No stores configured (start strata query with --endpoint).</div>`;
      return types.map((type) => html`<div class="store-group">
        <h3>${type} <span class="count">(${data[type].length})</span></h3>
        <table class="data stores-table">
          <thead><tr><th>Endpoint</th><th>Status</th><th>Announced labels</th><th>Min time (UTC)</th><th>Max time (UTC)</th><th>Last check</th><th>Last error</th></tr></thead>
          <tbody>${data[type].map((s) => html`<tr class="store-row" data-name=${s.name}>
            <td class="store-name">${s.name}</td>
            <td><span class=${'badge ' + (s.lastError ? 'down' : 'up')}>${s.lastError ? 'DOWN' : 'UP'}</span></td>
            <td class="store-labels">${(s.labelSets || []).map((ls) => html`<div class="labelset">${formatLabels(ls)}</div>`)}</td>
            <td>${ms(s.minTime)}</td><td>${ms(s.maxTime)}</td><td>${ago(s.lastCheck)}</td>
            <td class="store-error">${s.lastError || ''}</td>
          </tr>`)}</tbody>
        </table></div>`);
    }}<//>
  </div>`;
}

function KV({ obj, cls }) {
  const keys = Object.keys(obj || {});
  return html`<table class=${'data ' + (cls || '')}><tbody>${keys.map((k) => html`<tr><th>${k}</th><td>${String(obj[k])}</td></tr>`)}</tbody></table>`;
}

export function StatusPage({ cfg }) {
  const [st] = useAPI('/api/v1/status/buildinfo');
  return html`<div class="page"><h2>Build information</h2>
    <${Loading} st=${st}>${(d) => html`<${KV} obj=${d} cls="buildinfo" />`}<//>
    <h2>Runtime</h2>
    <${KV} obj=${{ component: cfg.component, 'page loaded': formatTime(Date.now() / 1000) + ' UTC' }} />
  </div>`;
}

export function FlagsPage() {
  const [st] = useAPI('/api/v1/status/flags');
  const [filter, setFilter] = useState('');
  return html`<div class="page"><h2>Command-line flags</h2>
    <input class="filter" placeholder="Filter by flag name or value" value=${filter} onInput=${(e) => setFilter(e.target.value)} />
    <${Loading} st=${st}>${(d) => {
      const keys = Object.keys(d).filter((k) => !filter || k.includes(filter) || String(d[k]).includes(filter));
      return html`<table class="data flags"><tbody>${keys.map((k) => html`<tr><th>--${k}</th><td>${d[k]}</td></tr>`)}</tbody></table>`;
    }}<//>
  </div>`;
}

const dur = (s) => (s ? `${s}s` : '');

export function RulesPage() {
  const [st] = useAPI('/api/v1/rules');
  return html`<div class="page"><h2>Rules</h2>
    <${Loading} st=${st}>${(d) => {
      const groups = (d && d.groups) || [];
      if (!groups.length) return html`<div class="empty rules-empty">No rule groups: the querier has no rule sources yet (rules appear here once a ruler serves them).</div>`;
      return groups.map((g) => html`<div class="rule-group">
        <h3>${g.name} <span class="count">${g.file} · every ${dur(g.interval)}</span></h3>
        <table class="data"><thead><tr><th>Rule</th><th>State</th><th>Error</th><th>Last evaluation</th><th>Evaluation time</th></tr></thead>
        <tbody>${(g.rules || []).map((r) => html`<tr>
          <td><pre class="rule">${r.type === 'alerting' ? `alert: ${r.name}` : `record: ${r.name}`}\nexpr: ${r.query}${
            r.labels && Object.keys(r.labels).length ? `\nlabels: ${formatLabels(r.labels)}` : ''}</pre></td>
          <td>${r.health}</td><td>${r.lastError || ''}</td><td>${r.lastEvaluation || ''}</td><td>${r.evaluationTime || ''}</td>
        </tr>`)}</tbody></table></div>`);
    }}<//>
  </div>`;
}

export function AlertsPage() {
  const [st] = useAPI('/api/v1/alerts');
  return html`<div class="page"><h2>Alerts</h2>
    <${Loading} st=${st}>${(d) => {
      const alerts = (d && d.alerts) || [];
      if (!alerts.length) return html`<div class="empty alerts-empty">No active alerts (alerts appear here once a ruler serves them).</div>`;
      return html`<table class="data alerts"><thead><tr><th>Labels</th><th>State</th><th>Active since</th><th>Value</th></tr></thead>
        <tbody>${alerts.map((a) => html`<tr class=${'alert-' + a.state}><td>${formatLabels(a.labels)}</td><td>${a.state}</td>
          <td>${a.activeAt || ''}</td><td>${a.value}</td></tr>`)}</tbody></table>`;
    }}<//>
  </div>`;
}
