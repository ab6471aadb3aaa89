// Helpers of the browser end-to-end test (e2e.mjs): the browser, the
// run's failures and screenshots, page checks that run on every page
// (console errors, uncaught exceptions, CSP violations, server errors,
// form controls without a label) and keyboard navigation.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (tests/ui_e2e_test.go sets it from the output of coffer demo --wizard)`);
  return v;
}

// demoFromEnv reads what `coffer demo --wizard` printed, as the Go test
// passes it: PREFIX_URL, _VC_URL, _VC_USER, _VC_PASSWORD, _VC_SHA256, _POOL.
export function demoFromEnv(prefix) {
  return {
    url: env(prefix + 'URL'), vcURL: env(prefix + 'VC_URL'), vcUser: env(prefix + 'VC_USER'),
    vcPassword: env(prefix + 'VC_PASSWORD'), vcSHA256: env(prefix + 'VC_SHA256'), pool: env(prefix + 'POOL'),
  };
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.COFFER_UI_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic'],
  });
}

export class AssertionError extends Error {}

export function check(cond, msg) {
  if (!cond) throw new AssertionError(msg);
}

// Run holds the failures of the whole run: a failed section is recorded
// and the next one goes on, so one missing page does not hide the rest.
export class Run {
  constructor(artifacts) {
    this.artifacts = artifacts;
    this.failures = [];
    this.problems = []; // from the page listeners, checked after each section
    this.shots = 0;
    this.t0 = Date.now();
    fs.mkdirSync(artifacts, { recursive: true });
  }

  log(...a) {
    console.log(`[${((Date.now() - this.t0) / 1000).toFixed(1).padStart(5)}s]`, ...a);
  }

  fail(msg) {
    this.failures.push(msg);
    this.log('FAIL: ' + msg);
  }

  // section runs fn; a throw fails the section (with a screenshot of
  // the page), and so does any problem the listeners saw meanwhile.
  async section(name, page, fn) {
    const t = Date.now();
    this.log(`== ${name}`);
    const before = this.failures.length;
    let ok = true;
    try {
      await fn();
    } catch (e) {
      ok = false;
      this.fail(`${name}: ${e instanceof AssertionError ? e.message : e.stack || e}`);
      if (page && !page.isClosed()) {
        await this.shot(page, 'FAIL-' + name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()).catch(() => {});
        this.log(`   the page was ${page.url()}`);
      }
    }
    if (this.flushProblems(name) || this.failures.length > before) ok = false;
    this.log(`${ok ? 'ok' : 'FAILED'}: ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
    return ok;
  }

  flushProblems(where) {
    const p = this.problems.splice(0);
    for (const m of p) this.fail(`${where}: ${m}`);
    return p.length > 0;
  }

  async shot(page, name) {
    this.shots++;
    const file = `${String(this.shots).padStart(2, '0')}-${name}.png`;
    await page.screenshot({ path: path.join(this.artifacts, file), fullPage: true });
    return file;
  }

  // watch records, for every page of the context: console errors,
  // uncaught exceptions, CSP violations (reported by an init script:
  // CDP injects it past the CSP) and 5xx answers or failed assets.
  async watch(context, label) {
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} in ${e.sourceFile || document.URL}:${e.lineNumber}`);
      });
    });
    const attach = (page) => {
      page.on('console', (m) => {
        if (m.type() !== 'error') return;
        const text = m.text();
        const where = m.location()?.url || page.url();
        // A 4xx answer is how the server refuses a form (422 with the
        // marked fields, 401 on a bad login, 403 for a forbidden action);
        // the tests assert those. Assets must load, though.
        if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(text) && !where.includes('/static/')) return;
        this.problems.push(`[${label}] console error on ${page.url()}: ${text} (${where})`);
      });
      page.on('pageerror', (e) => this.problems.push(`[${label}] uncaught exception on ${page.url()}: ${e.message}`));
      page.on('response', (r) => {
        const u = r.url();
        if (r.status() >= 500) this.problems.push(`[${label}] ${r.status()} for ${r.request().method()} ${u}`);
        else if (u.includes('/static/') && r.status() >= 400) this.problems.push(`[${label}] asset ${u}: ${r.status()}`);
        if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) {
          page.lastDocument = { status: r.status(), url: u };
        }
      });
    };
    context.on('page', attach);
    for (const p of context.pages()) attach(p);
  }

  // checkPage runs on every page visited: every form control has a label
  // and the page is one of ours (the layout, not a JSON error), then a
  // full-page screenshot.
  async checkPage(page, name) {
    const file = await this.shot(page, name);
    const isHTML = await page.evaluate(() => document.body?.dataset.csrf !== undefined);
    if (!isHTML) {
      const doc = page.lastDocument || {};
      throw new AssertionError(`${page.url()} is not a page of the UI (HTTP ${doc.status}: ${(await page.textContent('body').catch(() => '')).slice(0, 200)})`);
    }
    const bad = await unlabelled(page);
    for (const b of bad) this.fail(`${name}: ${new URL(page.url()).pathname}: ${b}`);
    this.log(`   ${file}: ${new URL(page.url()).pathname}${bad.length ? `, ${bad.length} labelling problem(s)` : ''}`);
    return file;
  }
}

