// The bundled extension (dist/extension.js) with the real vscode-languageclient inside it,
// against the real server, in a fake VS Code (test/vscode-api.ts). Calls the completion and
// inline completion providers the client registers, as VS Code's editor would.
//
// Needs FILLPOINT_MODEL (skipped without it) and `npm run build`; BUNDLE=path tries another
// bundle (an unminified one is easier to debug).

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import Module from 'node:module';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  AFTER_JOIN,
  bounded,
  defaults,
  MODEL,
  PACKAGE,
  ROOT,
  serverCommand,
  SKIP,
  STEP_MS,
  TEXT,
} from './server';
import {
  CancellationTokenSource,
  CompletionItem,
  CompletionList,
  FakeWorkbench,
  InlineCompletionItem,
  InlineCompletionList,
  Position,
  Range,
  TextDocument,
  Uri,
} from './vscode-api';

const BUNDLE = process.env.BUNDLE ?? path.join(ROOT, 'dist', 'extension.js');
const AT = new Position(AFTER_JOIN.line, AFTER_JOIN.character);
const skip = SKIP || (!fs.existsSync(BUNDLE) && 'run npm run build');

describe('bundled extension + vscode-languageclient + fillpoint serve', { skip }, () => {
  let folder: string;
  let wb: FakeWorkbench;
  let document: TextDocument;
  let extension: { activate(context: unknown): Promise<void>; deactivate(): Promise<void> };
  const token = () => new CancellationTokenSource().token;

  /** Until the model loads: the client shows the server's progress, which ends after loading. */
  async function loaded(): Promise<void> {
    const deadline = Date.now() + STEP_MS;
    // Not any `error:` line: the client logs the server's stderr at error level.
    const failed = () => wb.log.some((line) => line.includes('the server did not start'));
    while (wb.progress.length === 0 && !failed() && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(wb.progress.length > 0, `no loading progress; log:\n${wb.log.join('\n')}`);
    await bounded(Promise.all(wb.progress), 'model loading');
    wb.progress = [];
  }

  async function complete(): Promise<CompletionList> {
    const [provider] = wb.completionProviders;
    const list = await bounded(
      provider.provideCompletionItems(document, AT, token(), { triggerKind: 0 }),
      'completion',
    );
    assert.ok(list instanceof CompletionList, `not a CompletionList: ${JSON.stringify(list)}`);
    return list;
  }

  async function inline(): Promise<InlineCompletionItem[]> {
    const [provider] = wb.inlineProviders;
    const context = { triggerKind: 1 /* Automatic */, selectedCompletionInfo: undefined };
    const result = await bounded(
      provider.provideInlineCompletionItems(document, AT, context, token()),
      'inline',
    );
    return result instanceof InlineCompletionList
      ? result.items
      : (result as InlineCompletionItem[]);
  }

  before(async () => {
    folder = fs.mkdtempSync(path.join(os.tmpdir(), 'fillpoint-client-'));
    wb = new FakeWorkbench(defaults(), folder);
    document = new TextDocument(Uri.file(path.join(folder, 'example.py')), 'python', TEXT);
    wb.settings.set('fillpoint.modelPath', MODEL);
    process.env.FILLPOINT_MODEL = ''; // the server inherits this: the model must come from settings
    wb.settings.set('fillpoint.server.command', serverCommand());
    wb.documents.push(document); // VS Code activates the extension for an open Python file
    const vscode = wb.module();
    const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
    const original = loader._load;
    loader._load = function (request: string, ...rest: unknown[]) {
      return request === 'vscode' ? vscode : original.call(this, request, ...rest);
    };
    extension = require(BUNDLE);
    await bounded(
      extension.activate({ subscriptions: [], extension: { packageJSON: PACKAGE } }),
      'activate',
    );
    await loaded();
  });

  after(async () => {
    await extension?.deactivate();
    if (folder) fs.rmSync(folder, { recursive: true, force: true });
  });

  it('registers the providers the server advertises', () => {
    assert.equal(wb.completionProviders.length, 1);
    assert.equal(wb.inlineProviders.length, 1);
    assert.deepEqual(wb.messages, []);
  });

  it('completion items replace the typed identifier', async () => {
    const list = await complete();
    assert.ok(list.items.length > 0, 'no items');
    for (const item of list.items) {
      assert.ok(item instanceof CompletionItem);
      const range = item.range instanceof Range ? item.range : item.range?.replacing;
      assert.ok(range instanceof Range, `no range: ${JSON.stringify(item)}`);
      assert.deepEqual(
        [range.start.line, range.start.character],
        [8, AT.character - 'join_'.length],
      );
      assert.deepEqual([range.end.line, range.end.character], [8, AT.character]);
    }
  });

  it('inline completion items carry the text to insert', async () => {
    const items = await inline();
    assert.ok(items.length > 0, 'no inline items');
    for (const item of items) {
      assert.ok(item instanceof InlineCompletionItem);
      assert.equal(typeof item.insertText, 'string');
      assert.ok((item.insertText as string).length > 0);
    }
  });

  it('shows the last latency in the status bar', () => {
    assert.match(wb.item.text, /^\$\(sparkle\) fillpoint.* \d+ ms$/);
  });

  it('sends changed settings to the server', async () => {
    await wb.set('fillpoint.maxItems', 1);
    await wb.set('fillpoint.inline', false);
    assert.ok((await complete()).items.length <= 1);
    assert.deepEqual(await inline(), []);
    assert.match(wb.item.text, /\(inline off\)/);
    await wb.set('fillpoint.inline', true);
    assert.ok((await inline()).length > 0);
  });

  it('restarts the server', async () => {
    await wb.commands.get('fillpoint.restartServer')!();
    await loaded();
    assert.equal(wb.completionProviders.length, 1, 'the old providers are gone');
    assert.ok((await complete()).items.length > 0);
  });
});
