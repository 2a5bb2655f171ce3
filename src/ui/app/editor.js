// The expression editor as the page first shows it: a plain text area that takes input and runs the
// query at once. The PromQL editor (code_editor.js: prism-code-editor, lezer-promql and the completion
// sources) is a chunk of its own, fetched once the page has loaded, the queries it opened
// with have answered and the main thread is idle; it then replaces the text area, keeping the text,
// the cursor and the focus.
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from './util.js';

let chunk; // the one fetch of the editor chunk, shared by every panel
let busy = 0; // queries in flight (a graph the URL opened must not wait for the editor)
let quiet = []; // resolvers waiting for busy to drop to 0

// Around every query: the editor chunk is fetched only while none is in flight.
export function queryStarted() {
  busy++;
}
export function queryDone() {
  if (--busy === 0) quiet.splice(0).forEach((f) => f());
}

function loadCodeEditor() {
  if (!chunk) {
    chunk = new Promise((resolve) => {
      // After the load event, with no query in flight, when the main thread is idle (what a query's
      // answer made it draw is drawn).
      const idle = window.requestIdleCallback || ((f) => setTimeout(f, 0));
      const go = () => idle(() => resolve(import('./code_editor.js')), { timeout: 2000 });
      // A frame after the load event the panels' first effects (the queries a URL opens with) have run.
      const ready = () => requestAnimationFrame(() => setTimeout(() => (busy ? quiet.push(go) : go()), 0));
      if (document.readyState === 'complete') ready();
      else window.addEventListener('load', ready, { once: true });
    });
  }
  return chunk;
}

export function Editor({ value, onChange, onExecute, error }) {
  const [mod, setMod] = useState(null);
  const text = useRef(value);
  const area = useRef(null);
  const handoff = useRef({});

  useEffect(() => {
    let live = true;
    loadCodeEditor().then(
      (m) => {
        if (!live) return;
        const a = area.current;
        handoff.current = a ? { focus: document.activeElement === a, selection: a.selectionStart } : {};
        setMod(m);
      },
      () => {} // the chunk could not be fetched: the text area stays
    );
    return () => (live = false);
  }, []);

  const change = (v) => {
    text.current = v;
    onChange(v);
  };
  if (mod) {
    return html`<${mod.CodeEditor} value=${text.current} error=${error} onChange=${change} onExecute=${onExecute}
      focus=${handoff.current.focus} selection=${handoff.current.selection} />`;
  }
  return html`<div class="editor"><textarea class="editor-plain" rows="1" spellcheck="false" ref=${area}
    placeholder="Expression (press Shift+Enter for newlines)" value=${text.current}
    onInput=${(e) => change(e.target.value)}
    onKeyDown=${(e) => {
      if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        onExecute(e.target.value);
      }
    }}></textarea></div>`;
}
