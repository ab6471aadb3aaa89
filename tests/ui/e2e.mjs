// Browser end-to-end test of the Coffer management UI, run by
// tests/ui_e2e_test.go against two fresh appliances of
// `coffer demo --wizard` (COFFER_* and COFFER2_*, see lib.mjs):
//
//  1. the setup wizard with the mouse, with a wrong entry on each step
//     that validates one (weak password, unknown time zone, wrong
//     recovery-key group), the vCenter certificate compared with the
//     simulator's, the policy preview, "back up now";
//  2. the first backup watched live on its job page;
//  3. a file found in the catalog, browsed to and downloaded;
//  4. a viewer without controls, refused a forged POST;
//  5. the whole wizard again on the second appliance by keyboard alone.
//
// Every page visited is screenshotted into COFFER_UI_ARTIFACTS and
// checked for unlabelled form controls, console errors, uncaught
// exceptions, CSP violations and 5xx answers. A failed section is
// reported and the next goes on; the exit status is 1 if any failed.
import fs from 'node:fs';
import path from 'node:path';
import {
  Run, launch, demoFromEnv, env, check, AssertionError,
  tab, tabTo, skipToMain, retype, focusMatches, describeFocus, normHex,
} from './lib.mjs';

const run = new Run(env('COFFER_UI_ARTIFACTS'));
const A = demoFromEnv('COFFER_');
const B = process.env.COFFER2_URL ? demoFromEnv('COFFER2_') : null;

// Strong: three classes, no user name, none of access's common words.
const ADMIN = { user: 'admin', password: 'Tq7!e2e-Marigold-9' };
const VIEWER = { user: 'auditor', password: 'Vw4!e2e-Juniper-2' };
const DEMO_VMS = ['web01', 'web02', 'db01', 'fileserver', 'build-old'];
// makeDemoDiskSeeded (appliance/cli/demo.go) writes dirNN/fileNNN.txt on
// every demo disk; file001.txt (text, < 41 KB) is on each, in dir01.
const SEARCH = 'file001.txt';
const DONE_OK = ['succeeded', 'warning', 'partial'];
const DONE_BAD = ['failed', 'canceled', 'cancelled', 'interrupted'];

const pathname = (page) => new URL(page.url()).pathname;

// navigates runs action (a click or key press that submits or follows a
// link) and waits for the next document to load.
async function navigates(page, action) {
  const committed = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame(), timeout: 60_000 });
  committed.catch(() => {}); // if action throws, its error is the one to report
  await action();
  await committed;
  await page.waitForLoadState('load');
}

async function expectPath(page, want, what) {
  check(pathname(page) === want, `${what} went to ${page.url()}, want ${want}`);
}

async function goto(page, url) {
  const r = await page.goto(url);
  check(r && r.status() === 200, `GET ${url}: HTTP ${r?.status()} ${r ? (await r.text()).slice(0, 200) : ''}`);
  return r;
}

async function apiJSON(page, url) {
  const r = await page.request.get(url);
  check(r.ok(), `GET ${url}: HTTP ${r.status()} ${(await r.text()).slice(0, 200)}`);
  return r.json();
}

