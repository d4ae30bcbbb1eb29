/**
 * The web page in a real browser: Debian's Chromium, headless, driven by playwright-core. Log in,
 * upload through the file chooser (the progress bar seen moving) and by drag and drop, download
 * through the page, delete with the confirm dialog, and a second account that sees none of it.
 * Screenshots go to artifacts/page/ (git-ignored) for a person to look at.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { type Browser, type Page, chromium } from 'playwright-core';
import t from 'tap';
import { testPassword, testUser } from './helpers/accounts.js';
import { chooserShowsFocus, droppedFiles, fitsWidth, progressBetweenEnds, statusOf } from './helpers/browser-probes.js';
import { makeFile } from './helpers/files.js';
import { startHttpSide } from './helpers/http.js';
import { startServer } from './helpers/server.js';
import { tempDir } from './helpers/temp-dir.js';

const chromiumPath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
/** In CI, .ci/run installs Chromium, so a missing one fails there instead of being skipped. */
const needsChromium = {
  skip: chromiumPath || process.env['CI'] ? false : 'Chromium is not installed (apt-get install chromium): page tests skipped',
};
const screenshots = new URL('../artifacts/page/', import.meta.url);
const MiB = 1024 * 1024;

async function launch(): Promise<Browser> {
  // --no-sandbox: the tests may run as root (CI containers), where Chromium's sandbox will not start.
  return chromium.launch({ executablePath: chromiumPath ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
}

async function logIn(page: Page, base: string, user: string, password: string): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByLabel('User').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#files-view').waitFor({ state: 'visible' });
}

/** Whether `selector` is shown within 30 s: the file list is drawn once its request has come back, after the view appears. */
function becomesVisible(page: Page, selector: string): Promise<boolean> {
  return page
    .locator(selector)
    .waitFor({ state: 'visible', timeout: 30_000 })
    .then(
      () => true,
      () => false,
    );
}

t.test(
  'the page: log in, upload by the file chooser and by drop, download, delete; another account sees none of it',
  needsChromium,
  async (t) => {
    const running = await startServer(t);
    const http = await startHttpSide(running);
    const dir = tempDir(t);
    const small = await makeFile(dir, 'notes.txt', 20_000);
    const big = await makeFile(dir, 'video.bin', 48 * MiB);
    const dropped = await makeFile(dir, 'dropped.bin', 5_000);
    await mkdir(screenshots, { recursive: true });
    const browser = await launch();
    t.teardown(() => browser.close());
    const page = await browser.newPage({ acceptDownloads: true });

    await logIn(page, http.base, testUser, testPassword);
    t.notOk(await page.locator('#login').isVisible(), 'the login form is gone once logged in');
    t.ok(await becomesVisible(page, '#empty'), 'an empty store says what to do');
    t.match(await page.locator('#who').textContent(), /tester \(admin\)/u, 'who is logged in');

    // With the keyboard alone: Tab from the filter reaches the file input, its label shows the focus.
    await page.getByLabel('Filter').focus();
    await page.keyboard.press('Tab');
    t.ok(await page.evaluate(chooserShowsFocus), 'Tab reaches the file input, and its label shows the focus ring');
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.getByText('Choose files to upload').click()]);
    t.ok(chooser.isMultiple(), 'the file chooser takes several files');
    await chooser.setFiles([small.path, big.path]);
    // The progress bar seen between its ends while the big file goes up.
    await page.waitForFunction(progressBetweenEnds, undefined, { polling: 'raf', timeout: 30_000 });
    t.pass('a progress bar moved');
    await page.screenshot({ path: new URL('upload-in-progress.png', screenshots).pathname });
    await page.locator('#uploads li[data-done="true"]').nth(1).waitFor({ timeout: 60_000 });
    for (const file of [small, big]) {
      const name = file.path.split('/').pop()!;
      t.equal(
        await page.locator(`#uploads li[data-name="${name}"] .state`).textContent(),
        `verified: the server has the same SHA-256, ${file.sha256}`,
        `${name}: the row says verified, with the SHA-256 the page computed (the local file's)`,
      );
    }
    for (const file of [small, big]) {
      const stored = await running.client().stat(file.path.split('/').pop()!);
      t.equal(stored.sha256, file.sha256, `${stored.name}: the stored SHA-256 is the local file's`);
    }
    await page.locator('#files tbody tr[data-name="video.bin"]').waitFor();

    // Drag and drop: a drop event carrying a file, as the browser dispatches it.
    const transfer = await page.evaluateHandle(droppedFiles, { name: 'dropped.bin', bytes: [...dropped.bytes] });
    await page.dispatchEvent('body', 'drop', { dataTransfer: transfer });
    await page.locator('#files tbody tr[data-name="dropped.bin"]').waitFor({ timeout: 30_000 });
    t.equal((await running.client().stat('dropped.bin')).sha256, dropped.sha256, 'the dropped file is stored');
    await page.screenshot({ path: new URL('file-list.png', screenshots).pathname, fullPage: true });

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download notes.txt' }).click()]);
    t.equal(download.suggestedFilename(), 'notes.txt', 'the browser saves it under its name');
    t.equal((await readFile(await download.path())).compare(small.bytes), 0, 'the downloaded bytes are the file');

    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete dropped.bin' }).click();
    await page.locator('#files tbody tr[data-name="dropped.bin"]').waitFor({ state: 'detached' });
    const afterDelete = await running.client().list();
    t.notOk(
      afterDelete.some((file) => file.name === 'dropped.bin'),
      'deleted on the server after the confirm dialog',
    );
    await page.locator('#log tbody tr').first().waitFor();
    await page.screenshot({ path: new URL('log.png', screenshots).pathname, fullPage: true });
    await page.setViewportSize({ width: 360, height: 720 });
    t.ok(await page.evaluate(fitsWidth), 'at 360 px wide the page fits without sideways scrolling');
    await page.screenshot({ path: new URL('narrow-360.png', screenshots).pathname, fullPage: true });
    await page.setViewportSize({ width: 1280, height: 720 });
    t.match(await page.locator('#log').textContent(), /delete/u, 'the transfer log shows the delete');

    await running.server.accounts.add('bob', 'bob-password', { role: 'write' });
    const other = await browser.newPage();
    await logIn(other, http.base, 'bob', 'bob-password');
    t.ok(await becomesVisible(other, '#empty'), "bob's list is empty");
    const status = await other.evaluate(statusOf, '/files/notes.txt');
    t.equal(status, 404, "tester's file is not there for bob");
  },
);

