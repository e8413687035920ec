// End-to-end tests of the console in a real browser: Debian's chromium driven by
// playwright-core, against the real `outcrop` binary with the real default model; boto3 (the
// project's venv) checks what the console set up. Screenshots of every page go to
// $OUTCROP_SCREENSHOTS (default tests/browser/screenshots/).
//
// Run: `npm test` in this folder (scripts/test does), after `cargo build --release`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = process.env.OUTCROP_BIN
  || join(process.env.CARGO_TARGET_DIR || join(ROOT, "target"), "release", "outcrop");
const PYTHON = process.env.OUTCROP_PYTHON || join(ROOT, ".venv", "bin", "python");
const SHOTS = process.env.OUTCROP_SCREENSHOTS || join(ROOT, "tests", "browser", "screenshots");
const CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let server, url, dir, browser, context, page;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => ok(port)); });
    s.on("error", fail);
  });
}

async function startServer() {
  dir = mkdtempSync(join(tmpdir(), "outcrop-browser-"));
  const port = await freePort();
  writeFileSync(join(dir, "outcrop.toml"), "");
  const log = join(dir, "server.log");
  const env = { ...process.env, OUTCROP_LOG: "info" };
  env.OUTCROP_MODELS_DIR ??= join(homedir(), ".cache", "outcrop", "models");
  const out = (await import("node:fs")).openSync(log, "w");
  server = spawn(BIN, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", join(dir, "data"),
    "--config", join(dir, "outcrop.toml")], { env, stdio: ["ignore", out, out] });
  url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`outcrop exited:\n${readFileSync(log, "utf8")}`);
    try {
      if ((await fetch(`${url}/_outcrop/health`)).ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`outcrop did not become healthy:\n${readFileSync(log, "utf8")}`);
}