async function fieldError(page, sel, field, re) {
  const err = page.locator(sel);
  check(await err.isVisible(), `no error is shown at ${sel} next to ${field}`);
  const msg = (await err.textContent()).trim();
  check(re.test(msg), `the error next to ${field} reads "${msg}", want ${re}`);
  const id = sel.replace(/^#/, '');
  check(await page.getAttribute(field, 'aria-invalid') === 'true', `${field} is not marked aria-invalid after the error`);
  const by = (await page.getAttribute(field, 'aria-describedby')) || '';
  check(by.split(/\s+/).includes(id), `${field} is not aria-describedby its error ${sel} (aria-describedby="${by}")`);
  check(/correct the marked fields/.test(await page.locator('.flash.error[role=alert]').textContent().catch(() => '')),
    'the banner "Please correct the marked fields." is missing');
  run.log(`   error shown: ${msg}`);
}

// ---------------------------------------------------------------- wizard, mouse

async function wizardMouse(page) {
  // Each step needs the one before: the wizard stops at the first failure.
  const steps = [];
  const step = (name, fn) => steps.push([name, fn]);
  step('wizard (mouse) 1/8: administrator account', async () => {
    await page.goto('/setup');
    await expectPath(page, '/setup/admin', 'GET /setup on a fresh appliance');
    await run.checkPage(page, 'admin');
    check(await page.inputValue('#username') === 'admin', 'the user name is not prefilled with "admin"');
    await page.getByLabel('User name').fill(ADMIN.user);
    // 12 characters (the browser's minlength), but only two classes.
    await page.getByLabel('Password', { exact: true }).fill('password1234');
    await page.getByLabel('Password again').fill('password1234');
    await navigates(page, () => page.getByRole('button', { name: 'Next' }).click());
    await expectPath(page, '/setup/admin', 'a weak password');
    await fieldError(page, '#password-error', '#password', /three of/);
    await run.checkPage(page, 'admin-weak-password');
    await page.getByLabel('Password', { exact: true }).fill(ADMIN.password);
    await page.getByLabel('Password again').fill(ADMIN.password);
    await navigates(page, () => page.getByRole('button', { name: 'Next' }).click());
    await expectPath(page, '/setup/network', 'the administrator account');
  });

  step('wizard (mouse) 2/8: network and time', async () => {
    await run.checkPage(page, 'network');
    check(await page.isChecked('#mode-dhcp'), 'DHCP is not preselected');
    check(await page.inputValue('#hostname') === 'coffer-demo', `host name prefilled "${await page.inputValue('#hostname')}"`);
    await page.getByLabel('Time zone').fill('Mars/Olympus_Mons');
    await navigates(page, () => page.getByRole('button', { name: 'Next' }).click());
    await expectPath(page, '/setup/network', 'an unknown time zone');
    await fieldError(page, '#tz-error', '#time_zone', /unknown time zone/);
    check(await page.inputValue('#time_zone') === 'Mars/Olympus_Mons', 'the rejected time zone is not kept in the field');
    await run.checkPage(page, 'network-bad-time-zone');
    await page.getByLabel('Time zone').fill('Europe/Berlin');
    await navigates(page, () => page.getByRole('button', { name: 'Next' }).click());
    await expectPath(page, '/setup/storage', 'the network step');
  });

  step('wizard (mouse) 3/8: storage', async () => {
    await run.checkPage(page, 'storage');
    await page.getByLabel(/A directory stands in for the pool/).check();
    check(await page.inputValue('#path') === A.pool, `the directory is "${await page.inputValue('#path')}", want ${A.pool}`);
    await navigates(page, () => page.getByRole('button', { name: 'Next' }).click());
    await expectPath(page, '/setup/encryption', 'the storage step');
  });

  step('wizard (mouse) 4/8: encryption and recovery key', async () => {
    await run.checkPage(page, 'encryption');
    const key = (await page.textContent('#recovery-key')).trim();
    const groups = key.split('-');
    check(groups.length >= 8 && groups.every((g) => /^[A-Z0-9]{1,5}$/.test(g)), `the recovery key "${key}" is not dash-separated groups`);
    const asked = async () => Promise.all([0, 1].map(async (i) => {
      const m = /Group (\d+)/.exec(await page.textContent(`label[for=answer${i}]`));
      check(m, `the label of #answer${i} does not name a group`);
      return Number(m[1]);
    }));
    const [g0, g1] = await asked();
    check(g0 >= 1 && g1 <= groups.length && g0 < g1, `asked for groups ${g0} and ${g1} of ${groups.length}`);
    const wrong = groups[g1 - 1].replace(/./g, (c) => (c === 'Z' ? 'Y' : 'Z'));
    await page.getByLabel(`Group ${g0}`, { exact: true }).fill(groups[g0 - 1]);
    await page.getByLabel(`Group ${g1}`, { exact: true }).fill(wrong);
    await navigates(page, () => page.getByRole('button', { name: 'Next' }).click());
    await expectPath(page, '/setup/encryption', 'a wrong group');
    await fieldError(page, '#a1-error', '#answer1', /does not match/);
    check(await page.locator('#a0-error').count() === 0, 'the right group is marked wrong too');
    await run.checkPage(page, 'encryption-wrong-group');
    check((await page.textContent('#recovery-key')).trim() === key, 'the recovery key changed after a wrong answer');
    const [h0, h1] = await asked();
    check(h0 === g0 && h1 === g1, `the groups asked changed from ${g0},${g1} to ${h0},${h1}`);
    await page.getByLabel(`Group ${g1}`, { exact: true }).fill(groups[g1 - 1].toLowerCase()); // case is forgiven
    await navigates(page, () => page.getByRole('button', { name: 'Next' }).click());
    await expectPath(page, '/setup/vcenter', 'the recovery key step');
  });

  step('wizard (mouse) 5/8: vCenter', async () => {
    await run.checkPage(page, 'vcenter');
    await page.getByLabel(/^Address/).fill(A.vcURL);
    await page.getByLabel('User name').fill(A.vcUser);
    await page.getByLabel('Password').fill(A.vcPassword);
    await navigates(page, () => page.getByRole('button', { name: "Show the server's certificate" }).click());
    const shown = (await page.textContent('#thumbprint')).trim();
    check(normHex(shown) === normHex(A.vcSHA256), `the page shows thumbprint ${shown}, the simulator's is ${A.vcSHA256}`);
    run.log(`   thumbprint ${shown} matches the simulator's`);
    check(await page.inputValue('#url') === A.vcURL, 'the address is not kept after showing the certificate');
    check(await page.inputValue('#username') === A.vcUser, 'the user name is not kept after showing the certificate');
    await run.checkPage(page, 'vcenter-certificate');
    if (await page.inputValue('#password') === '') {
      run.log('   note: the password field is empty after "Show the server\'s certificate"; typing it again');
      await page.getByLabel('Password').fill(A.vcPassword);
    }
    await page.getByLabel(/I compared this thumbprint/).check();
    await navigates(page, () => page.getByRole('button', { name: 'Test connection and go on' }).click());
    await expectPath(page, '/setup/policy', 'the vCenter step');
  });

  step('wizard (mouse) 6/8: first policy', async () => {
    await run.checkPage(page, 'policy');
    const [posted] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/setup/policy'),
      navigates(page, () => page.getByRole('button', { name: 'Preview which VMs it covers' }).click()),
    ]);
    check(posted.status() === 200, `the preview answered HTTP ${posted.status()}`);
    const items = (await page.locator('#preview li').allTextContents()).map((s) => s.trim().split(/\s+/)[0]);
    for (const vm of DEMO_VMS) check(items.includes(vm), `the preview lacks ${vm}: ${items.join(', ')}`);
    check(/protects 5 VM/.test(await page.textContent('main h2')), 'the preview does not say it protects 5 VMs');
    await run.checkPage(page, 'policy-preview');
    await navigates(page, () => page.getByRole('button', { name: 'Next' }).click());
    await expectPath(page, '/setup/options', 'the policy step');
  });

  step('wizard (mouse) 7/8: tape and replication', async () => {
    await run.checkPage(page, 'options');
    await navigates(page, () => page.getByRole('button', { name: 'Next' }).click());
    await expectPath(page, '/setup/summary', 'the options step');
  });

  let jobID = '';
  step('wizard (mouse) 8/8: summary, finish and back up now', async () => {
    await run.checkPage(page, 'summary');
    const dl = await page.textContent('main dl');
    for (const want of ['Europe/Berlin', 'DHCP', A.pool, A.vcURL]) {
      check(dl.includes(want), `the summary lacks "${want}": ${dl.replace(/\s+/g, ' ')}`);
    }
    check(await page.getByLabel(/Back up now/).isChecked(), '"Back up now" is not checked by default');
    await navigates(page, () => page.getByRole('button', { name: 'Finish setup' }).click());
    const m = /^\/jobs\/([^/]+)$/.exec(pathname(page));
    check(m, `Finish setup went to ${page.url()}, want /jobs/<job id>`);
    jobID = decodeURIComponent(m[1]);
    run.log(`   the first backup is job ${jobID}`);
  });
  for (const [name, fn] of steps) {
    if (!(await run.section(name, page, fn))) return { ok: false, jobID };
  }
  return { ok: true, jobID };
}

