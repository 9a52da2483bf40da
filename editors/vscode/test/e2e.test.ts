// End to end: the real `fillpoint serve` over stdio, driven by vscode-languageserver-protocol,
// the protocol library inside vscode-languageclient (VS Code itself cannot run here). The
// server is found by the extension's own discovery and gets the settings the extension sends.
//
// Needs a released model: FILLPOINT_MODEL=/path/to/release npm test (skipped without it).
// FILLPOINT_PYTHON picks the interpreter (`python -m fillpoint.lsp serve`); otherwise the
// extension's search runs: `fillpoint` on PATH, then the repository's .venv.

import * as assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import {
  type CompletionList,
  CompletionRequest,
  ConfigurationRequest,
  createProtocolConnection,
  DidChangeConfigurationNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  type InitializeResult,
  type InlineCompletionList,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  LogMessageNotification,
  type Position,
  type ProtocolConnection,
  ShowMessageNotification,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  TextEdit,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
} from 'vscode-languageserver-protocol/node';
import { serverKeys, serverSettings } from '../src/settings';
import { AFTER_JOIN, bounded, defaults, MODEL, PACKAGE, serverCommand, SKIP, TEXT } from './server';

const URI = 'file:///work/project/example.py';

/** Settings as the extension sends them: package.json defaults, with this model. */
function settings(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const values: Record<string, unknown> = { ...defaults(), 'fillpoint.modelPath': MODEL };
  for (const [key, value] of Object.entries(overrides)) values[`fillpoint.${key}`] = value;
  return serverSettings(serverKeys(PACKAGE), (key) => values[`fillpoint.${key}`]);
}

