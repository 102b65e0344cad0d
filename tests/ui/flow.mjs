// End-to-end test of the /ui dashboard in a real headless Chromium, run by
// tests/it/ui.rs against a real gateway and HTTPS receiver. It asserts what a
// person sees, step by step (the Mogu flow of docs/platforms.md first), and
// saves a screenshot of each main screen to $SCREENSHOT_DIR. Exits non-zero on
// the first failure.

import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const need = (name) => {
  const v = process.env[name];
  if (!v) { console.error(`missing environment variable ${name}`); process.exit(2); }
  return v;
};
const BASE = need('HOOKGATE_URL');
const ADMIN = need('ADMIN_TOKEN');
const KEY = need('TENANT_KEY');
const RECEIVER = need('RECEIVER_URL');
const FLAKY = need('FLAKY_ENDPOINT');
const PAGED = need('PAGED_ENDPOINT');
const PLUGIN = need('PLUGIN_WASM');
const GARBAGE = need('GARBAGE_WASM');
const SHOTS = need('SCREENSHOT_DIR');
mkdirSync(SHOTS, { recursive: true });
rmSync(join(SHOTS, 'failure.png'), { force: true });

const origin = new URL(BASE).origin;
const problems = [];
const external = [];

const context = await chromium.launchPersistentContext(need('USER_DATA_DIR'), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run'],
  viewport: { width: 1280, height: 900 },
  permissions: ['clipboard-read', 'clipboard-write'],
});
context.setDefaultTimeout(10_000);
// Requests are watched, not intercepted: playwright's route.continue()
// goes through Chromium's Fetch interception, and under load that once
// handed the page a 200 with an empty body (microsoft/playwright#22338 is
// the same kind of flake). The page's CSP keeps other origins out; this
// records any request that gets past it.
context.on('request', (request) => {
  const url = request.url();
  if (!url.startsWith('data:') && new URL(url).origin !== origin) external.push(url);
});
const page = context.pages()[0] || await context.newPage();
page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

let current = '';
async function step(name, fn) {
  current = name;
  const t = Date.now();
  await fn();
  console.log(`ok  ${name} (${Date.now() - t} ms)`);
}
const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
const dialog = () => page.locator('dialog[open]');
const card = (name) => page.locator('article.card').filter({ has: page.getByRole('heading', { name, exact: true }) });
const expectText = async (locator, text) => {
  await locator.filter({ hasText: text }).first().waitFor({ state: 'visible' });
};
const nav = (name) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });

