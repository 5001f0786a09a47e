'use strict';
// The demo chat page (`demo_page = true`) in headless Debian Chromium: two pages join the same
// room and see each other's messages. Selectors follow dataplane/assets/demo.html.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { chromium } = require('playwright-core');
const { startHub, IMPL } = require('../harness/hub');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const WAIT = 20000;

const skip = !fs.existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM}`
  : IMPL === 'reference' ? 'the demo page is part of the hub, not of the reference server' : false;

let hub;
let browser;
before(async () => {
  if (skip) return;
  hub = await startHub({ demo_page: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60000 });
});
after(async () => {
  if (browser) await browser.close();
  if (hub) await hub.close();
});

async function openChat(name) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(hub.url, { timeout: WAIT });
  await page.waitForSelector('#status.connected', { timeout: WAIT });
  await page.fill('#name', name);
  await page.fill('#room', 'e2e-room');
  await page.click('#join');
  await page.locator('#log li', { hasText: 'you joined e2e-room' }).waitFor({ timeout: WAIT });
  await page.waitForSelector('#message:not([disabled])', { timeout: WAIT });
  return { page, errors };
}

async function send(page, text) {
  await page.fill('#message', text);
  await page.click('#send');
  await page.locator('#log li', { hasText: `me: ${text}` }).waitFor({ timeout: WAIT });
}

test('two pages in the same room see each other\'s messages', { skip, timeout: 120000 }, async () => {
  const alice = await openChat('alice');
  const bob = await openChat('bob');
  await alice.page.locator('#log li', { hasText: 'bob joined' }).waitFor({ timeout: WAIT });

  await send(alice.page, 'hello from alice');
  await bob.page.locator('#log li', { hasText: 'alice: hello from alice' }).waitFor({ timeout: WAIT });
  await send(bob.page, 'hi alice, bob here');
  await alice.page.locator('#log li', { hasText: 'bob: hi alice, bob here' }).waitFor({ timeout: WAIT });

  // A sender does not receive its own broadcast (hub:to excludes the sender).
  const aliceLog = await alice.page.locator('#log li').allTextContents();
  assert.equal(aliceLog.filter((t) => t === 'alice: hello from alice').length, 0);
  assert.ok(aliceLog.includes('me: hello from alice'));
  if (process.env.E2E_SCREENSHOT) await bob.page.screenshot({ path: process.env.E2E_SCREENSHOT });
  assert.deepEqual([...alice.errors, ...bob.errors], [], 'no uncaught errors in the pages');
});
