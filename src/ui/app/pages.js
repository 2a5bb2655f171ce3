// Stores, Status (build info), Flags, Rules and Alerts pages of `strata query`.
import { useEffect, useState } from 'preact/hooks';
import { html, api, useTenant, formatLabels, formatTime } from './util.js';

// Loads an API path once, and again as another tenant; renders loading / error / children(data).
export function useAPI(path, params) {
  const [st, setSt] = useState({ loading: true });
  const tenant = useTenant();
  const reload = (extra) =>
    api(path, { ...params, ...extra })
      .then((r) => setSt({ data: r.data, warnings: r.warnings || [] }))
      .catch((e) => setSt({ error: e.message }));
  useEffect(() => {
    reload();
  }, [path, tenant]);
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

// Durations as Prometheus's rule pages print them (90 -> "1m30s").
const dur = (s) => {
  if (!s) return '';
  let out = '';
  for (const [u, n] of [['d', 86400], ['h', 3600], ['m', 60]]) {
    if (s >= n) { out += Math.floor(s / n) + u; s %= n; }
  }
  return out + (s ? `${+s.toFixed(3)}s` : '');
};
const graphLink = (expr) => `/graph?g0.expr=${encodeURIComponent(expr)}&g0.tab=1`;
const isoTime = (iso) => (!iso || iso.startsWith('0001-') ? 'never' : formatTime(Date.parse(iso) / 1000) + ' UTC');
const secs = (s) => (s === undefined ? '' : s >= 1 ? `${s.toFixed(3)}s` : `${(s * 1000).toFixed(3)}ms`);
const kvLines = (obj, indent) => Object.keys(obj || {}).sort().map((k) => `\n${indent}${k}: ${obj[k]}`).join('');

function RuleText({ r }) {
  const head = r.type === 'alerting' ? `alert: ${r.name}` : `record: ${r.name}`;
  const extra = (r.type === 'alerting' && r.duration ? `\nfor: ${dur(r.duration)}` : '') +
    (r.keepFiringFor ? `\nkeep_firing_for: ${dur(r.keepFiringFor)}` : '') +
    (r.labels && Object.keys(r.labels).length ? `\nlabels:${kvLines(r.labels, '  ')}` : '') +
    (r.annotations && Object.keys(r.annotations).length ? `\nannotations:${kvLines(r.annotations, '  ')}` : '');
  return html`<pre class="rule">${head + '\nexpr: '}<a href=${graphLink(r.query)}>${r.query}</a>${extra}</pre>`;
}

export function RulesPage() {
  const [st] = useAPI('/api/v1/rules');
  return html`<div class="page"><h2>Rules</h2>
    <${Loading} st=${st}>${(d) => {
      const groups = (d && d.groups) || [];
      if (!groups.length) return html`<div class="empty rules-empty">No rule groups: no ruler among the endpoints serves any (rules appear here once one does).</div>`;
      return groups.map((g) => html`<div class="rule-group">
        <h3>${g.name} <span class="count">${g.file} · every ${dur(g.interval)} · last ${isoTime(g.lastEvaluation)} took ${secs(g.evaluationTime)}${g.limit ? ` · limit ${g.limit}` : ''}</span></h3>
        <table class="data"><thead><tr><th>Rule</th><th>State</th><th>Error</th><th>Last evaluation</th><th>Evaluation time</th></tr></thead>
        <tbody>${(g.rules || []).map((r) => html`<tr class=${'rule-' + r.health}>
          <td><${RuleText} r=${r} /></td>
          <td class=${'health health-' + r.health}>${r.health}${r.type === 'alerting' ? html`<br /><span class=${'alert-state state-' + r.state}>${r.state}</span>` : ''}</td>
          <td class="rule-error">${r.lastError || ''}</td><td>${isoTime(r.lastEvaluation)}</td><td>${secs(r.evaluationTime)}</td>
        </tr>`)}</tbody></table></div>`);
    }}<//>
  </div>`;
}

// Prometheus's /alerts: every alerting rule with its state and active alerts, filterable by state.
export function AlertsPage() {
  const [st] = useAPI('/api/v1/rules', { type: 'alert' });
  const [show, setShow] = useState({ inactive: true, pending: true, firing: true });
  const [open, setOpen] = useState({});
  const toggle = (k) => setShow({ ...show, [k]: !show[k] });
  return html`<div class="page"><h2>Alerts</h2>
    <div class="alert-filters">${['inactive', 'pending', 'firing'].map((k) => html`<label class=${'state-' + k}>
      <input type="checkbox" checked=${show[k]} onChange=${() => toggle(k)} /> ${k}</label>`)}</div>
    <${Loading} st=${st}>${(d) => {
      const rules = ((d && d.groups) || []).flatMap((g) => (g.rules || []).map((r) => ({ ...r, group: g.name })));
      if (!rules.length) return html`<div class="empty alerts-empty">No alerting rules: no ruler among the endpoints serves any (alerts appear here once one does).</div>`;
      const count = (s) => rules.filter((r) => r.state === s).length;
      return html`<div class="alert-counts">${['inactive', 'pending', 'firing'].map((s) => html`<span class=${'state-' + s}>${s} (${count(s)})</span> `)}</div>
        ${rules.filter((r) => show[r.state]).map((r) => {
          const key = r.group + '/' + r.name;
          const isOpen = open[key] !== undefined ? open[key] : r.state !== 'inactive';
          return html`<div class=${'alert-rule alert-' + r.state}>
            <div class="alert-rule-head" onClick=${() => setOpen({ ...open, [key]: !isOpen })}>
              ${isOpen ? '▾' : '▸'} <b>${r.name}</b> <span class="count">(${(r.alerts || []).length} active) · ${r.group}</span></div>
            ${isOpen ? html`<${RuleText} r=${r} />
              ${(r.alerts || []).length ? html`<table class="data alerts"><thead><tr><th>Labels</th><th>State</th><th>Active since</th><th>Value</th><th>Annotations</th></tr></thead>
              <tbody>${r.alerts.map((a) => html`<tr class=${'alert-' + a.state}><td>${formatLabels(a.labels)}</td><td>${a.state}</td>
                <td>${isoTime(a.activeAt)}</td><td>${a.value}</td>
                <td class="annotations">${Object.keys(a.annotations || {}).sort().map((k) => html`<div><b>${k}</b>: ${a.annotations[k]}</div>`)}</td></tr>`)}</tbody></table>` : ''}` : ''}
          </div>`;
        })}`;
    }}<//>
  </div>`;
}