// unlabelled lists the form controls (but hidden fields and buttons)
// without an accessible label: <label for>, a wrapping label, aria-label
// or aria-labelledby naming text; also labels naming no element and
// duplicate ids (a label for a duplicate id names the wrong control).
export function unlabelled(page) {
  return page.evaluate(() => {
    const skip = new Set(['hidden', 'submit', 'button', 'reset', 'image']);
    const out = [];
    const text = (n) => (n?.textContent || '').trim();
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.tagName === 'INPUT' && skip.has(el.type)) continue;
      const aria = (el.getAttribute('aria-label') || '').trim();
      const by = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)
        .map((id) => text(document.getElementById(id))).join('');
      const labels = [...(el.labels || [])].map(text).join('');
      if (!aria && !by && !labels) out.push(`no label for ${el.outerHTML.slice(0, 160)}`);
    }
    for (const l of document.querySelectorAll('label[for]')) {
      if (!document.getElementById(l.htmlFor)) out.push(`<label for="${l.htmlFor}"> (${text(l)}) names no element`);
    }
    const seen = new Map();
    for (const el of document.querySelectorAll('[id]')) seen.set(el.id, (seen.get(el.id) || 0) + 1);
    for (const [id, n] of seen) if (n > 1) out.push(`id "${id}" is used ${n} times`);
    return out;
  });
}

// Keyboard navigation (no clicks).

// describeFocus names the focused element for messages.
export function describeFocus(page) {
  return page.evaluate(() => {
    const a = document.activeElement;
    if (!a || a === document.body) return 'the page body';
    let d = a.tagName.toLowerCase();
    if (a.id) d += '#' + a.id;
    for (const k of ['name', 'type', 'value', 'href']) {
      const v = a.getAttribute(k);
      if (v && !(k === 'value' && a.tagName === 'INPUT')) d += `[${k}="${v}"]`;
    }
    const t = (a.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 40);
    return t && a.tagName !== 'SELECT' ? `${d} "${t}"` : d;
  });
}

export function focusMatches(page, sel) {
  return page.evaluate((s) => !!document.activeElement && document.activeElement.matches(s), sel);
}

// focusVisible fails unless the focused element shows a focus ring.
export async function focusVisible(page) {
  const r = await page.evaluate(() => {
    const a = document.activeElement;
    if (!a || a === document.body) return 'nothing is focused';
    const cs = getComputedStyle(a);
    const ring = (cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) > 0) || cs.boxShadow !== 'none';
    return ring ? '' : `no visible focus indicator (outline ${cs.outlineStyle} ${cs.outlineWidth})`;
  });
  if (r) throw new AssertionError(`${await describeFocus(page)}: ${r}`);
}

// tab presses Tab (or Shift+Tab) once; focus must land on sel.
export async function tab(page, sel, { back = false } = {}) {
  await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
  if (!(await focusMatches(page, sel))) {
    throw new AssertionError(`after ${back ? 'Shift+Tab' : 'Tab'} the focus is on ${await describeFocus(page)}, want ${sel}`);
  }
  await focusVisible(page);
}

// tabTo presses Tab until sel has the focus; every element passed on the
// way must match via (the tab order goes top to bottom through what is
// expected on the page, nothing is skipped or foreign).
export async function tabTo(page, sel, via, max = 40) {
  const passed = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await focusMatches(page, sel)) {
      await focusVisible(page);
      return passed;
    }
    const d = await describeFocus(page);
    passed.push(d);
    if (via && !(await focusMatches(page, via))) {
      throw new AssertionError(`tabbing to ${sel}: the focus went to ${d} (after ${passed.slice(0, -1).join(' → ') || 'nothing'})`);
    }
  }
  throw new AssertionError(`${sel} was not reached in ${max} Tab presses: ${passed.join(' → ')}`);
}

// skipToMain starts on a freshly loaded page: the first Tab reaches the
// skip link, Enter on it moves the focus to <main>.
export async function skipToMain(page) {
  await tab(page, 'a.skip[href="#main"]');
  await page.keyboard.press('Enter');
  if (!(await focusMatches(page, 'main#main'))) {
    throw new AssertionError(`Enter on "Skip to content" left the focus on ${await describeFocus(page)}, want main#main`);
  }
}

// retype replaces the focused field's text by typing.
export async function retype(page, text) {
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.type(text);
}

export function normHex(s) {
  return (s || '').replace(/[^0-9a-f]/gi, '').toUpperCase();
}
