// The users service's web sign-in in headless Chromium against a real `depot serve` running the
// users service and the stub OpenID provider (tests/stubs/oidc): sign in, create the profile, be
// pending, get approved by the admin through /accept, download servicex.yaml and trade its token
// at /token/refresh, replace the token, sign out. The tests share one page and run in order.
// Leaves build/users-web.png. Run by CTest (label `browser`) or `node --test users_web.test.mjs`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repository = path.resolve(here, '../..');
const depotBinary = process.env.DEPOT_BINARY ?? path.join(repository, 'build/depot');
const artifactDir = process.env.DEPOT_ARTIFACT_DIR ?? path.join(repository, 'build');
const STARTUP_TIMEOUT_MS = 15000;
const ADMIN = 'admin@example.com';
const ADMIN_PASSWORD = 'admin-password';
const USER = 'alice@example.org'; // the stub provider's test identity

let workDir;
let depot;
let baseUrl;
let browser;
let page;
let firstToken;
const pageErrors = [];
const foreignRequests = [];

// A loopback port free a moment ago: the provider's issuer URL must be known before Depot starts.
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function startDepot(port) {
  const config = {
    host: '127.0.0.1',
    port,
    data_dir: path.join(workDir, 'data'),
    scripts_dir: path.join(repository, 'scripts'),
    log_level: 'info',
    services: [
      { name: 'idp', script: path.join(repository, 'tests/stubs/oidc'), mount: ['/idp'] },
      {
        name: 'users',
        script: 'users',
        mount: ['/'],
        config: {
          ENABLE_AUTH: 'true', JWT_SECRET_KEY: 'browser-test-secret', JWT_ADMIN: ADMIN,
          JWT_ADMIN_PASSWORD: ADMIN_PASSWORD, PASSWORD_HASH_OPS: 1, PASSWORD_HASH_MEM: 8192,
          OIDC_ISSUER: `http://127.0.0.1:${port}/idp`, OIDC_CLIENT_ID: 'depot-test-client',
          OIDC_CLIENT_SECRET: 'depot-test-secret', SECRET_KEY: 'browser-session-secret',
          CODE_GEN_IMAGE: 'sslhep/servicex_code_gen_func_adl_uproot:develop',
        },
      },
    ],
  };
  const configFile = path.join(workDir, 'depot.json');
  await writeFile(configFile, JSON.stringify(config));
  // The config section must decide the settings: a variable of the caller's would win.
  const env = { ...process.env };
  for (const name of Object.keys(config.services[1].config).concat(['DEPOT_PORT', 'DEPOT_CONFIG', 'GLOBUS_CLIENT_ID'])) {
    delete env[name];
  }
  depot = spawn(depotBinary, ['serve', '--config', configFile, '--threads', '1'], {
    cwd: workDir, env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`depot did not start:\n${output}`)), STARTUP_TIMEOUT_MS);
    const onData = (chunk) => {
      output += chunk;
      if (output.includes('"service not mounted"')) {
        clearTimeout(timer);
        reject(new Error(`a service did not mount:\n${output}`));
      } else if (output.includes('"msg":"listening"')) {
        clearTimeout(timer);
        resolve();
      }
    };
    depot.stdout.on('data', onData);
    depot.stderr.on('data', onData);
    depot.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`depot exited with ${code}:\n${output}`));
    });
  });
}

async function api(method, pathname, { body, token } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`${baseUrl}${pathname}`, { method, headers, body: body && JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

// The admin's access token, once the start hook has made the admin.
async function adminToken() {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const login = await api('POST', '/login', { body: { email: ADMIN, password: ADMIN_PASSWORD } });
    if (login.status === 200) return login.body.access_token;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('the admin never could log in');
}

async function downloadConfig() {
  const downloaded = page.waitForEvent('download');
  await page.click('#download-config');
  const download = await downloaded;
  assert.equal(download.suggestedFilename(), 'servicex.yaml');
  return readFile(await download.path(), 'utf8');
}

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'depot-users-web-'));
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  const [, launched] = await Promise.all([
    startDepot(port),
    chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium' }),
  ]);
  browser = launched;
  page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page.setDefaultTimeout(20000); // generous: CI runs it beside the other tests on two cores
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('request', (request) => {
    if (!request.url().startsWith(baseUrl)) foreignRequests.push(request.url());
  });
});

async function stopDepot() {
  if (!depot || depot.exitCode !== null) return;
  const exited = new Promise((resolve) => depot.once('exit', resolve));
  depot.kill('SIGTERM');
  await exited;
}

