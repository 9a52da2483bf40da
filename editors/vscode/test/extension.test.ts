// extension.ts against a fake VS Code and a fake LanguageClient: which server it starts, what
// settings it sends, what the commands and the status bar do.

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { FakeClient, FakeConfiguration, FakeVscode, install, State, use } from './fakes';

install();
// After install(): extension.ts must get the fakes, not the real modules.
const extension = require('../src/extension') as typeof import('../src/extension');

const PACKAGE = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'),
);
const PROPERTIES: Record<string, { default?: unknown }> =
  PACKAGE.contributes.configuration.properties;
const DEFAULTS = Object.fromEntries(Object.entries(PROPERTIES).map(([k, v]) => [k, v.default]));

let vscode: FakeVscode;
let tmp: string;
let fakeServer: string;

function context() {
  return { subscriptions: [] as { dispose(): unknown }[], extension: { packageJSON: PACKAGE } };
}

async function activate(): Promise<FakeClient> {
  await extension.activate(context() as never);
  const client = FakeClient.created.at(-1);
  assert.ok(client, `no client was created; errors: ${vscode.errors.join(' | ')}`);
  return client;
}

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fillpoint-ext-'));
  fakeServer = path.join(tmp, 'fillpoint');
  fs.writeFileSync(fakeServer, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  vscode = new FakeVscode(new FakeConfiguration({ ...DEFAULTS }));
  vscode.config.global.set('fillpoint.server.command', [fakeServer, 'serve']);
  use(vscode);
});

