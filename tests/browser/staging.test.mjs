// The staging web page in headless Chromium against a real `depot serve` running the staging
// service: create a file, stage it, see the message, the copied file, the record and the log
// line; a missing or escaping path shows the service's error; direct_download arrives as a
// download; a running record shows a progress bar; the page works under a mount prefix. The tests
// share one page and run in order. Leaves build/staging-web.png. Run by CTest (label `browser`)
// or `node --test` in this folder.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchWithDepot } from './chromium_page.mjs';
import { artifactDir, startDepot } from './depot_server.mjs';

let workDir;
let sourceDir;
let targetDir;
let depot;
let baseUrl;
let browser;
let page;
let pageErrors;

// The staging service mounted at the root and under /staging. The config section must decide
// the storage paths: a variable of the caller's would win.
function startStaging() {
  return startDepot({
    workDir,
    services: [{
      name: 'staging',
      script: 'staging',
      mount: ['/', '/staging'],
      config: { SOURCE_STORAGE_PATH: sourceDir, TARGET_STORAGE_PATH: targetDir },
    }],
    unset: ['SOURCE_STORAGE_PATH', 'TARGET_STORAGE_PATH', 'ALLOWED_METHODS'],
  });
}

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'depot-staging-web-'));
  sourceDir = path.join(workDir, 'source');
  targetDir = path.join(workDir, 'target');
  await mkdir(sourceDir);
  await mkdir(targetDir);
  ({ depot, browser, page, pageErrors } = await launchWithDepot(startStaging()));
  baseUrl = `http://127.0.0.1:${depot.port}`;
  await page.goto(`${baseUrl}/`);
});