async function signIn(token) {
  await page.getByLabel('API key or operator token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

try {
  let firstSecret;

  await step('sign-in screen refuses a wrong key in words', async () => {
    await page.goto(`${BASE}/ui`);
    await page.getByRole('heading', { name: 'Sign in to hookgate' }).waitFor();
    await shot('01-sign-in');
    await signIn('not-a-real-key');
    await expectText(page.locator('form .error'), 'not accepted');
  });

  await step('tenant key signs in; kept in session storage, not in the URL', async () => {
    await signIn(KEY);
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    assert.ok(!page.url().includes(KEY), 'the key is not in the URL');
    const stored = await page.evaluate(() => sessionStorage.getItem('hookgate.session'));
    assert.ok(stored.includes(KEY));
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
  });

  await step('a disabled endpoint shows Disabled in red with its reason', async () => {
    const c = card(FLAKY);
    await expectText(c.locator('.status'), 'Disabled');
    await expectText(c.locator('.reason'), 'Reason:');
    await expectText(c.locator('.last-delivery'), '500 Internal Server Error');
    const color = await c.locator('.status').evaluate((el) => getComputedStyle(el).color);
    assert.equal(color, 'rgb(179, 38, 30)', 'red');
  });

  await step('Add endpoint, step 1 of 2: HTTPS and at least one event are checked in the form', async () => {
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    await dialog().getByRole('heading', { name: 'Step 1 of 2: New endpoint' }).waitFor();
    await dialog().getByLabel('Name').fill('My integration');
    await dialog().getByLabel('Endpoint URL').fill('http://example.com/hooks');
    await dialog().getByRole('button', { name: 'Create endpoint' }).click();
    await expectText(dialog().locator('.error'), 'must use HTTPS');
    await dialog().getByLabel('Endpoint URL').fill(RECEIVER);
    await dialog().getByRole('button', { name: 'Create endpoint' }).click();
    await expectText(dialog().locator('.error'), 'Select at least one event');
    // The catalog, grouped by prefix.
    for (const group of ['booking', 'payment', 'trip']) {
      await dialog().locator('fieldset.group legend', { hasText: group }).waitFor();
    }
    await dialog().getByRole('checkbox', { name: /^booking\.created/ }).check();
    await shot('02-add-endpoint-step-1');
    await dialog().getByRole('button', { name: 'Create endpoint' }).click();
  });

  await step('step 2 of 2: the secret is shown once; Done stays disabled until the box is ticked', async () => {
    await dialog().getByRole('heading', { name: 'Step 2 of 2: Save your signing secret' }).waitFor();
    const secret = dialog().getByLabel('Signing secret');
    firstSecret = await secret.inputValue();
    assert.match(firstSecret, /^whsec_/);
    await expectText(dialog(), 'will not be shown again');
    const done = dialog().getByRole('button', { name: 'Done' });
    assert.equal(await done.isDisabled(), true, 'Done is disabled before the box is ticked');
    await page.keyboard.press('Escape');
    assert.equal(await dialog().count(), 1, 'Escape does not skip the gate');
    await dialog().getByRole('button', { name: 'Copy secret to clipboard' }).click();
    await expectText(dialog().locator('.copied'), 'Copied to clipboard');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), firstSecret);
    await shot('03-add-endpoint-step-2-secret');
    await dialog().getByLabel('I have saved the secret in a safe place').check();
    assert.equal(await done.isDisabled(), false, 'Done is enabled once ticked');
    await done.click();
    await dialog().waitFor({ state: 'detached' });
    const c = card('My integration');
    await expectText(c.locator('.status'), 'Active');
    await expectText(c.locator('.chips'), 'booking.created');
    await expectText(c, 'No deliveries yet');
    const color = await c.locator('.status').evaluate((el) => getComputedStyle(el).color);
    assert.equal(color, 'rgb(30, 123, 52)', 'green');
    assert.ok(!(await page.content()).includes(firstSecret), 'the secret is gone from the page');
  });

  await step('Send test shows the receiver\'s result on the card', async () => {
    const c = card('My integration');
    await c.getByRole('button', { name: 'Send test' }).click();
    await expectText(c.locator('.test-result'), 'Test delivered: your server answered 200 OK');
  });

  await step('Send test sends an example of the chosen event type', async () => {
    const c = card('My integration');
    await c.getByLabel('Event type to test (My integration)').selectOption('booking.created');
    await c.getByRole('button', { name: 'Send test' }).click();
    await expectText(c.locator('.test-result'), 'Test delivered: your server answered 200 OK');
    await c.getByRole('link', { name: 'Logs' }).click();
    await expectText(page.locator('main'), 'booking.created');
    await page.getByRole('link', { name: 'Back to webhooks' }).click();
    await card('My integration').waitFor();
  });

  await step('Each card charts its last 24 hours', async () => {
    const chart = card('My integration').getByRole('img', { name: /^Last 24 hours: / });
    await chart.waitFor();
    await page.waitForFunction(() => {
      const el = document.querySelector('.chart');
      return el && /Last 24 hours: \d+ delivered/.test(el.getAttribute('aria-label'));
    });
    const label = await card('My integration').locator('.chart').getAttribute('aria-label');
    assert.match(label, /Last 24 hours: [1-9]\d* delivered, \d+ failed, median \d+ ms/);
    assert.equal(await card('My integration').locator('.chart .bar').count(), 25);
  });

  await step('Recover asks since when, and queues again what failed', async () => {
    await card('My integration').getByRole('button', { name: 'Recover' }).click();
    await dialog().getByRole('heading', { name: 'Recover My integration' }).waitFor();
    assert.ok(await dialog().getByLabel('Failed since').inputValue(), 'a default since');
    await dialog().getByRole('button', { name: 'Recover' }).click();
    await expectText(page.locator('#notice'), 'failed deliveries queued again');
    await expectText(card('My integration').locator('.status'), 'Active');
  });

  await step('Settings shows and changes the delivery header names', async () => {
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('heading', { name: 'Settings' }).waitFor();
    assert.equal(await page.getByLabel('Event header').inputValue(), 'X-Hookgate-Event');
    await page.getByLabel('Signature header').fill('Content-Type');
    await page.getByRole('button', { name: 'Save header names' }).click();
    await expectText(page.locator('main'), 'sets itself');
    await page.getByLabel('Signature header').fill('X-Mogu-Signature-256');
    await page.getByRole('button', { name: 'Save header names' }).click();
    await expectText(page.locator('#notice'), 'Header names saved');
    assert.equal(await page.getByLabel('Signature header').inputValue(), 'X-Mogu-Signature-256');
    await page.getByRole('link', { name: 'Webhooks' }).click();
    await card('My integration').waitFor();
  });

  await step('pause switch asks "Pause this endpoint?" and the card turns Paused', async () => {
    const c = card('My integration');
    const sw = c.getByRole('switch', { name: 'Receive events (My integration)' });
    assert.equal(await sw.getAttribute('aria-checked'), 'true');
    await sw.click();
    await dialog().getByRole('heading', { name: 'Pause this endpoint?' }).waitFor();
    await expectText(dialog(), 'stop receiving events until you reactivate it');
    await shot('04-pause-dialog');
    await dialog().getByRole('button', { name: 'Pause' }).click();
    await expectText(card('My integration').locator('.status'), 'Paused');
    const color = await card('My integration').locator('.status').evaluate((el) => getComputedStyle(el).color);
    assert.equal(color, 'rgb(169, 84, 0)', 'orange');
    assert.equal(await card('My integration').getByRole('switch').getAttribute('aria-checked'), 'false');
  });

  await step('Send test works while paused; Cancel keeps it paused; reactivating asks too', async () => {
    let c = card('My integration');
    await c.getByRole('button', { name: 'Send test' }).click();
    await expectText(c.locator('.test-result'), '200 OK');
    await c.getByRole('switch').click();
    await dialog().getByRole('heading', { name: 'Reactivate this endpoint?' }).waitFor();
    await dialog().getByRole('button', { name: 'Cancel' }).click();
    await expectText(card('My integration').locator('.status'), 'Paused');
    await card('My integration').getByRole('switch').click();
    await dialog().getByRole('button', { name: 'Reactivate' }).click();
    c = card('My integration');
    await expectText(c.locator('.status'), 'Active');
    await expectText(c.locator('.last-delivery'), '200 OK');
  });

  await step('Edit changes name, events and concurrency; the secret is kept', async () => {
    await expectText(card('My integration').locator('.in-flight'), 'up to 64 at once');
    await card('My integration').getByRole('button', { name: 'Edit' }).click();
    await dialog().getByRole('heading', { name: 'Edit My integration' }).waitFor();
    await expectText(dialog(), 'The signing secret is kept');
    assert.equal(await dialog().getByRole('checkbox', { name: /^booking\.created/ }).isChecked(), true);
    await dialog().getByLabel('Name').fill('My integration (renamed)');
    await dialog().getByRole('checkbox', { name: /^trip\.created/ }).check();
    await dialog().getByLabel('Concurrent deliveries').fill('0');
    await dialog().getByRole('button', { name: 'Save changes' }).click();
    await expectText(dialog(), 'whole number from 1 to 1024');
    await dialog().getByLabel('Concurrent deliveries').fill('8');
    await dialog().getByRole('button', { name: 'Save changes' }).click();
    await expectText(card('My integration (renamed)').locator('.chips'), 'trip.created');
    await expectText(card('My integration (renamed)').locator('.in-flight'), 'up to 8 at once');
  });

  await step('Edit sets a rate limit, FIFO order, custom headers and bearer auth; the token is never shown', async () => {
    await card('My integration (renamed)').getByRole('button', { name: 'Edit' }).click();
    await dialog().getByRole('heading', { name: 'Edit My integration (renamed)' }).waitFor();
    await dialog().getByLabel('Rate limit').fill('5');
    await dialog().getByLabel('Order').selectOption('fifo');
    await dialog().getByLabel('Custom headers').fill('X-Env prod');
    await dialog().getByRole('button', { name: 'Save changes' }).click();
    await expectText(dialog(), 'must look like "Name: value"');
    await dialog().getByLabel('Custom headers').fill('X-Env: prod\nX-Team: bookings');
    await dialog().getByLabel('Authentication').selectOption('bearer');
    await dialog().getByRole('button', { name: 'Save changes' }).click();
    await expectText(dialog(), 'Enter the bearer token');
    await dialog().getByLabel('Token').fill('ui-secret-token');
    await dialog().getByRole('button', { name: 'Save changes' }).click();
    const c = card('My integration (renamed)');
    await expectText(c.locator('.rate-limit'), '5 per second');
    await expectText(c.locator('.ordering'), 'in publish order');
    await expectText(c.locator('.headers'), 'X-Env, X-Team');
    await expectText(c.locator('.auth'), 'Bearer token');
    assert.equal((await page.content()).includes('ui-secret-token'), false, 'the token is shown');
    // Editing again keeps the token unless a new one is typed; a refused
    // header name is the server's to name.
    await c.getByRole('button', { name: 'Edit' }).click();
    await dialog().getByLabel('Custom headers').fill('webhook-signature: forged');
    await dialog().getByRole('button', { name: 'Save changes' }).click();
    await expectText(dialog(), 'sets itself');
    await dialog().getByLabel('Custom headers').fill('X-Env: staging');
    await dialog().getByLabel('Client certificate (PEM, optional)').fill('not a certificate');
    await dialog().getByRole('button', { name: 'Save changes' }).click();
    await expectText(dialog(), 'private key');
    await dialog().getByLabel('Client key (PEM)').fill('not a key either');
    await dialog().getByRole('button', { name: 'Save changes' }).click();
    await expectText(dialog(), 'is not PEM');
    await dialog().getByLabel('Client certificate (PEM, optional)').fill('');
    await dialog().getByLabel('Client key (PEM)').fill('');
    await dialog().getByRole('button', { name: 'Save changes' }).click();
    await expectText(card('My integration (renamed)').locator('.headers'), 'X-Env');
    await expectText(card('My integration (renamed)').locator('.auth'), 'Bearer token');
  });

  await step('Rotate secret: confirm, new secret once behind the same box, old one\'s expiry shown', async () => {
    const c = card('My integration (renamed)');
    await c.getByRole('button', { name: 'Rotate secret' }).click();
    await dialog().getByRole('heading', { name: 'Rotate the signing secret?' }).waitFor();
    await dialog().getByRole('button', { name: 'Rotate secret' }).click();
    await dialog().getByRole('heading', { name: 'Save your new signing secret' }).waitFor();
    const s = await dialog().getByLabel('New signing secret').inputValue();
    assert.match(s, /^whsec_/);
    assert.notEqual(s, firstSecret);
    await expectText(dialog(), 'The old secret expires at');
    const done = dialog().getByRole('button', { name: 'Done' });
    assert.equal(await done.isDisabled(), true);
    await dialog().getByLabel('I have saved the secret in a safe place').check();
    await done.click();
    await expectText(card('My integration (renamed)'), 'valid until');
  });

  await step('delivery logs: failed entry, filters, payload and response viewer', async () => {
    await card(FLAKY).getByRole('link', { name: 'Logs' }).click();
    await page.getByRole('heading', { name: `Delivery logs: ${FLAKY}` }).waitFor();
    const row = page.locator('tbody tr').first();
    await expectText(row, 'failed');
    await expectText(row, '500 Internal Server Error');
    await expectText(row, 'payment.succeeded');
    await page.getByText('Page 1').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Next page' }).isDisabled(), true);
    await page.getByLabel('Status').selectOption('delivered');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByText('No deliveries match.').waitFor();
    await page.getByLabel('Status').selectOption('failed');
    await page.getByLabel('Event type').selectOption('payment.succeeded');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expectText(page.locator('tbody tr').first(), 'failed');
    await shot('06-logs');
    await page.locator('tbody tr').first().getByRole('button', { name: /^View / }).click();
    await expectText(dialog().locator('section[aria-label="Payload"]'), 'pay_1');
    await expectText(dialog().locator('section[aria-label="Attempts"]'), '500 Internal Server Error');
    await shot('07-log-detail');
    await dialog().getByRole('button', { name: 'Close' }).click();
  });

  await step('Retry on a failed entry redelivers to the now healthy receiver', async () => {
    await page.getByLabel('Status').selectOption('');
    await page.getByLabel('Event type').selectOption('');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.locator('tbody tr').first().getByRole('button', { name: /^Retry / }).click();
    await expectText(page.locator('#notice'), 'delivered');
    await expectText(page.locator('tbody tr').first(), 'delivered');
    await expectText(page.locator('tbody tr').first(), '200 OK');
  });

  await step('log pages: 20 entries a page, Next and Previous', async () => {
    await nav('Webhooks').click();
    await card(PAGED).getByRole('link', { name: 'Logs' }).click();
    await page.getByRole('heading', { name: `Delivery logs: ${PAGED}` }).waitFor();
    await page.getByText('Page 1').waitFor();
    assert.equal(await page.locator('tbody tr').count(), 20);
    await page.getByRole('button', { name: 'Next page' }).click();
    await page.getByText('Page 2').waitFor();
    assert.equal(await page.locator('tbody tr').count(), 3);
    assert.equal(await page.getByRole('button', { name: 'Next page' }).isDisabled(), true);
    await page.getByRole('button', { name: 'Previous page' }).click();
    await page.getByText('Page 1').waitFor();
    assert.equal(await page.locator('tbody tr').count(), 20);
  });

  await step('plugins: garbage is refused in words, field-filter is uploaded', async () => {
    await nav('Plugins').click();
    await page.getByRole('heading', { name: 'Plugins', level: 1 }).waitFor();
    await page.getByLabel('WebAssembly component (.wasm)').setInputFiles(GARBAGE);
    await page.getByLabel('Plugin name').fill('garbage');
    await page.getByRole('button', { name: 'Upload plugin' }).click();
    await expectText(page.locator('form .error'), 'The plugin was refused');
    await expectText(page.locator('form .error'), 'not a usable plugin');
    await page.getByLabel('Plugin name').fill('field-filter');
    await page.getByLabel('WebAssembly component (.wasm)').setInputFiles(PLUGIN);
    await page.getByRole('button', { name: 'Upload plugin' }).click();
    await expectText(page.locator('tbody tr'), 'field-filter');
    await expectText(page.locator('#notice'), 'Uploaded field-filter v1');
    await shot('08-plugins');
  });

  await step('dry run shows input and output side by side', async () => {
    await page.getByRole('button', { name: 'Dry run field-filter v1' }).click();
    await dialog().getByLabel('Event type').fill('booking.created');
    await dialog().getByLabel('Event data (JSON)').fill('{"booking": {"id": "bk_9", "status": "confirmed"}}');
    await dialog().getByLabel('Plugin configuration (JSON)').fill('{"pointer": "/data/booking/status", "values": ["confirmed"]}');
    await dialog().getByRole('button', { name: 'Run' }).click();
    await expectText(dialog().locator('.outcome'), 'Outcome: deliver');
    await expectText(dialog().locator('section[aria-label="Input"]'), 'bk_9');
    await expectText(dialog().locator('section[aria-label="Output"]'), 'bk_9');
    await shot('09-plugin-dry-run');
    await dialog().getByLabel('Plugin configuration (JSON)').fill('{"pointer": "/data/booking/status", "values": ["pending"]}');
    await dialog().getByRole('button', { name: 'Run' }).click();
    await expectText(dialog().locator('.outcome'), 'Outcome: drop');
    await dialog().getByLabel('Plugin configuration (JSON)').fill('{"pointer": ');
    await dialog().getByRole('button', { name: 'Run' }).click();
    await expectText(dialog().locator('.error'), 'not valid JSON');
    await dialog().getByRole('button', { name: 'Close' }).click();
  });

  await step('a JavaScript plugin: a syntax error is refused with its line, a fixed script is ready and dry-runs', async () => {
    await page.getByLabel('Script name').fill('deal-js');
    await page.getByLabel('JavaScript source').fill('export function transform(event) {\n  return { body: { deal: event.data.booking.id } ;\n}\n');
    await page.getByRole('button', { name: 'Upload script' }).click();
    await expectText(page.locator('form .error'), 'The script was refused');
    await expectText(page.locator('form .error'), 'line 2');
    await page.getByLabel('JavaScript source').fill('export function transform(event) {\n  return { body: { deal: event.data.booking.id } };\n}\n');
    await page.getByRole('button', { name: 'Upload script' }).click();
    await expectText(page.locator('#notice'), 'Uploaded deal-js v1');
    const row = page.locator('tbody tr', { hasText: 'deal-js' });
    await expectText(row, 'JavaScript');
    await expectText(row, 'ready');
    await page.getByRole('button', { name: 'Dry run deal-js v1' }).click();
    await dialog().getByLabel('Event type').fill('booking.created');
    await dialog().getByLabel('Event data (JSON)').fill('{"booking": {"id": "bk_7"}}');
    await dialog().getByRole('button', { name: 'Run' }).click();
    await expectText(dialog().locator('.outcome'), 'Outcome: deliver');
    await expectText(dialog().locator('section[aria-label="Output"]'), '"deal": "bk_7"');
    await dialog().getByRole('button', { name: 'Close' }).click();
  });

  await step('attach the plugin to an endpoint with its JSON config', async () => {
    await nav('Webhooks').click();
    await card('My integration (renamed)').getByRole('button', { name: 'Plugins' }).click();
    await dialog().getByRole('heading', { name: 'Plugin chain of My integration (renamed)' }).waitFor();
    await dialog().getByRole('button', { name: 'Add plugin to chain' }).click();
    const picked = await dialog().getByLabel('Plugin 1', { exact: true }).evaluate((sel) => sel.selectedOptions[0].textContent);
    assert.match(picked, /^field-filter v1/);
    const cfg = dialog().getByLabel('Configuration of plugin 1 (JSON)');
    await cfg.fill('{"pointer": "/data/booking/status", "values": [');
    await dialog().getByRole('button', { name: 'Save chain' }).click();
    await expectText(dialog().locator('.error'), 'not valid JSON');
    await cfg.fill('{"pointer": "/data/booking/status", "values": ["confirmed"]}');
    await dialog().getByRole('button', { name: 'Save chain' }).click();
    await expectText(card('My integration (renamed)'), '1 in chain');
    await expectText(page.locator('#notice'), 'Plugin chain saved');
    // A fresh load for the README's picture: no notice, no hover.
    await page.reload();
    await card('My integration (renamed)').waitFor();
    await page.mouse.move(0, 0);
    await shot('05-endpoints');
  });

  await step('event catalog: add, duplicate refused in words, edit, delete', async () => {
    await nav('Event catalog').click();
    await page.getByRole('heading', { name: 'Event catalog' }).waitFor();
    await expectText(page.locator('tbody tr'), 'webhook.test');
    await page.getByRole('button', { name: 'Add event type' }).click();
    await dialog().getByLabel('Name').fill('listing.created');
    await dialog().getByLabel('Description').fill('New listing created');
    await dialog().getByLabel('Example payload (JSON, optional)').fill('{"listing": {"id": "lst_xyz", "price": 85000}}');
    await dialog().getByRole('button', { name: 'Add event type' }).click();
    await expectText(page.locator('tr[data-event-type="listing.created"]'), 'lst_xyz');
    await page.getByRole('button', { name: 'Add event type' }).click();
    await dialog().getByLabel('Name').fill('listing.created');
    await dialog().getByRole('button', { name: 'Add event type' }).click();
    await expectText(dialog().locator('.error'), 'HTTP 409');
    await dialog().getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('button', { name: 'Edit listing.created' }).click();
    await dialog().getByLabel('Description').fill('Listing went live');
    await dialog().getByRole('button', { name: 'Save changes' }).click();
    await expectText(page.locator('tr[data-event-type="listing.created"]'), 'Listing went live');
    await shot('10-catalog');
    await page.getByRole('button', { name: 'Delete listing.created' }).click();
    await dialog().getByRole('button', { name: 'Delete event type' }).click();
    await page.locator('tr[data-event-type="listing.created"]').waitFor({ state: 'detached' });
    // An API refusal is shown, not swallowed: booking.created is subscribed.
    await page.getByRole('button', { name: 'Delete booking.created' }).click();
    await dialog().getByRole('button', { name: 'Delete event type' }).click();
    await expectText(page.locator('#alerts'), 'is subscribed by');
  });

  await step('Delete an endpoint after confirming', async () => {
    await nav('Webhooks').click();
    await card(FLAKY).getByRole('button', { name: 'Delete' }).click();
    await dialog().getByRole('heading', { name: `Delete ${FLAKY}?` }).waitFor();
    await expectText(dialog(), 'cannot be undone');
    await dialog().getByRole('button', { name: 'Delete endpoint' }).click();
    await card(FLAKY).waitFor({ state: 'detached' });
    await card('My integration (renamed)').waitFor();
  });

  await step('keyboard: Add endpoint opens and Escape closes step 1, focus returns', async () => {
    const add = page.getByRole('button', { name: 'Add endpoint' });
    await add.focus();
    await page.keyboard.press('Enter');
    await dialog().getByRole('heading', { name: 'Step 1 of 2: New endpoint' }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.closest('dialog') !== null), true, 'focus moved into the dialog');
    await page.keyboard.press('Escape');
    await dialog().waitFor({ state: 'detached' });
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Add endpoint');
  });

  await step('narrow screen (360 px): no horizontal scrolling', async () => {
    await page.setViewportSize({ width: 360, height: 800 });
    await page.reload();
    await card('My integration (renamed)').waitFor();
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360), 'endpoints fit in 360 px');
    await shot('11-endpoints-narrow');
    await nav('Plugins').click();
    await page.getByRole('heading', { name: 'Plugins', level: 1 }).waitFor();
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360), 'plugins fit in 360 px');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step('every control has an accessible name', async () => {
    for (const view of ['Webhooks', 'Plugins', 'Event catalog']) {
      await nav(view).click();
      await page.getByRole('heading', { name: view, level: 1 }).waitFor();
      const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, select, textarea, a[href]')]
        .filter((el) => {
          if (el.type === 'hidden') return false;
          const labelled = el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
          return !labelled && !el.textContent.trim();
        }).map((el) => el.outerHTML.slice(0, 80)));
      assert.deepEqual(unnamed, [], `controls without a name on ${view}`);
    }
  });

  await step('operator token opens the operator view: create tenant, key shown once, revoke, delete', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to hookgate' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('hookgate.session')), null);
    await signIn(ADMIN);
    await page.getByRole('heading', { name: 'Tenants', level: 1 }).waitFor();
    await page.getByRole('heading', { name: 'Deliveries now' }).waitFor();
    assert.match(await page.locator('.queue-depth').textContent(), /^\d+$/);
    assert.match(await page.locator('.rate').textContent(), /^\d+\.\d$/);
    await expectText(page.locator('.failure-rate'), 'attempts in the last minute');
    await expectText(page.locator('tbody tr'), 'MOGU Travel');
    await page.getByLabel('Tenant name').fill('Globex');
    await page.getByRole('button', { name: 'Create tenant' }).click();
    await page.getByRole('heading', { name: 'API keys of Globex' }).waitFor();
    await expectText(page.locator('#notice'), 'Tenant Globex created');
    await page.getByLabel('Key name').fill('ci');
    await page.getByRole('checkbox', { name: /^Publish/ }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    await dialog().getByRole('heading', { name: 'Save the new API key' }).waitFor();
    const token = await dialog().getByLabel('API key').inputValue();
    assert.ok(token.length > 20, token);
    const done = dialog().getByRole('button', { name: 'Done' });
    assert.equal(await done.isDisabled(), true);
    await dialog().getByLabel('I have saved the secret in a safe place').check();
    await done.click();
    const keyRow = page.locator('section.keys tbody tr').filter({ hasText: 'ci' });
    await expectText(keyRow, 'publish');
    await expectText(keyRow, 'endpoints');
    await shot('12-operator');
    await page.getByRole('button', { name: 'Revoke key ci' }).click();
    await dialog().getByRole('button', { name: 'Revoke key' }).click();
    await page.locator('section.keys').getByText('No keys yet.').waitFor();
    await page.getByRole('button', { name: 'Delete tenant Globex' }).click();
    await dialog().getByRole('button', { name: 'Delete tenant' }).click();
    await page.locator('tbody tr').filter({ hasText: 'Globex' }).waitFor({ state: 'detached' });
    await expectText(page.locator('#notice'), 'Tenant deleted');
  });

  await step('no script errors, no CSP violations, nothing fetched from outside', async () => {
    const real = problems.filter((p) => !p.includes('Failed to load resource'));
    assert.deepEqual(real, [], 'console errors');
    assert.deepEqual(external, [], 'requests to other origins');
  });
} catch (e) {
  console.error(`FAILED at step: ${current}`);
  console.error(e);
  console.error(`console problems so far: ${JSON.stringify(problems, null, 2)}`);
  await shot('failure').catch(() => {});
  await context.close();
  process.exit(1);
}
await context.close();
console.log('dashboard flow passed');