describe('fillpoint serve over stdio (vscode-languageserver-protocol)', { skip: SKIP }, () => {
  let server: ChildProcess;
  let connection: ProtocolConnection;
  let init: InitializeResult;
  let stderr = '';
  const messages: string[] = [];
  let loaded: Promise<void>;
  let commandLine = '';

  before(async () => {
    const [command, ...args] = serverCommand();
    commandLine = [command, ...args].join(' ');
    server = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, FILLPOINT_MODEL: '' },
    });
    server.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    connection = createProtocolConnection(
      new StreamMessageReader(server.stdout!),
      new StreamMessageWriter(server.stdin!),
    );
    connection.onNotification(LogMessageNotification.type, (p) => {
      messages.push(`log ${p.type}: ${p.message}`);
    });
    connection.onNotification(ShowMessageNotification.type, (p) => {
      messages.push(`show ${p.type}: ${p.message}`);
    });
    connection.onRequest(ConfigurationRequest.type, (p) => p.items.map(() => settings()));
    // The server reports model loading as work-done progress; its end means the model is in.
    loaded = new Promise((resolve) => {
      connection.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
        connection.onProgress(WorkDoneProgress.type, token, (value) => {
          if (value.kind === 'end') resolve();
        });
      });
    });
    connection.listen();
    init = await bounded(
      connection.sendRequest(InitializeRequest.type, {
        processId: process.pid,
        rootUri: 'file:///work/project',
        initializationOptions: settings(),
        capabilities: {
          general: { positionEncodings: ['utf-16'] },
          window: { workDoneProgress: true },
          workspace: {
            configuration: true,
            didChangeConfiguration: { dynamicRegistration: true },
          },
          textDocument: {
            synchronization: { dynamicRegistration: true },
            completion: {
              completionItem: { snippetSupport: true, insertReplaceSupport: true },
              contextSupport: true,
            },
            inlineCompletion: { dynamicRegistration: true },
          },
        },
      }),
      'initialize',
    );
    await connection.sendNotification(InitializedNotification.type, {});
    await bounded(loaded, `model loading (server messages: ${messages.join(' | ')})`);
    await connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri: URI, languageId: 'python', version: 1, text: TEXT },
    });
  });

  after(async () => {
    connection?.dispose();
    if (server && server.exitCode === null) server.kill();
  });

  async function complete(position: Position): Promise<CompletionList> {
    const result = await bounded(
      connection.sendRequest(CompletionRequest.type, {
        textDocument: { uri: URI },
        position,
        context: { triggerKind: 1 },
      }),
      'completion',
    );
    assert.ok(
      result !== null && !Array.isArray(result),
      `expected a CompletionList: ${JSON.stringify(result)}`,
    );
    assert.equal(typeof result.isIncomplete, 'boolean');
    return result;
  }

  async function inline(position: Position): Promise<InlineCompletionList> {
    const result = await bounded(
      connection.sendRequest(InlineCompletionRequest.type, {
        textDocument: { uri: URI },
        position,
        context: {
          triggerKind: InlineCompletionTriggerKind.Automatic,
          selectedCompletionInfo: undefined,
        },
      }),
      'inline completion',
    );
    assert.ok(
      result !== null && !Array.isArray(result),
      `expected an InlineCompletionList: ${JSON.stringify(result)}`,
    );
    assert.ok(Array.isArray(result.items), JSON.stringify(result));
    return result;
  }

  it('initializes with completion and inline completion', (t) => {
    t.diagnostic(`server: ${commandLine}`);
    assert.equal(init.serverInfo?.name, 'fillpoint');
    assert.ok(init.capabilities.completionProvider?.triggerCharacters?.includes('.'));
    assert.ok(init.capabilities.inlineCompletionProvider);
    assert.ok(
      !messages.some((m) => m.startsWith('show 1')),
      `server errors: ${messages.join(' | ')}`,
    );
  });

  it('returns completion items whose edits replace the typed identifier', async () => {
    const list = await complete(AFTER_JOIN);
    assert.ok(list.items.length > 0, 'no completion items');
    for (const item of list.items) {
      assert.equal(typeof item.label, 'string');
      assert.ok(
        item.textEdit && TextEdit.is(item.textEdit),
        `no plain textEdit: ${JSON.stringify(item)}`,
      );
      const { range, newText } = item.textEdit;
      assert.deepEqual(range.end, AFTER_JOIN);
      assert.deepEqual(range.start, {
        line: AFTER_JOIN.line,
        character: AFTER_JOIN.character - 'join_'.length,
      });
      assert.ok(newText.length > 0);
      assert.match(item.sortText ?? '', /^\d+$/);
    }
    const sorted = [...list.items].sort((a, b) => (a.sortText! < b.sortText! ? -1 : 1));
    assert.deepEqual(sorted, list.items, 'items arrive in rank order');
  });

  it('returns an inline completion with insertText', async () => {
    const list = await inline(AFTER_JOIN);
    assert.ok(list.items.length > 0, 'no inline completion');
    for (const item of list.items) {
      assert.equal(typeof item.insertText, 'string');
      assert.ok((item.insertText as string).length > 0);
      assert.ok(!(item.insertText as string).includes('\n'), 'rest of the line only');
      if (item.range) {
        assert.equal(item.range.start.line, AFTER_JOIN.line);
        assert.ok(item.range.start.character <= AFTER_JOIN.character);
      }
    }
  });

  it('applies pushed settings: maxItems and inline', async () => {
    const push = (overrides: Record<string, unknown>) =>
      connection.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { fillpoint: settings(overrides) },
      });
    await push({ maxItems: 1, inline: false });
    assert.ok((await complete(AFTER_JOIN)).items.length <= 1);
    assert.equal((await inline(AFTER_JOIN)).items.length, 0);
    await push({});
    assert.ok((await inline(AFTER_JOIN)).items.length > 0);
    assert.ok(!messages.some((m) => m.includes('invalid settings')), messages.join(' | '));
  });

  it('shuts down and exits with status 0', async () => {
    const exited = new Promise<number | null>((resolve) =>
      server.once('exit', (code) => resolve(code)),
    );
    await bounded(connection.sendRequest(ShutdownRequest.type), 'shutdown');
    await connection.sendNotification(ExitNotification.type);
    assert.equal(await bounded(exited, 'exit', 15_000), 0, `stderr:\n${stderr}`);
  });
});