after(async () => {
  await Promise.all([browser?.close(), stopDepot()]);
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test('signing in through the provider leads to a profile form prefilled from the ID token', async () => {
  await page.goto(`${baseUrl}/`);
  assert.equal(await page.title(), 'Welcome · ServiceX');
  await page.click('a.button-link');
  await page.waitForURL(`${baseUrl}/profile/new`);
  assert.equal(await page.inputValue('#email'), USER);
  assert.equal(await page.inputValue('#name'), 'Alice Example');
  assert.equal(await page.inputValue('#institution'), 'Example University');
  const cookies = await page.context().cookies();
  const session = cookies.find((cookie) => cookie.name === 'servicex_session');
  assert.ok(session, 'a session cookie');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
});

test('an invalid profile is shown again with its errors; a valid one makes a pending account', async () => {
  await page.fill('#institution', '');
  await page.selectOption('#experiment', 'CMS');
  await page.locator('#institution').evaluate((input) => input.removeAttribute('required'));
  await page.click('#profile button[type="submit"]');
  await page.locator('.flash.error', { hasText: 'Profile could not be saved. Please fix invalid fields below.' }).waitFor();
  assert.equal(await page.locator('.field-error').textContent(), 'This field is required.');

  await page.fill('#institution', 'Example University');
  await page.click('#profile button[type="submit"]');
  await page.waitForURL(`${baseUrl}/profile`);
  await page.locator('.flash.success', { hasText: "Profile created! Your account is pending approval. We'll email you when it's ready." }).waitFor();
  const details = await page.locator('#profile-details').textContent();
  assert.match(details, /Experiment\s*CMS/);
  assert.match(details, /Status\s*pending approval/);

  const pending = await api('GET', '/pending', { token: await adminToken() });
  assert.deepEqual(pending.body.users.map((user) => user.email), [USER]);
});

test('approved by the admin through /accept, the profile says so', async () => {
  const accepted = await api('POST', '/accept', { body: { email: USER }, token: await adminToken() });
  assert.equal(accepted.status, 200);
  await page.reload();
  assert.match(await page.locator('#profile-details').textContent(), /Status\s*approved/);
  await page.screenshot({ path: path.join(artifactDir, 'users-web.png'), fullPage: true });
});

test('servicex.yaml names the endpoint and a token that /token/refresh trades for an access token', async () => {
  const yaml = await downloadConfig();
  const match = yaml.match(/^api_endpoints:\n {2}- name: uproot\n {4}endpoint: (.+)\n {4}token: (\S+)\n {4}type: uproot\n$/);
  assert.ok(match, yaml);
  assert.equal(match[1], `${baseUrl}/`);
  firstToken = match[2];
  const refreshed = await api('POST', '/token/refresh', { token: firstToken });
  assert.equal(refreshed.status, 200);
  assert.equal(typeof refreshed.body.access_token, 'string');
  // The access token is an approved user's: a guarded call goes through to the admin check.
  const users = await api('GET', '/users', { token: refreshed.body.access_token });
  assert.equal(users.status, 401);
  assert.match(users.body.message, /restricted to administrators/);
});

test('a new API token revokes the old one', async () => {
  await page.click('#new-token');
  await page.locator('.flash.success', { hasText: 'A new API token was made' }).waitFor();
  assert.equal((await api('POST', '/token/refresh', { token: firstToken })).status, 401);
  const yaml = await downloadConfig();
  const token = yaml.match(/token: (\S+)/)[1];
  assert.notEqual(token, firstToken);
  assert.equal((await api('POST', '/token/refresh', { token })).status, 200);
});

test('editing the profile changes it', async () => {
  await page.click('a[href="/profile/edit"]');
  await page.fill('#institution', 'Another University');
  await page.click('#profile button[type="submit"]');
  await page.locator('.flash.success', { hasText: 'Profile updated.' }).waitFor();
  assert.match(await page.locator('#profile-details').textContent(), /Institution\s*Another University/);
});

test('signing out ends the session', async () => {
  await page.click('.user-nav button');
  await page.waitForURL(`${baseUrl}/`);
  await page.locator('.flash.success', { hasText: 'You have signed out.' }).waitFor();
  await page.locator('#sign-in').waitFor();
  const response = await page.request.get(`${baseUrl}/profile`, { maxRedirects: 0 });
  assert.equal(response.status(), 302);
  assert.equal(response.headers().location, '/sign-in');
  assert.deepEqual(pageErrors, [], 'no script error on any page');
  assert.deepEqual(foreignRequests, [], 'the pages load nothing from elsewhere');
});