// ---------------------------------------------------------------- job page

async function apiJobState(page, id) {
  try {
    return (await apiJSON(page, `/api/v1/jobs/${encodeURIComponent(id)}`)).state;
  } catch (e) {
    return `unknown (${e.message})`;
  }
}

async function watchJob(page, jobID) {
  await run.section('job page: the first backup finishes, shown live', page, async () => {
    if (pathname(page) !== `/jobs/${jobID}`) await page.goto(`/jobs/${encodeURIComponent(jobID)}`);
    await run.checkPage(page, 'job-running');
    check(/ok=/.test(page.url()) ? /first backup is running/i.test(await page.textContent('main')) : true,
      'the job page does not show the "setup is complete" banner');
    await page.evaluate(() => { window.cofferE2ESameDocument = true; });
    check(await page.locator('[data-live-job]').count() > 0,
      'the job page has no [data-live-job] element, so app.js does not update it live');
    const seen = [];
    let rows = 0; // the most per-VM progress rows seen while live
    let final = '';
    const deadline = Date.now() + 180_000;
    while (!final && Date.now() < deadline) {
      let s = null;
      try {
        s = await page.evaluate(() => ({
          same: !!window.cofferE2ESameDocument,
          state: document.querySelector('[data-live-job] [data-field=state]')?.textContent.trim() ?? null,
          rows: document.querySelectorAll('[data-live-job] [data-vm]').length,
          pct: [...document.querySelectorAll('[data-live-job] [data-vm] [data-field=pct]')].map((p) => p.textContent.trim()),
        }));
      } catch {
        // a navigation is under way; the next round tells
      }
      if (s) {
        if (!s.same) throw new AssertionError(`the job page reloaded before it showed the end of the job live (states seen: ${seen.join(' → ')})`);
        check(s.state !== null, 'the job page has no [data-field=state] in [data-live-job] (what app.js updates)');
        rows = Math.max(rows, s.rows);
        if (seen.at(-1) !== s.state) {
          seen.push(s.state);
          run.log(`   job state on the page: ${s.state}${s.pct.length ? ` (${s.pct.join(', ')})` : ''}`);
        }
        if (DONE_OK.includes(s.state)) final = s.state;
        else if (DONE_BAD.includes(s.state)) throw new AssertionError(`the first backup ended ${s.state}`);
      }
      if (!final) await page.waitForTimeout(100);
    }
    check(final, `the job page still reads "${seen.at(-1)}" after 3 minutes; the API says ${await apiJobState(page, jobID)}`);
    if (seen.length === 1) run.log('   note: the job had ended before the page loaded; no live update was needed');
    else {
      run.log(`   live: ${seen.join(' → ')} without a reload`);
      // Progress per VM while the job runs: the rows are rendered for the
      // VMs the job had selected when the page loaded; any it selects
      // later must appear too.
      if (rows < DEMO_VMS.length) {
        run.fail(`job page: while the job ran, the live progress showed ${rows} per-VM row(s) ([data-live-job] [data-vm]), ` +
          `want ${DEMO_VMS.length} (the job has ${(await apiJSON(page, `/api/v1/jobs/${encodeURIComponent(jobID)}`)).vms?.length} VMs)`);
      }
    }
    await page.waitForTimeout(1200); // app.js may reload the page once the job ends
    await page.waitForLoadState('load');
    await run.checkPage(page, 'job-finished');
    const text = await page.textContent('main');
    for (const vm of DEMO_VMS) check(text.includes(vm), `the finished job page does not mention ${vm}`);
  });
  // What follows needs the backup done: wait over the API in any case.
  const deadline = Date.now() + 180_000;
  let st = '';
  while (Date.now() < deadline) {
    st = await apiJobState(page, jobID);
    if (DONE_OK.includes(st) || DONE_BAD.includes(st)) break;
    await page.waitForTimeout(500);
  }
  run.log(`   job ${jobID} is ${st} (API)`);
  return DONE_OK.includes(st);
}

