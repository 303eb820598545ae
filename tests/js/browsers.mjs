// Headless Chromium for the browser tests, driven by playwright-core with the
// machine's own Chromium (never a downloaded one).
import { chromium } from 'playwright-core';

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

export function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_FLAGS });
}

/** A new page on tests/browser/page.html, once it has loaded the package as `window.ferry`. */
export async function openTestPage(browserOrContext, serverUrl) {
  const page = await browserOrContext.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(`${serverUrl}/tests/browser/page.html`);
  await page.waitForFunction(() => document.title === 'ready');
  return page;
}