afterEach(async () => {
  await extension.deactivate();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('activate', () => {
  it('starts the configured command for Python documents', async () => {
    const client = await activate();
    assert.equal(client.server.command, fakeServer);
    assert.deepEqual(client.server.args, ['serve']);
    assert.equal(client.server.options?.cwd, '/work/project');
    const languages = client.options.documentSelector.map((s: { language: string }) => s.language);
    assert.deepEqual([...new Set(languages)], ['python']);
    assert.equal(client.state, State.Running);
    for (const name of [
      'fillpoint.restartServer',
      'fillpoint.toggleInline',
      'fillpoint.showOutput',
    ]) {
      assert.ok(vscode.commands.has(name), name);
    }
  });

  it('sends the server options only, as initializationOptions', async () => {
    vscode.config.global.set('fillpoint.maxItems', 7);
    vscode.config.global.set('fillpoint.modelPath', '~/models/release');
    const client = await activate();
    const init = client.options.initializationOptions();
    assert.deepEqual(init, {
      modelPath: path.join(os.homedir(), 'models/release'),
      maxItems: 7,
      inline: true,
      midToken: 'bytelevel',
      lineBeam: 3,
      debounceMs: 0,
      prefetch: true,
      logLevel: 'info',
    });
  });

  it('explains how to fix a server that cannot be found', async () => {
    vscode.config.global.set('fillpoint.server.command', ['/nonexistent/fillpoint', 'serve']);
    vscode.errorAnswer = 'Open Settings';
    await extension.activate(context() as never);
    assert.equal(FakeClient.created.length, 0);
    assert.equal(vscode.errors.length, 1);
    assert.match(vscode.errors[0], /\/nonexistent\/fillpoint.*Fix: set fillpoint\.server\.command/);
    assert.deepEqual(vscode.executed, [['workbench.action.openSettings', 'fillpoint']]);
    assert.match(vscode.item.text, /\$\(error\) fillpoint/);
  });
});

describe('settings changes', () => {
  it('pushes the fillpoint section without the client-only settings', async () => {
    const client = await activate();
    await vscode.config.set('fillpoint.midToken', 'bytelevel');
    assert.equal(client.notifications.length, 1);
    const [method, params] = client.notifications[0] as [
      string,
      { settings: { fillpoint: object } },
    ];
    assert.equal(method, 'workspace/didChangeConfiguration');
    assert.equal((params.settings.fillpoint as { midToken: string }).midToken, 'bytelevel');
    assert.ok(
      !Object.keys(params.settings.fillpoint).some(
        (k) => k.startsWith('server') || k.startsWith('trace'),
      ),
    );
  });

  it('ignores other sections', async () => {
    const client = await activate();
    await vscode.config.set('python.analysis.typeCheckingMode', 'strict');
    assert.equal(client.notifications.length, 0);
  });

  it('restarts the server when the server command changes', async () => {
    const first = await activate();
    const other = path.join(tmp, 'fillpoint-other');
    fs.copyFileSync(fakeServer, other);
    fs.chmodSync(other, 0o755);
    await vscode.config.set('fillpoint.server.command', [other, 'serve', '--log-level', 'debug']);
    assert.ok(first.disposed);
    const second = FakeClient.created.at(-1)!;
    assert.notEqual(second, first);
    assert.equal(second.server.command, other);
    assert.deepEqual(second.server.args, ['serve', '--log-level', 'debug']);
  });

  it('answers a pull of the fillpoint section with the server options', async () => {
    const client = await activate();
    const next = async () => [{ server: { command: ['x'] }, maxItems: 20 }, { other: 1 }];
    const items = [{ section: 'fillpoint' }, { section: 'python' }];
    const result = await client.options.middleware.workspace.configuration({ items }, {}, next);
    assert.equal(result[0].maxItems, 20);
    assert.ok(!('server' in result[0]));
    assert.deepEqual(result[1], { other: 1 });
  });
});

describe('commands', () => {
  it('toggles inline completion in the user settings and shows it', async () => {
    const client = await activate();
    await vscode.commands.get('fillpoint.toggleInline')!();
    assert.equal(vscode.config.global.get('fillpoint.inline'), false);
    assert.match(vscode.item.text, /inline off/);
    const last = client.notifications.at(-1) as [
      string,
      { settings: { fillpoint: { inline: boolean } } },
    ];
    assert.equal(last[1].settings.fillpoint.inline, false);
    await vscode.commands.get('fillpoint.toggleInline')!();
    assert.equal(vscode.config.global.get('fillpoint.inline'), true);
  });

  it('toggles in the workspace when the workspace sets it', async () => {
    vscode.config.workspace.set('fillpoint.inline', true);
    await activate();
    await vscode.commands.get('fillpoint.toggleInline')!();
    assert.equal(vscode.config.workspace.get('fillpoint.inline'), false);
    assert.equal(vscode.config.global.has('fillpoint.inline'), false);
  });

  it('restarts with a new client', async () => {
    const first = await activate();
    await vscode.commands.get('fillpoint.restartServer')!();
    assert.ok(first.disposed);
    assert.equal(FakeClient.created.length, 2);
    assert.equal(FakeClient.created[1].state, State.Running);
  });

  it('shows the output', async () => {
    await activate();
    await vscode.commands.get('fillpoint.showOutput')!();
    assert.equal(vscode.outputShown, 1);
  });
});

describe('status bar', () => {
  it('shows the state, the server version, the model and the last latency', async () => {
    const client = await activate();
    assert.match(vscode.item.text, /^\$\(sparkle\) fillpoint$/);
    assert.match(vscode.item.tooltip, /fillpoint 9\.9\.9: server running/);
    client.handlers.get('fillpoint/status')!({ state: 'ready', model: 'fillpoint-pycoder' });
    const token = { isCancellationRequested: false };
    const items = await client.options.middleware.provideInlineCompletionItems(
      {},
      {},
      {},
      token,
      async () => ({ items: [{ insertText: 'x' }] }),
    );
    assert.deepEqual(items, { items: [{ insertText: 'x' }] });
    assert.match(vscode.item.text, /^\$\(sparkle\) fillpoint fillpoint-pycoder \d+ ms$/);
    assert.match(vscode.item.tooltip, /last inline completion: \d+ ms/);
    assert.equal(vscode.item.command, 'fillpoint.showOutput');
  });

  it('does not count cancelled requests', async () => {
    const client = await activate();
    const token = { isCancellationRequested: true };
    await client.options.middleware.provideCompletionItem({}, {}, {}, token, async () => null);
    assert.doesNotMatch(vscode.item.text, / ms/);
  });
});