// ---------------------------------------------------------------- pages as admin

const ADMIN_PAGES = [
  ['/', 'dashboard'], ['/vms', 'vms'], ['/policies', 'policies'], ['/jobs', 'jobs'], ['/points', 'points'],
  ['/storage', 'storage'], ['/settings', 'settings'], ['/audit', 'audit'],
];

async function adminPages(page) {
  for (const [url, name] of ADMIN_PAGES) {
    await run.section(`admin: page ${url}`, page, async () => {
      await goto(page, url);
      await run.checkPage(page, 'admin-' + name);
      check(await page.locator('main h1').count() > 0, `${url} has no <h1>`);
      if (url === '/') {
        const protectedVMs = (await page.textContent('.tile.ok .value')).trim();
        check(protectedVMs === String(DEMO_VMS.length), `the dashboard shows ${protectedVMs} protected VMs, want ${DEMO_VMS.length}`);
      }
      if (url === '/vms') {
        const text = await page.textContent('main');
        for (const vm of DEMO_VMS) check(text.includes(vm), `/vms does not list ${vm}`);
      }
    });
  }
}

// ---------------------------------------------------------------- files

async function findAndDownload(page) {
  await run.section(`files: search for ${SEARCH}, browse its point, download it`, page, async () => {
    // The catalog is built by the backup job; give it a moment.
    let hits = [];
    for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
      hits = await apiJSON(page, `/api/v1/files/search?q=${encodeURIComponent(SEARCH)}`);
      if (hits.length) break;
      await page.waitForTimeout(1000);
    }
    check(hits.length > 0, `GET /api/v1/files/search?q=${SEARCH} finds nothing`);
    run.log(`   the API finds ${hits.length} hit(s), e.g. ${hits[0].path} in point ${hits[0].point} (${hits[0].name})`);

    await goto(page, '/points');
    await run.checkPage(page, 'points');
    const q = page.locator('form[action="/points/search"] input[name=q]');
    check(await q.count() === 1, '/points has no search form (form action="/points/search" with an input named q)');
    await q.fill(SEARCH);
    await navigates(page, () => q.press('Enter'));
    await expectPath(page, '/points/search', 'the search form');
    check(new URL(page.url()).searchParams.get('q') === SEARCH, `the search went to ${page.url()}`);
    await run.checkPage(page, 'points-search');
    const browse = page.locator('main a[href*="/browse"]');
    check(await browse.count() > 0, `the search page lists no result linking to /points/:id/browse (the API has ${hits.length} hits)`);
    await navigates(page, () => browse.first().click());
    check(/^\/points\/[^/]+\/browse$/.test(pathname(page)), `the result link went to ${page.url()}`);
    await run.checkPage(page, 'points-browse');

    const links = await page.locator('main a[href*="/files/download"]').evaluateAll((as) => as.map((a) => ({ raw: a.getAttribute('href'), abs: a.href })));
    const link = links.find((l) => (new URL(l.abs).searchParams.get('path') || '').endsWith('/' + SEARCH));
    check(link, `the point browser lists no download link for ${SEARCH}: ${links.map((l) => l.raw).slice(0, 8).join(', ') || 'none'}`);
    const u = new URL(link.abs);
    const m = /^\/api\/v1\/points\/([^/]+)\/files\/download$/.exec(u.pathname);
    check(m, `the download link is ${link.raw}, want /api/v1/points/:id/files/download?path=…`);
    const pointID = decodeURIComponent(m[1]);
    const filePath = u.searchParams.get('path');
    const hit = hits.find((h) => h.point === pointID && h.path === filePath && (!u.searchParams.get('volume') || h.volume === u.searchParams.get('volume')));
    check(hit, `${filePath} of point ${pointID} (the link) is not among the API's search hits`);

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator(`main a[href="${link.raw.replace(/["\\]/g, '\\$&')}"]`).first().click(),
    ]);
    check(download.suggestedFilename() === SEARCH, `the download is named ${download.suggestedFilename()}`);
    const saved = path.join(run.artifacts, 'downloaded-' + SEARCH);
    await download.saveAs(saved);
    const got = fs.readFileSync(saved);
    check(got.length > 0, 'the downloaded file is empty');
    const api = await page.request.get(`/api/v1/points/${encodeURIComponent(pointID)}/files/download?path=${encodeURIComponent(filePath)}&volume=${encodeURIComponent(hit.volume)}`);
    check(api.ok(), `the API download answers HTTP ${api.status()}`);
    const want = await api.body();
    check(got.equals(want), `the browser's download (${got.length} bytes) differs from the API's (${want.length} bytes)`);
    check(got.length === hit.size, `the download has ${got.length} bytes, the catalog says ${hit.size}`);
    run.log(`   downloaded ${filePath} of ${hit.name || hit.source} (${got.length} bytes), the same as the API's`);
  });
}