t.test('an upload paused, the page reloaded and the same file chosen again: it resumes, no new upload', needsChromium, async (t) => {
  const running = await startServer(t);
  const http = await startHttpSide(running);
  const big = await makeFile(tempDir(t), 'movie.bin', 96 * MiB);
  const browser = await launch();
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  await logIn(page, http.base, testUser, testPassword);
  const choose = async (): Promise<void> => {
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.getByText('Choose files to upload').click()]);
    await chooser.setFiles(big.path);
  };
  await choose();
  await page.waitForFunction(progressBetweenEnds, undefined, { polling: 'raf', timeout: 30_000 });
  await page.getByRole('button', { name: 'Pause' }).click();
  await page.getByText(/^paused at /u).waitFor();

  const tusRequests: string[] = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname.startsWith('/tus/')) tusRequests.push(request.method());
  });
  await page.reload();
  await page.locator('#files-view').waitFor({ state: 'visible' });
  t.notOk(await page.locator('#login').isVisible(), 'still logged in after the reload (the session cookie)');
  await choose();
  await page.locator('#uploads li[data-done="true"]').waitFor({ timeout: 60_000 });
  t.notOk(tusRequests.includes('POST'), `no new upload was created (${tusRequests.join(', ')})`);
  t.ok(tusRequests.includes('HEAD'), 'the client asked the server where it was');
  t.equal((await running.client().stat('movie.bin')).sha256, big.sha256, 'the stored file is the local file');
});
