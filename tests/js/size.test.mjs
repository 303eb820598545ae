// The package's size budget (tools/size-report.mjs, BROWSER_BUDGET_GZIP_BYTES): what
// `import { Bus } from 'ferry'` costs an app, an esbuild bundle of the browser entry
// plus the engine's wasm, gzipped, measured as `make pkg` prints it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BROWSER_BUDGET_GZIP_BYTES, measureSizes } from '../../tools/size-report.mjs';

test("import { Bus } from 'ferry' stays within its gzipped budget", () => {
  const { app, browser, js } = measureSizes();
  assert.ok(
    app.gzip <= BROWSER_BUDGET_GZIP_BYTES,
    `${app.gzip} B gzipped (wasm ${browser.gzip} B + JS ${js.gzip} B) is over the budget of ${BROWSER_BUDGET_GZIP_BYTES} B`,
  );
});