// ---------------------------------------------------------------- viewer

function visibleControls(page) {
  return page.evaluate(() => {
    const words = /\b(run|cancel|delete|remove|edit|new|add|create|save|verify|garbage|lock|unlock|restore|rebuild|retry|pause|resume)\b/i;
    const seen = (el) => (el.checkVisibility ? el.checkVisibility({ visibilityProperty: true, opacityProperty: true }) : !!el.offsetParent);
    const out = [];
    for (const el of document.querySelectorAll('main button, main input[type=submit], main input[type=button], main a, main [role=button]')) {
      if (!seen(el)) continue;
      const name = (el.getAttribute('aria-label') || el.textContent || el.value || '').trim().replace(/\s+/g, ' ');
      const href = el.getAttribute('href') || '';
      const buttonish = el.tagName !== 'A' || el.classList.contains('button') || el.getAttribute('role') === 'button';
      if (buttonish && words.test(name)) out.push(`${el.tagName.toLowerCase()} "${name}"`);
      else if (el.tagName === 'A' && /\/(edit|new|delete|run|cancel)(\?|$)/.test(href)) out.push(`link "${name}" to ${href}`);
    }
    for (const f of document.querySelectorAll('main form')) {
      if (seen(f) && (f.getAttribute('method') || 'get').toLowerCase() === 'post') out.push(`a POST form to ${f.getAttribute('action')}`);
    }
    return out;
  });
}

