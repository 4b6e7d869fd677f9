// The playground's check engine in a Web Worker, so that the page stays responsive whatever the
// input: build.mjs prepends the wasm-bindgen glue (pkg/stackguard_playground.js) to this file and
// inlines the result as a string (pkg/worker_inline.js, STACKGUARD_WORKER_SOURCE), which app.js
// starts from a blob: URL (the only way a worker starts from a page opened from disk).
//
// Messages in: {module} (a compiled WebAssembly.Module, first), then {id, text, config}.
// Messages out: {ready: true}, then per check {id, out, ms} or {id, error, trap, ms}.
'use strict';

self.onmessage = (event) => {
  const msg = event.data;
  if (msg.module) {
    wasm_bindgen.initSync({ module: msg.module });
    self.postMessage({ ready: true });
    return;
  }
  const t0 = performance.now();
  try {
    const out = wasm_bindgen.check(msg.text, msg.config);
    self.postMessage({ id: msg.id, out, ms: performance.now() - t0 });
  } catch (e) {
    self.postMessage({
      id: msg.id,
      error: String(e && e.message ? e.message : e),
      // A trap is a bug (never bad input by design): the page restarts the worker.
      trap: e instanceof WebAssembly.RuntimeError,
      ms: performance.now() - t0,
    });
  }
};
