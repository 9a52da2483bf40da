// Starts `fillpoint serve`, passes the settings, shows the state. The server does the rest.

import * as os from 'node:os';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  type LanguageClientOptions,
  State,
} from 'vscode-languageclient/node';
import { commandLine, expandPath, findServer, nodeLookup } from './discovery';
import { pythons } from './interpreter';
import { SECTION, serverKeys, serverSettings } from './settings';
import { type ServerState, STATUS_NOTIFICATION, Status, type StatusNotification } from './status';

const STATES: Record<State, ServerState> = {
  [State.Starting]: 'starting',
  [State.Running]: 'running',
  [State.Stopped]: 'stopped',
  [State.StartFailed]: 'failed',
};
const PYTHON = [
  { scheme: 'file', language: 'python' },
  { scheme: 'untitled', language: 'python' },
  { scheme: 'vscode-notebook-cell', language: 'python' },
];
let client: LanguageClient | undefined;

const config = () => vscode.workspace.getConfiguration(SECTION);
const folder = () => vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
const expand = (p: string) => expandPath(p, os.homedir(), folder());
const inline = () => config().get<boolean>('inline', true);

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('fillpoint', { log: true });
  const item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  const status = new Status(item, inline());
  const keys = serverKeys(context.extension.packageJSON);
  const settings = () => serverSettings(keys, (key) => config().get(key), expand);
  const clientOptions: LanguageClientOptions = {
    documentSelector: PYTHON,
    initializationOptions: settings, // a function, so every (re)start reads the settings again
    outputChannel: output,
    middleware: {
      provideCompletionItem: (doc, pos, ctx, token, next) =>
        status.timed('completion', token, () => next(doc, pos, ctx, token)),
      provideInlineCompletionItems: (doc, pos, ctx, token, next) =>
        status.timed('inline', token, () => next(doc, pos, ctx, token)),
      workspace: {
        // If the server pulls its section, it gets its own options, not the client-only ones.
        configuration: async (params, token, next) => {
          const result = await next(params, token);
          if (!Array.isArray(result)) return result;
          return params.items.map((it, i) => (it.section === SECTION ? settings() : result[i]));
        },
      },
    },
  };

  const start = async (): Promise<void> => {
    const command = commandLine(config().get('server.command')).map(expand);
    const pythonPaths = await pythons(config().get<string>('server.pythonPath', ''), expand);
    const found = findServer({ command, pythonPaths }, nodeLookup());
    if (!found.ok) {
      output.error(found.error);
      status.update({ state: 'failed', message: found.error });
      const action = await vscode.window.showErrorMessage(
        `fillpoint: ${found.error}`,
        'Open Settings',
        'Show Output',
      );
      if (action === 'Open Settings') {
        await vscode.commands.executeCommand('workbench.action.openSettings', SECTION);
      } else if (action === 'Show Output') {
        output.show();
      }
      return;
    }
    const { command: program, args, source } = found.server;
    output.info(`starting ${program} ${args.join(' ')} (found via ${source})`);
    client = new LanguageClient(
      SECTION,
      'fillpoint',
      { command: program, args, options: { cwd: folder() } },
      clientOptions,
    );
    client.onDidChangeState(({ newState }) =>
      status.update({
        state: STATES[newState],
        version: client?.initializeResult?.serverInfo?.version,
      }),
    );
    client.onNotification(STATUS_NOTIFICATION, (params: StatusNotification) =>
      status.notify(params),
    );
    await client.start().catch((err: unknown) => output.error(`the server did not start: ${err}`));
  };
  const restart = async () => {
    await deactivate();
    await start();
  };

  context.subscriptions.push(
    output,
    item,
    vscode.commands.registerCommand('fillpoint.restartServer', restart),
    vscode.commands.registerCommand('fillpoint.toggleInline', () => {
      const inWorkspace = config().inspect<boolean>('inline')?.workspaceValue !== undefined;
      const target = inWorkspace
        ? vscode.ConfigurationTarget.Workspace
        : vscode.ConfigurationTarget.Global;
      return config().update('inline', !inline(), target);
    }),
    vscode.commands.registerCommand('fillpoint.showOutput', () => output.show()),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration(`${SECTION}.server`)) return restart();
      if (!event.affectsConfiguration(SECTION)) return;
      status.update({ inline: inline() });
      if (client?.isRunning()) {
        const params = { settings: { [SECTION]: settings() } };
        await client.sendNotification(DidChangeConfigurationNotification.type, params);
      }
    }),
  );
  await start();
}

export async function deactivate(): Promise<void> {
  const old = client;
  client = undefined;
  if (old?.state === State.Starting) {
    await old.start().catch(() => undefined); // its failure is logged by start(); stop it below
  }
  if (old?.isRunning()) {
    await old.dispose(); // throws for a client that never started: there is nothing to stop
  }
}