async function viewer(page) {
  await run.section('viewer: create a viewer over the API (admin session)', page, async () => {
    const r = await page.evaluate(async (u) => {
      const me = await (await fetch('/api/v1/me')).json();
      const body = JSON.stringify({ name: u.user, role: 'viewer', password: u.password });
      const headers = { 'Content-Type': 'application/json' };
      const noToken = (await fetch('/api/v1/users', { method: 'POST', headers, body })).status;
      const res = await fetch('/api/v1/users', { method: 'POST', headers: { ...headers, 'X-CSRF-Token': me.csrf_token }, body });
      return { csrf: !!me.csrf_token, noToken, status: res.status, body: await res.text() };
    }, VIEWER);
    check(r.csrf, 'GET /api/v1/me gives the cookie session no csrf_token');
    check(r.noToken === 403, `POST /api/v1/users without the CSRF header answered ${r.noToken}, want 403`);
    check(r.status === 201, `POST /api/v1/users answered ${r.status}: ${r.body}`);
  });

  await run.section('admin: log out', page, async () => {
    await goto(page, '/');
    await navigates(page, () => page.getByRole('button', { name: 'Log out' }).click());
    await expectPath(page, '/login', 'Log out');
    check(/logged out/.test(await page.textContent('main')), 'the login page does not say "You are logged out."');
    await run.checkPage(page, 'logged-out');
    const me = await page.request.get('/api/v1/me');
    check(me.status() === 401, `after logging out GET /api/v1/me answers ${me.status()}, want 401`);
  });

  await run.section('viewer: log in', page, async () => {
    await page.getByLabel('User name').fill(VIEWER.user);
    await page.getByLabel('Password').fill(VIEWER.password);
    await navigates(page, () => page.getByRole('button', { name: 'Log in' }).click());
    await expectPath(page, '/', 'the viewer\'s login');
    check(/viewer/.test(await page.textContent('.whoami')), 'the header does not show the viewer role');
    const nav = await page.locator('nav[aria-label=Main] a').allTextContents();
    for (const no of ['Settings', 'Audit log']) check(!nav.includes(no), `the viewer's menu offers ${no}`);
    await run.checkPage(page, 'viewer-dashboard');
  });

  for (const url of ['/policies', '/jobs', '/storage']) {
    await run.section(`viewer: no controls on ${url}`, page, async () => {
      await goto(page, url);
      await run.checkPage(page, 'viewer-' + url.slice(1));
      const bad = await visibleControls(page);
      check(bad.length === 0, `a viewer sees controls on ${url}: ${bad.join('; ')}`);
    });
  }

  await run.section('viewer: forged POSTs are refused with 403', page, async () => {
    const policies = await apiJSON(page, '/api/v1/policies');
    check(policies.length > 0, 'the viewer sees no policy');
    const jobs = await apiJSON(page, '/api/v1/jobs');
    const jobsBefore = jobs.length;
    const r = await page.evaluate(async ({ policy, job }) => {
      const csrf = document.body.dataset.csrf;
      const form = () => new URLSearchParams({ csrf_token: csrf });
      const h = { 'X-CSRF-Token': csrf };
      const st = async (url, init) => (await fetch(url, { redirect: 'manual', ...init })).status;
      return {
        [`POST /policies/${policy}/run (form)`]: await st(`/policies/${encodeURIComponent(policy)}/run`, { method: 'POST', body: form() }),
        [`POST /api/v1/policies/${policy}/run`]: await st(`/api/v1/policies/${encodeURIComponent(policy)}/run`, { method: 'POST', headers: h }),
        [`POST /api/v1/jobs/${job}/cancel`]: await st(`/api/v1/jobs/${encodeURIComponent(job)}/cancel`, { method: 'POST', headers: h }),
        'POST /api/v1/users': await st('/api/v1/users', { method: 'POST', headers: { ...h, 'Content-Type': 'application/json' }, body: '{"name":"mallory","role":"administrator","password":"Mallory-pass-1234"}' }),
      };
    }, { policy: policies[0].id, job: jobs[0]?.id || 'none' });
    const wrong = Object.entries(r).filter(([, s]) => s !== 403);
    run.log(`   ${Object.entries(r).map(([k, s]) => `${k} → ${s}`).join('; ')}`);
    check(wrong.length === 0, `not refused with 403: ${wrong.map(([k, s]) => `${k} answered ${s === 0 ? 'a redirect' : s}`).join('; ')}`);
    const jobsAfter = (await apiJSON(page, '/api/v1/jobs')).length;
    check(jobsAfter === jobsBefore, `the forged run started a job (${jobsBefore} → ${jobsAfter} jobs)`);
  });

  await run.section('viewer: log out', page, async () => {
    await goto(page, '/');
    await navigates(page, () => page.getByRole('button', { name: 'Log out' }).click());
    await expectPath(page, '/login', 'Log out');
  });
}

// ---------------------------------------------------------------- wizard, keyboard alone

// Tab stops allowed on the way to a field: the step bar's links and the
// other controls of the wizard's form.
const STEP_LINKS = 'nav[aria-label="Setup steps"] a';
const VIA_FORM = `${STEP_LINKS}, main form input, main form select, main form button, main button[data-print]`;
const NEXT = 'button[name=action][value=next]';
const BACK = '.wizard-nav a.button';

async function keyPage(page, name, first) {
  await run.checkPage(page, 'kbd-' + name);
  await skipToMain(page);
  const passed = await tabTo(page, first, STEP_LINKS);
  run.log(`   Tab: skip link → main → ${passed.length ? `${passed.length} step link(s) → ` : ''}${first}`);
}

