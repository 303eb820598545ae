// The browsers of the browser tests, each the machine's own (never a downloaded
// one): Debian's Chromium driven by playwright-core, and Debian's Firefox ESR
// driven by puppeteer-core over WebDriver BiDi. `launch('firefox')` resolves to
// puppeteer's browser with the part of playwright's API the tests use, so a test
// written once runs in both: `newContext()` and `newPage()`, and pages with
// `evaluate(fn, arg)`, `waitForFunction(fn)`, `on('pageerror')`, `close()` and
// `isClosed()`, which both drivers have.
import { randomUUID } from 'node:crypto';
import { after, before, describe } from 'node:test';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

export const CHROMIUM_FLAGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

// Each Firefox page in a window of its own, as each Chromium page is: Firefox hides
// every tab of a window but the selected one, and runs a hidden tab's timers at
// most once a second.
const PAGE = { type: 'window' };

const ENGINE = {
  chromium: {
    launch: () => chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_FLAGS }),
    async crash(page) {
      const cdp = await page.context().newCDPSession(page);
      const crashed = new Promise((resolve) => page.once('crash', resolve));
      // Page.crash never answers: the renderer is gone before it can.
      cdp.send('Page.crash').catch(() => {});
      await crashed;
    },
  },
  firefox: {
    async launch() {
      const browser = await puppeteer.launch({
        browser: 'firefox',
        executablePath: process.env.FIREFOX ?? '/usr/bin/firefox-esr',
        headless: true,
        // System access lets crash() ask the browser which process a page runs in.
        args: ['--remote-allow-system-access'],
        // A content process for each page, as Chromium has a renderer for each: past
        // dom.ipc.processCount (8) pages share processes, and one crash kills several.
        extraPrefsFirefox: { 'dom.ipc.processCount': 64 },
      });
      return {
        async newContext() {
          const context = await browser.createBrowserContext();
          return { newPage: () => context.newPage(PAGE), close: () => context.close() };
        },
        newPage: () => browser.newPage(PAGE),
        close: () => browser.close(),
      };
    },
    // BiDi has no crash command: the page's content process is killed, as the OS
    // would kill it. Only the browser's chrome script knows that process; it finds
    // the page by a title no other page has.
    async crash(page) {
      const title = `crash ${randomUUID()}`;
      await page.evaluate((title) => (document.title = title), title);
      const { connection } = page.browser();
      const { result: tree } = await connection.send('browsingContext.getTree', { 'moz:scope': 'chrome' });
      const { result } = await connection.send('script.evaluate', {
        expression: `[...Services.wm.getEnumerator('navigator:browser')]
          .flatMap((window) => window.gBrowser.browsers)
          .find((b) => b.contentTitle === ${JSON.stringify(title)}).browsingContext.currentWindowGlobal.osPid`,
        target: { context: tree.contexts[0].context },
        awaitPromise: false,
      });
      process.kill(result.result.value, 'SIGKILL');
    },
  },
};

/** The engines every engine-agnostic browser test runs in, in order. */
export const ENGINES = Object.keys(ENGINE);

/** Launches headless `engine`: playwright's browser for Chromium, the adapter above for Firefox. */
export function launch(engine = 'chromium') {
  return ENGINE[engine].launch();
}

/** Crashes the renderer of `page`, as a tab that dies would; the page is left to close. */
export function crash(engine, page) {
  return ENGINE[engine].crash(page);
}

/** A new page on tests/browser/page.html, once it has loaded the package as `window.ferry`. */
export async function openTestPage(browserOrContext, serverUrl) {
  const page = await browserOrContext.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${serverUrl}/tests/browser/page.html`);
  await page.waitForFunction(() => document.title === 'ready');
  return page;
}

/**
 * Declares `tests(engine, openPage)` once for each engine, in a describe block of
 * its own with a browser and a context of that engine; `openPage()` opens a test
 * page (openTestPage) in that context, from the server at `serverUrl()`.
 */
export function forEachEngine(serverUrl, tests) {
  for (const engine of ENGINES) {
    describe(engine, () => {
      let browser;
      let context;

      before(async () => {
        browser = await launch(engine);
        context = await browser.newContext();
      });

      after(() => browser?.close());

      tests(engine, () => openTestPage(context, serverUrl()));
    });
  }
}