after(async () => {
  await Promise.all([browser?.close(), depot?.stop()]);
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test('the page loads the allowed methods and the log', async () => {
  assert.equal(await page.title(), 'SKA Staging Service');
  await page.locator('#stage-method option[value="local_copy"]').waitFor({ state: 'attached' });
  const methods = await page.locator('#stage-method option').allTextContents();
  assert.deepEqual(methods, ['local_copy', 'local_symlink', 'direct_download', 'jupyter_copy']);
  await page.locator('#logs-updated', { hasText: 'updated' }).waitFor();
  assert.notEqual(await page.locator('#logs-text').textContent(), 'Failed to fetch logs');
});

test('a file made with the creator is staged with local_copy: message, record and log line', async () => {
  await page.fill('#creator-filename', 'web-test.txt');
  await page.fill('#creator-content', 'staged from the browser\n');
  await page.click('#creator-form button[type="submit"]');
  const created = page.locator('#creator-result.success');
  await created.waitFor();
  const createdAnswer = JSON.parse(await created.textContent());
  assert.equal(createdAnswer.status, 'success');
  assert.match(createdAnswer.message, /^File 'web-test\.txt' created successfully in /);
  assert.equal(await readFile(path.join(sourceDir, 'web-test.txt'), 'utf8'), 'staged from the browser\n');

  await page.selectOption('#stage-method', 'local_copy');
  await page.fill('#stage-username', 'webtester');
  await page.fill('#stage-local-path', 'web-test.txt');
  await page.fill('#stage-relative-path', 'project/web-test.txt');
  await page.click('#stage-form button[type="submit"]');
  const staged = page.locator('#stage-result.success');
  await staged.waitFor();
  assert.equal(await staged.textContent(), 'Data staged for user webtester with method local_copy');
  const target = path.join(targetDir, 'webtester', 'project', 'web-test.txt');
  assert.equal(await readFile(target, 'utf8'), 'staged from the browser\n');

  const row = page.locator('#records-table tbody tr[data-status="success"]', { hasText: 'project/web-test.txt' });
  await row.waitFor();
  assert.match(await row.textContent(), /webtester.*local_copy/);

  await page.locator('#logs-text', { hasText: 'Data staged successfully for user webtester with method local_copy' }).waitFor();
});

test('staging a missing path or one outside the source shows the service\'s error and a failed record', async () => {
  await page.fill('#stage-local-path', 'no-such-file.txt');
  await page.fill('#stage-relative-path', 'project/missing.txt');
  await page.click('#stage-form button[type="submit"]');
  const failed = page.locator('#stage-result.error');
  await failed.waitFor();
  assert.match(await failed.textContent(), /^Source path does not exist: .*no-such-file\.txt$/);
  await page.locator('#records-table tbody tr[data-status="failed"]', { hasText: 'no-such-file.txt' }).waitFor();

  await page.fill('#stage-local-path', '../outside.txt');
  await page.click('#stage-form button[type="submit"]');
  await page.locator('#stage-result.error', { hasText: 'outside.txt' }).waitFor();
  await page.locator('#records-table tbody tr[data-status="failed"]', { hasText: '../outside.txt' }).waitFor();

  await page.screenshot({ path: path.join(artifactDir, 'staging-web.png'), fullPage: true });
});

test('direct_download hands the staged file to the browser as a download', async () => {
  await page.selectOption('#stage-method', 'direct_download');
  await page.fill('#stage-local-path', 'web-test.txt');
  const downloaded = page.waitForEvent('download');
  await page.click('#stage-form button[type="submit"]');
  const download = await downloaded;
  assert.equal(download.suggestedFilename(), 'web-test.txt');
  assert.equal(await readFile(await download.path(), 'utf8'), 'staged from the browser\n');
  await page.locator('#stage-result.success a', { hasText: 'Save web-test.txt' }).waitFor();
});

test('a running copy shows a progress bar until its record is finished', async () => {
  // The service's side of progress (bytes_done growing during a large copy) is tested over HTTP
  // in tests/services/staging. A real copy could end before the page looks on a fast machine, so
  // this page gets a running record until it has shown it, and then the finished one.
  const MiB = 1024 * 1024;
  const running = {
    id: '1796000000000-0badcafe', time: new Date().toISOString(), username: 'webtester', method: 'local_copy',
    source: `${sourceDir}/big.bin`, target: `${targetDir}/webtester/big.bin`, status: 'running', error: null,
    bytes: 0, duration: null, bytes_done: 48 * MiB, bytes_total: 64 * MiB,
  };
  const finished = { ...running, status: 'success', bytes: 64 * MiB, duration: 2.5, bytes_done: 64 * MiB };
  let copyDone = false;
  const records = (url) => url.pathname === '/stage-data/records';
  await page.route(records, (route) => route.fulfill({ json: { records: [copyDone ? finished : running] } }));
  await page.goto(`${baseUrl}/`);
  const bar = page.locator('#records-table tr[data-status="running"] progress');
  await bar.waitFor();
  assert.equal(await bar.getAttribute('max'), String(64 * MiB));
  assert.equal(await bar.getAttribute('value'), String(48 * MiB));
  assert.equal(await page.locator('#records-table .progress-text').textContent(), '75% · 48 MiB of 64 MiB');
  copyDone = true;
  await page.locator('#records-table tr[data-status="success"]', { hasText: '64 MiB' }).waitFor();
  assert.equal(await page.locator('#records-table progress').count(), 0);
  await page.unroute(records);
});

test('under a mount prefix the page reaches the service through relative URLs', async () => {
  const requested = [];
  const track = (request) => requested.push(new URL(request.url()).pathname);
  page.on('request', track);
  await page.goto(`${baseUrl}/staging/`);
  await page.locator('#stage-method option[value="local_copy"]').waitFor({ state: 'attached' });
  await page.locator('#records-table tbody tr', { hasText: 'web-test.txt' }).first().waitFor();
  await page.locator('#logs-updated', { hasText: 'updated' }).waitFor();
  page.off('request', track);
  assert.deepEqual(requested.filter((pathname) => !pathname.startsWith('/staging/')), []);

  await page.goto(`${baseUrl}/staging`); // without the slash: the page adds it
  await page.waitForURL(`${baseUrl}/staging/`);
  await page.locator('#stage-method option[value="local_copy"]').waitFor({ state: 'attached' });
  assert.deepEqual(pageErrors, [], 'no script error on the page in any test');
});