async function pressEnterAndLoad(page) {
  await navigates(page, () => page.keyboard.press('Enter'));
}

async function wizardKeyboard(page, D) {
  const steps = [];
  const step = (name, fn) => steps.push([name, fn]);
  step('wizard (keyboard) 1/8: administrator account', async () => {
    await page.goto('/setup');
    await expectPath(page, '/setup/admin', 'GET /setup on a fresh appliance');
    await keyPage(page, 'admin', '#username');
    await retype(page, ADMIN.user);
    await tab(page, '#password');
    await page.keyboard.type(ADMIN.password);
    await tab(page, '#password2');
    await page.keyboard.type(ADMIN.password + 'x');
    await tab(page, NEXT);
    await pressEnterAndLoad(page);
    await expectPath(page, '/setup/admin', 'passwords that differ');
    await fieldError(page, '#password2-error', '#password2', /differ/);
    check(await focusMatches(page, '#password2'), `after the error the focus is on ${await describeFocus(page)}, want the marked field #password2`);
    await run.checkPage(page, 'kbd-admin-passwords-differ');
    await tab(page, '#password', { back: true });
    await page.keyboard.type(ADMIN.password);
    await tab(page, '#password2');
    await page.keyboard.type(ADMIN.password);
    await page.keyboard.press('Shift+Tab');
    check(await focusMatches(page, '#password'), `Shift+Tab from "Password again" went to ${await describeFocus(page)}`);
    await tab(page, '#password2');
    await pressEnterAndLoad(page); // Enter in a field submits with the form's first button: Next
    await expectPath(page, '/setup/network', 'the administrator account');
  });

  step('wizard (keyboard) 2/8: network and time', async () => {
    await keyPage(page, 'network', '#hostname');
    await tab(page, '#mode-dhcp');
    await page.keyboard.press('ArrowDown');
    check(await page.isChecked('#mode-static') && await focusMatches(page, '#mode-static'), 'ArrowDown on DHCP does not choose "Static address"');
    await page.keyboard.press('ArrowUp');
    check(await page.isChecked('#mode-dhcp') && await focusMatches(page, '#mode-dhcp'), 'ArrowUp does not choose DHCP again');
    for (const f of ['#address', '#gateway', '#dns', '#ntp', '#time_zone']) await tab(page, f);
    await retype(page, 'Europe/Berlin');
    await page.keyboard.press('Escape'); // close the zone suggestions
    await tab(page, BACK);
    await tab(page, NEXT);
    await tab(page, BACK, { back: true });
    await tab(page, '#time_zone', { back: true });
    await tab(page, BACK);
    await tab(page, NEXT);
    await pressEnterAndLoad(page);
    await expectPath(page, '/setup/storage', 'the network step');
  });

  step('wizard (keyboard) 3/8: storage', async () => {
    await keyPage(page, 'storage', '#kind-directory');
    check(await page.isChecked('#kind-directory'), 'the directory is not chosen');
    await tab(page, '#path');
    check(await page.inputValue('#path') === D.pool, `the directory is "${await page.inputValue('#path')}", want ${D.pool}`);
    await tab(page, BACK);
    await tab(page, NEXT);
    await pressEnterAndLoad(page);
    await expectPath(page, '/setup/encryption', 'the storage step');
  });

  step('wizard (keyboard) 4/8: recovery key', async () => {
    await run.checkPage(page, 'kbd-encryption');
    const groups = (await page.textContent('#recovery-key')).trim().split('-');
    const ask = await Promise.all([0, 1].map(async (i) => Number(/Group (\d+)/.exec(await page.textContent(`label[for=answer${i}]`))[1])));
    await skipToMain(page);
    await tabTo(page, '#answer0', `${STEP_LINKS}, button[data-print]`);
    await page.keyboard.type(groups[ask[0] - 1]);
    await tab(page, '#answer1');
    await page.keyboard.type(groups[ask[1] - 1]);
    await pressEnterAndLoad(page);
    await expectPath(page, '/setup/vcenter', 'the recovery key step');
  });

  step('wizard (keyboard) 5/8: vCenter', async () => {
    await keyPage(page, 'vcenter', '#url');
    await page.keyboard.type(D.vcURL);
    // The certificate comes first: the probe button follows the address.
    await tab(page, 'button[name=action][value=probe]');
    await pressEnterAndLoad(page);
    const shown = (await page.textContent('#thumbprint')).trim();
    check(normHex(shown) === normHex(D.vcSHA256), `the page shows thumbprint ${shown}, the simulator's is ${D.vcSHA256}`);
    await run.checkPage(page, 'kbd-vcenter-certificate');
    await skipToMain(page);
    await tabTo(page, '#username', `${STEP_LINKS}, #url, button[name=action][value=probe]`);
    await retype(page, D.vcUser);
    await tab(page, '#password');
    await page.keyboard.type(D.vcPassword);
    await tab(page, '#trust');
    await page.keyboard.press('Space');
    check(await page.isChecked('#trust'), 'Space does not tick "I trust it"');
    await tab(page, BACK);
    await tab(page, NEXT);
    await pressEnterAndLoad(page);
    await expectPath(page, '/setup/policy', 'the vCenter step');
  });

  step('wizard (keyboard) 6/8: first policy', async () => {
    await run.checkPage(page, 'kbd-policy');
    await skipToMain(page);
    await tabTo(page, 'button[name=action][value=preview]', VIA_FORM);
    await pressEnterAndLoad(page);
    const items = (await page.locator('#preview li').allTextContents()).map((s) => s.trim().split(/\s+/)[0]);
    for (const vm of DEMO_VMS) check(items.includes(vm), `the preview lacks ${vm}: ${items.join(', ')}`);
    await skipToMain(page);
    await tabTo(page, NEXT, `${VIA_FORM}, ${BACK}`);
    await pressEnterAndLoad(page);
    await expectPath(page, '/setup/options', 'the policy step');
  });

  step('wizard (keyboard) 7/8: tape and replication', async () => {
    await keyPage(page, 'options', BACK);
    await tab(page, NEXT);
    await pressEnterAndLoad(page);
    await expectPath(page, '/setup/summary', 'the options step');
  });

  step('wizard (keyboard) 8/8: summary, finish without a backup', async () => {
    await keyPage(page, 'summary', '#backup_now');
    check(await page.isChecked('#backup_now'), '"Back up now" is not checked by default');
    await page.keyboard.press('Space');
    check(!(await page.isChecked('#backup_now')), 'Space does not clear "Back up now"');
    await tab(page, BACK);
    await tab(page, 'form[action="/setup/summary"] button[type=submit]');
    await pressEnterAndLoad(page);
    await expectPath(page, '/', 'Finish setup without a backup');
    check(/Setup is complete/.test(await page.textContent('main')), 'the dashboard does not say "Setup is complete"');
    await run.checkPage(page, 'kbd-dashboard');
  });

  step('keyboard: log out and the login form', async () => {
    await tabTo(page, 'form.logout button', 'a, button');
    await pressEnterAndLoad(page);
    await expectPath(page, '/login', 'Log out');
    check(await focusMatches(page, '#username'), `the login page opens with the focus on ${await describeFocus(page)}, want #username`);
    await run.checkPage(page, 'kbd-login');
    await page.keyboard.type(ADMIN.user);
    await tab(page, '#password');
    await page.keyboard.type(ADMIN.password);
    await pressEnterAndLoad(page);
    await expectPath(page, '/', 'the keyboard login');
  });
  for (const [name, fn] of steps) {
    if (!(await run.section(name, page, fn))) return false;
  }
  return true;
}

