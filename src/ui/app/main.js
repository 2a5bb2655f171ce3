// Strata's web UI. One page per path; the server says which component serves it (and so which pages
// exist) in the embedded config: {"component": "query"|"store"|"compact"|"bucket", "pages": [...],
// "adminDisabled": bool, "version": "..."}, and on a querier that enforces tenancy "tenancy": {"header",
// "defaultTenant"}: the navbar then has a tenant field (util.js sends it with every API call).
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { render } from 'preact';
import { html, cfg, prefix, useTenant, setTenant } from './util.js';
import { QueryPage } from './query.js';
import { StoresPage, StatusPage, FlagsPage, RulesPage, AlertsPage } from './pages.js';
import { BlocksPage } from './blocks.js';

const PAGES = {
  graph: ['Query', () => html`<${QueryPage} />`],
  alerts: ['Alerts', () => html`<${AlertsPage} />`],
  rules: ['Rules', () => html`<${RulesPage} />`],
  stores: ['Stores', () => html`<${StoresPage} />`],
  status: ['Status', () => html`<${StatusPage} cfg=${cfg} />`],
  flags: ['Flags', () => html`<${FlagsPage} />`],
  blocks: ['Blocks', () => html`<${BlocksPage} view="global" cfg=${cfg} />`],
  loaded: ['Loaded blocks', () => html`<${BlocksPage} view="loaded" cfg=${cfg} />`],
};

// Empty: the querier's default tenant. Taken on Enter or when the field loses the focus; the pages then
// ask again as that tenant.
function TenantField() {
  const t = useTenant();
  const { header, defaultTenant } = cfg.tenancy;
  return html`<label class="tenant" title=${`Sent as the ${header} header of every query; empty: ${defaultTenant}`}>Tenant
    <input class="tenant-input" value=${t} placeholder=${defaultTenant} spellcheck="false" autocomplete="off"
      onChange=${(e) => setTenant((e.target.value = e.target.value.trim()))} /></label>`;
}

function App() {
  const path = window.location.pathname;
  const page = (path.startsWith(prefix + '/') ? path.slice(prefix.length) : path).replace(/^\/+|\/+$/g, '') || cfg.pages[0];
  const current = PAGES[page] && cfg.pages.includes(page) ? page : cfg.pages[0];
  return html`<div>
    <nav class="navbar">
      <a class="brand" href=${prefix + '/' + cfg.pages[0]}>Strata <span class="component">${cfg.component}</span></a>
      ${cfg.pages.map((p) => html`<a class=${'nav-link' + (p === current ? ' active' : '')} href=${prefix + '/' + p}>${PAGES[p][0]}</a>`)}
      ${cfg.tenancy && html`<${TenantField} />`}
      <span class="version">v${cfg.version}</span>
    </nav>
    <main>${PAGES[current][1]()}</main>
  </div>`;
}

render(html`<${App} />`, document.getElementById('root'));
