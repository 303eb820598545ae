// A Node process that opens a bus and is refused exits on its own: nothing the
// failed open started (a wake-up channel, a database) may hold the event loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

/** Runs `code` as an ES module in a new Node process; resolves to its output and exit code, or rejects after `timeoutMs`. */
function runNode(code, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the process did not exit within ${timeoutMs} ms; it printed ${JSON.stringify(out)}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ out: out.trim(), code });
    });
  });
}

const refusedOpen = (options) => `
  import { Bus } from 'ferry';
  try {
    await Bus.open(${JSON.stringify(options)});
    console.log('opened');
  } catch (e) {
    console.log(e.code);
  }
`;

test("Bus.open({ storage: 'indexeddb' }) in Node rejects with STORAGE and the process exits", async () => {
  const { out, code } = await runNode(refusedOpen({ name: 'exit', storage: 'indexeddb' }));
  assert.deepEqual([out, code], ['STORAGE', 0]);
});

test('an open refused for its options exits too, and so does a bus that was closed', async () => {
  assert.deepEqual(await runNode(refusedOpen({ name: 'bad name' })), { out: 'INVALID_ARGUMENT', code: 0 });
  const closed = await runNode(`
    import { Bus } from 'ferry';
    const bus = await Bus.open({ name: 'exit-closed' });
    await bus.publish('t', 'v');
    await bus.close();
    console.log('closed');
  `);
  assert.deepEqual(closed, { out: 'closed', code: 0 });
});