// ---------------------------------------------------------------- main

async function newContext(browser, D, label) {
  const ctx = await browser.newContext({ baseURL: D.url, ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  await run.watch(ctx, label);
  ctx.setDefaultTimeout(20_000);
  ctx.setDefaultNavigationTimeout(60_000);
  return ctx;
}

process.on('unhandledRejection', (e) => run.fail(`unhandled: ${e?.stack || e}`));

const browser = await launch();
run.log(`chromium ${browser.version()}; appliance ${A.url}${B ? `, keyboard appliance ${B.url}` : ''}`);
try {
  const ctxA = await newContext(browser, A, 'mouse');
  const page = await ctxA.newPage();
  const { ok, jobID } = await wizardMouse(page);
  if (ok && jobID) {
    const done = await watchJob(page, jobID);
    await adminPages(page);
    if (done) await findAndDownload(page);
    else run.fail('files: skipped, the first backup did not finish');
    await viewer(page);
  } else {
    run.fail('the wizard did not finish: the job page, files and viewer checks did not run');
  }
  await ctxA.close();

  if (B) {
    const ctxB = await newContext(browser, B, 'keyboard');
    await wizardKeyboard(await ctxB.newPage(), B);
    await ctxB.close();
  } else {
    run.log('keyboard wizard: not run (COFFER2_URL is not set)');
  }
} catch (e) {
  run.fail(`unexpected: ${e.stack || e}`);
} finally {
  await browser.close();
}
run.flushProblems('end');
run.log(`${run.shots} screenshots in ${run.artifacts}`);
if (run.failures.length) {
  console.log(`\n${run.failures.length} failure(s):`);
  for (const f of run.failures) console.log(' - ' + f.split('\n')[0]);
  process.exit(1);
}
console.log('\nall browser checks passed');