/** Runs Python (boto3) code with the endpoint and the given key in its environment. */
function python(args, key = "test", secret = "test") {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AWS_")));
  Object.assign(env, { AWS_ENDPOINT_URL: url, AWS_ACCESS_KEY_ID: key, AWS_SECRET_ACCESS_KEY: secret,
    AWS_DEFAULT_REGION: "us-east-1" });
  return spawnSync(PYTHON, args, { env, encoding: "utf8", timeout: 300_000 });
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(p, key, secret) {
  await p.goto(`${url}/console/sign-in`);
  await p.getByLabel("Access key ID").fill(key);
  await p.getByLabel("Secret access key").fill(secret);
  await p.getByRole("button", { name: "Sign in" }).click();
}

before(async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: cargo build --release first`);
  mkdirSync(SHOTS, { recursive: true });
  await startServer();
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_FLAGS });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("unauthenticated requests are refused", async () => {
  const r = await fetch(`${url}/console/models`, { redirect: "manual" });
  assert.equal(r.status, 303);
  assert.equal(r.headers.get("location"), "/console/sign-in");
  const post = await fetch(`${url}/console/access`, { method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" }, body: "csrf=x&model=anthropic.claude-v2" });
  assert.equal(post.status, 401);
  await page.goto(`${url}/console/playground`);
  assert.match(page.url(), /\/console\/sign-in$/);
  await signIn(page, "test", "wrong");
  assert.match(await page.getByRole("alert").innerText(), /not valid/);
  await shot("sign-in");
});

test("sign in shows the model catalog, filters and a model's page", async () => {
  await signIn(page, "test", "test");
  assert.match(page.url(), /\/console\/models$/);
  assert.equal(await page.locator("nav a[aria-current=page]").innerText(), "Model catalog");
  const row = page.locator("tr", { has: page.locator("code", { hasText: /^anthropic\.claude-v2$/ }) });
  assert.match(await row.innerText(), /Available to request/);
  await shot("models");
  await page.getByLabel("Provider").selectOption("Meta");
  await page.getByRole("button", { name: "Filter" }).click();
  const providers = await page.locator("tbody tr td:first-child").allInnerTexts();
  assert.ok(providers.length > 0 && providers.every((p) => p === "Meta"), providers.join());
  await page.goto(`${url}/console/models/anthropic.claude-v2`);
  assert.equal(await page.locator("h1").innerText(), "Claude");
  assert.match(await page.locator("main").innerText(), /\$0\.008 per 1,000 tokens/);
  await shot("model-detail");
});

test("CSRF: a form without the session's token is refused", async () => {
  const r = await context.request.post(`${url}/console/access`, {
    form: { csrf: "not-the-token", model: "anthropic.claude-v2" }, maxRedirects: 0 });
  assert.equal(r.status(), 403);
  const r2 = await context.request.post(`${url}/console/playground/converse/anthropic.claude-v2`, {
    data: { messages: [] }, headers: { "x-csrf-token": "nope" } });
  assert.equal(r2.status(), 403);
});

test("Edit + the use-case form grants anthropic.claude-v2, then the seed script succeeds", async () => {
  const denied = python([join(ROOT, "tests/python/seed/invoke_claude_v2.py")]);
  assert.notEqual(denied.status, 0);
  assert.match(denied.stderr, /AccessDeniedException/);

  await page.goto(`${url}/console/access`);
  await shot("access");
  await page.getByLabel("Enable anthropic.claude-v2", { exact: true }).check();
  await page.getByRole("button", { name: "Save changes" }).click();
  assert.equal(await page.locator("h1").innerText(), "Use case details");
  await page.getByLabel("Company name").fill("Example Corp");
  await page.getByLabel("Company website URL").fill("https://example.com");
  await page.getByLabel("Industry").fill("Software");
  await page.getByLabel("Use cases").fill("Internal assistants");
  await shot("use-case-form");
  await page.getByRole("button", { name: "Submit form and save" }).click();
  assert.match(page.url(), /\/console\/access\?granted=anthropic\.claude-v2$/);
  assert.match(await page.getByRole("status").innerText(), /Access granted to Claude \(anthropic\.claude-v2\)\. The approval notification has been sent\./);
  const row = page.locator("tr", { has: page.locator("code", { hasText: /^anthropic\.claude-v2$/ }) });
  assert.match(await row.innerText(), /Access granted/);
  await shot("access-granted");

  const seed = python([join(ROOT, "tests/python/seed/invoke_claude_v2.py")]);
  assert.equal(seed.status, 0, seed.stderr);
  assert.match(seed.stdout, /'completion':/);
});

test("the playground streams an answer (chat and text modes) with tokens, latency and cost", async () => {
  await page.goto(`${url}/console/playground?model=anthropic.claude-v2`);
  assert.equal(await page.getByLabel("Model").inputValue(), "anthropic.claude-v2");
  // Count how many times the answer grows: a streamed answer grows piece by piece.
  await page.evaluate(() => {
    window.lengths = [];
    new MutationObserver(() => {
      const t = document.querySelector(".turn.assistant .text");
      const n = t ? t.textContent.length : 0;
      if (n && n !== window.lengths.at(-1)) window.lengths.push(n);
    }).observe(document.querySelector("#transcript"), { subtree: true, childList: true, characterData: true });
  });
  await page.getByLabel("Maximum tokens").fill("160");
  await page.getByLabel("Prompt", { exact: true }).fill("Tell me a long story about a dragon and a lighthouse.");
  await page.getByRole("button", { name: "Run" }).click();
  const meta = page.locator(".turn.assistant .meta").first();
  await meta.filter({ hasText: "output tokens" }).waitFor({ timeout: 120_000 });
  const answer = await page.locator(".turn.assistant .text").first().innerText();
  assert.ok(answer.trim().length > 0, "a non-empty answer");
  const lengths = await page.evaluate(() => window.lengths);
  assert.ok(lengths.length > 1, `the answer arrived in several pieces: ${lengths}`);
  const m = (await meta.innerText()).match(/^(\d+) input tokens · (\d+) output tokens · (\d+) ms · \$(\d+\.\d{6})/);
  assert.ok(m, await meta.innerText());
  const [, input, output] = m.map(Number);
  assert.equal(m[4], ((input * 0.008 + output * 0.024) / 1000).toFixed(6));
  await shot("playground-chat");

  // The same request as code: boto3's snippet runs as shown; the OpenAI one names the path.
  await page.getByText("Code for this request").click();
  const boto3Code = await page.locator("#code-text").innerText();
  assert.match(boto3Code, /client\.converse\(/);
  const ran = python(["-c", boto3Code]);
  assert.equal(ran.status, 0, ran.stderr);
  assert.ok(ran.stdout.trim().length > 0);
  await page.getByLabel("Client").selectOption("openai");
  const openaiCode = await page.locator("#code-text").innerText();
  assert.ok(openaiCode.includes(`${url}/openai/v1`) && openaiCode.includes('"anthropic.claude-v2"'), openaiCode);
  await shot("playground-code");

  await page.getByLabel("Text").check();
  await page.getByLabel("Prompt", { exact: true }).fill("Say hello.");
  await page.getByRole("button", { name: "Run" }).click();
  await page.locator(".turn.assistant .meta").filter({ hasText: "output tokens" }).waitFor({ timeout: 120_000 });
  await shot("playground-text");
});

test("the usage page shows the calls and their cost", async () => {
  await page.goto(`${url}/console/usage`);
  const row = page.locator("#by-model tr", { has: page.locator("code", { hasText: /^anthropic\.claude-v2$/ }) });
  const cells = await row.locator("td.num").allInnerTexts();
  const [invocations, throttles, input, output, cacheRead, cacheWrite] = cells.slice(0, 6).map(Number);
  assert.ok(invocations >= 3, `seed + chat + text: ${cells}`); // the refused seed call counts too
  assert.equal(throttles, 0);
  assert.deepEqual([cacheRead, cacheWrite], [0, 0]); // no call here asked for a cache point
  // Exact decimal cost: $0.008 and $0.024 per 1,000 tokens are 8 and 24 micro-dollars a token.
  const micro = BigInt(input) * 8n + BigInt(output) * 24n;
  const cost = (Number(micro) / 1e6).toFixed(6).replace(/\.?0+$/, "");
  assert.equal(cells[6], `$${cost}`);
  assert.match(await page.locator("#total-cost").innerText(), /^\$0\.\d+/);
  await shot("usage");
});

test("a key created in the console works from boto3; policies scope what a user sees", async () => {
  await page.goto(`${url}/console/users`);
  await page.getByLabel("User name").fill("ci-user");
  await page.getByRole("button", { name: "Create user" }).click();
  await page.getByRole("button", { name: "Create access key for ci-user" }).click();
  const key = await page.locator("#access-key-id").innerText();
  const secret = await page.locator("#secret-access-key").innerText();
  await shot("key-created");
  const check = python(["-c", `
import boto3, json
r = boto3.client("bedrock-runtime").invoke_model(modelId="anthropic.claude-v2", body=json.dumps(
    {"prompt": "\\n\\nHuman: Hi\\n\\nAssistant:", "max_tokens_to_sample": 8}))
print(json.loads(r["body"].read())["stop_reason"])`], key, secret);
  assert.equal(check.status, 0, check.stderr);
  // The secret is shown once: the list has the key id only.
  await page.goto(`${url}/console/users`);
  assert.ok((await page.content()).includes(key));
  assert.ok(!(await page.content()).includes(secret));

  // A Bedrock API key made in the console answers as a bearer token until it is revoked.
  await page.getByRole("button", { name: "Create Bedrock API key for ci-user" }).click();
  const apiKey = await page.locator("#api-key").innerText();
  assert.match(apiKey, /^ABSK/);
  await shot("api-key-created");
  const bearer = () => python(["-c", `
import json, os, urllib.request, urllib.error
req = urllib.request.Request(os.environ["AWS_ENDPOINT_URL"] + "/model/anthropic.claude-v2/invoke",
    data=json.dumps({"prompt": "\\n\\nHuman: Hi\\n\\nAssistant:", "max_tokens_to_sample": 4}).encode(),
    headers={"authorization": "Bearer ${apiKey}", "content-type": "application/json"})
try:
    print(urllib.request.urlopen(req).status)
except urllib.error.HTTPError as e:
    print(e.code, json.loads(e.read())["message"])`]);
  assert.equal(bearer().stdout.trim(), "200");
  await page.goto(`${url}/console/users`);
  await shot("users");
  await page.locator("#users tr", { hasText: "ci-user" }).getByRole("button", { name: /^Revoke API key/ }).click();
  assert.equal(bearer().stdout.trim(), "403 Authentication failed: Please make sure your API Key is valid.");

  // A user allowed only to list models sees the catalog and nothing else.
  await page.getByLabel("User name").fill("reader");
  await page.getByLabel("Attach BedrockFullAccess (bedrock:*)").uncheck();
  await page.getByRole("button", { name: "Create user" }).click();
  const readerRow = page.locator("#users tr", { hasText: "reader" });
  await readerRow.getByText("Attach policy").click();
  await readerRow.getByLabel("Policy name").fill("ListOnly");
  await readerRow.getByLabel("Policy document (JSON)").fill(JSON.stringify({ Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Action: ["bedrock:ListFoundationModels", "bedrock:GetFoundationModel"],
      Resource: "*" }] }));
  await readerRow.getByRole("button", { name: "Save policy" }).click();
  await page.getByRole("button", { name: "Create access key for reader" }).click();
  const readerKey = await page.locator("#access-key-id").innerText();
  const readerSecret = await page.locator("#secret-access-key").innerText();
  const other = await browser.newContext();
  const p2 = await other.newPage();
  await signIn(p2, readerKey, readerSecret);
  const nav = await p2.locator("nav a").allInnerTexts();
  assert.deepEqual(nav, ["Model catalog"]);
  const users = await p2.goto(`${url}/console/users`);
  assert.equal(users.status(), 403);
  assert.match(await p2.locator("main").innerText(), /not authorized to perform: iam:ListUsers/);
  await p2.screenshot({ path: join(SHOTS, "refused.png"), fullPage: true });
  const pg = await p2.goto(`${url}/console/playground`);
  assert.equal(pg.status(), 200);
  assert.match(await p2.locator("main").innerText(), /No model can be invoked yet/);
  await other.close();
});

test("settings: invocation logging and a quota", async () => {
  await page.goto(`${url}/console/settings`);
  await page.getByLabel("CloudWatch log group").fill("outcrop-invocations");
  await page.getByRole("button", { name: "Save logging settings" }).click();
  assert.match(await page.locator("#logging-h + p").innerText(), /^On:/);
  const cfg = python(["-c", `
import boto3
print(boto3.client("bedrock").get_model_invocation_logging_configuration()["loggingConfig"]["cloudWatchConfig"]["logGroupName"])`]);
  assert.equal(cfg.stdout.trim(), "outcrop-invocations", cfg.stderr);

  await page.getByLabel("Model", { exact: true }).selectOption("meta.llama3-8b-instruct-v1:0");
  await page.getByLabel("Requests per minute").fill("7");
  await page.getByRole("button", { name: "Save quota" }).click();
  const row = page.locator("#quotas tr", { has: page.locator("code", { hasText: /^meta\.llama3-8b-instruct-v1:0$/ }) });
  assert.match(await row.innerText(), /^\S+\s+7\s+300000\s/); // blank fields keep their values
  await shot("settings");
  const csrf = await page.locator("input[name=csrf]").first().inputValue();
  const bad = await context.request.post(`${url}/console/settings/quotas`, {
    form: { csrf, model: "meta.llama3-8b-instruct-v1:0", rpm: "seven", action: "save" } });
  assert.equal(bad.status(), 400);
  assert.match(await bad.text(), /&quot;seven&quot; is not a whole number|"seven" is not a whole number/);
});

test("region selector and a phone-sized screen", async () => {
  await page.goto(`${url}/console/models`);
  await page.getByLabel("Region").selectOption("eu-west-1");
  await page.getByRole("button", { name: "Switch" }).click();
  await page.waitForURL(/\/console\/models$/);
  assert.equal(await page.getByLabel("Region").inputValue(), "eu-west-1");
  await page.goto(`${url}/console/models/anthropic.claude-v2`);
  assert.match(await page.locator("main").innerText(), /arn:aws:bedrock:eu-west-1::foundation-model\/anthropic\.claude-v2/);

  await page.setViewportSize({ width: 390, height: 844 });
  for (const [path, name] of [["models", "phone-models"], ["playground", "phone-playground"], ["usage", "phone-usage"]]) {
    await page.goto(`${url}/console/${path}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${path} scrolls sideways by ${overflow}px on a phone`);
    await shot(name);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
});

test("sign out ends the session", async () => {
  await page.goto(`${url}/console/models`);
  await page.getByRole("button", { name: "Sign out" }).click();
  assert.match(page.url(), /\/console\/sign-in$/);
  await page.goto(`${url}/console/usage`);
  assert.match(page.url(), /\/console\/sign-in$/);
});
