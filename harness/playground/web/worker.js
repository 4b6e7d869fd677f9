// The playground's check engine in a Web Worker, so that the page stays responsive whatever the
// input: build.mjs prepends the wasm-bindgen glue (pkg/stackguard_playground.js) to this file and
// inlines the result as a string (pkg/worker_inline.js, STACKGUARD_WORKER_SOURCE), which app.js
// starts from a blob: URL (the only way a worker starts from a page opened from disk).
//
// Messages in: {module} (a compiled WebAssembly.Module, first), then {id, op, text, config}
// with op 'check' (`stackguard check`) or 'fix' (`stackguard fix`).
// Messages out: {ready: true}, then per request {id, op, out, ms} or {id, op, error, trap, ms}.
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
    const run = msg.op === 'fix' ? wasm_bindgen.fix : wasm_bindgen.check;
    const out = run(msg.text, msg.config);
    self.postMessage({ id: msg.id, op: msg.op, out, ms: performance.now() - t0 });
  } catch (e) {
    self.postMessage({
      id: msg.id,
      op: msg.op,
      error: String(e && e.message ? e.message : e),
      // A trap is a bug (never bad input by design): the page restarts the worker.
      trap: e instanceof WebAssembly.RuntimeError,
      ms: performance.now() - t0,
    });
  }
};
