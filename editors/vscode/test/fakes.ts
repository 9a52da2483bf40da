// Fakes of the `vscode` module and of `vscode-languageclient/node`, just big enough for
// extension.ts, installed in place of the real modules with install().

import Module from 'node:module';

type Listener<T> = (event: T) => unknown;

/** A settings store with VS Code's lookup rules: workspace value, else global, else default. */
export class FakeConfiguration {
  global = new Map<string, unknown>();
  workspace = new Map<string, unknown>();
  listeners: Listener<{ affectsConfiguration(section: string): boolean }>[] = [];

  constructor(public defaults: Record<string, unknown>) {}

  section(prefix: string) {
    const full = (key: string) => `${prefix}.${key}`;
    return {
      get: <T>(key: string, fallback?: T): T | undefined => {
        const k = full(key);
        for (const store of [this.workspace, this.global]) {
          if (store.has(k)) return store.get(k) as T;
        }
        return k in this.defaults ? (this.defaults[k] as T) : fallback;
      },
      inspect: (key: string) => ({
        key: full(key),
        defaultValue: this.defaults[full(key)],
        globalValue: this.global.get(full(key)),
        workspaceValue: this.workspace.get(full(key)),
      }),
      update: async (key: string, value: unknown, target: number) => {
        await this.set(full(key), value, target === 2 ? 'workspace' : 'global');
      },
    };
  }

  /** Change a setting and fire onDidChangeConfiguration, as VS Code does. */
  async set(key: string, value: unknown, where: 'global' | 'workspace' = 'global'): Promise<void> {
    (where === 'global' ? this.global : this.workspace).set(key, value);
    const event = { affectsConfiguration: (s: string) => key === s || key.startsWith(s + '.') };
    for (const listener of this.listeners) await listener(event);
  }
}

/** What the fake VS Code records: commands, messages, the status bar item, the output. */
export class FakeVscode {
  commands = new Map<string, (...args: unknown[]) => unknown>();
  executed: unknown[][] = [];
  errors: string[] = [];
  errorAnswer: string | undefined = undefined;
  log: string[] = [];
  outputShown = 0;
  item = {
    text: '',
    tooltip: '',
    command: '',
    visible: false,
    show() {
      this.visible = true;
    },
    dispose() {},
  };

  constructor(public config: FakeConfiguration) {}

  module() {
    return {
      StatusBarAlignment: { Left: 1, Right: 2 },
      ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
      window: {
        createOutputChannel: () => {
          const line = (level: string) => (msg: string) => this.log.push(`${level}: ${msg}`);
          return {
            info: line('info'),
            warn: line('warn'),
            error: line('error'),
            debug: line('debug'),
            trace: line('trace'),
            append: line('append'),
            appendLine: line('line'),
            show: () => {
              this.outputShown += 1;
            },
            dispose() {},
          };
        },
        createStatusBarItem: () => this.item,
        showErrorMessage: async (message: string) => {
          this.errors.push(message);
          return this.errorAnswer;
        },
      },
      workspace: {
        getConfiguration: (section: string) => this.config.section(section),
        onDidChangeConfiguration: (
          listener: Listener<{ affectsConfiguration(s: string): boolean }>,
        ) => {
          this.config.listeners.push(listener);
          return { dispose() {} };
        },
        workspaceFolders: [{ uri: { fsPath: '/work/project' } }],
      },
      commands: {
        registerCommand: (name: string, fn: (...args: unknown[]) => unknown) => {
          this.commands.set(name, fn);
          return { dispose() {} };
        },
        executeCommand: async (...args: unknown[]) => {
          this.executed.push(args);
        },
      },
      extensions: { getExtension: () => undefined },
    };
  }
}

export const State = { Stopped: 1, Running: 2, Starting: 3, StartFailed: 4 };

/** A LanguageClient that records what the extension does with it. */
export class FakeClient {
  static created: FakeClient[] = [];
  state = State.Stopped;
  notifications: [string, unknown][] = [];
  handlers = new Map<string, (params: unknown) => void>();
  stateListeners: Listener<{ newState: number }>[] = [];
  disposed = false;
  initializeResult = { serverInfo: { name: 'fillpoint', version: '9.9.9' } };

  constructor(
    public id: string,
    public name: string,
    public server: { command: string; args: string[]; options?: { cwd?: string } },
    public options: any,
  ) {
    FakeClient.created.push(this);
  }

  private setState(newState: number): void {
    this.state = newState;
    for (const listener of this.stateListeners) listener({ newState });
  }

  onDidChangeState(listener: Listener<{ newState: number }>) {
    this.stateListeners.push(listener);
    return { dispose() {} };
  }
  onNotification(method: string, handler: (params: unknown) => void) {
    this.handlers.set(method, handler);
    return { dispose() {} };
  }
  async start() {
    this.setState(State.Starting);
    this.setState(State.Running);
  }
  isRunning() {
    return this.state === State.Running;
  }
  async dispose() {
    this.disposed = true;
    this.setState(State.Stopped);
  }
  async sendNotification(type: { method: string }, params: unknown) {
    this.notifications.push([type.method, params]);
  }
}

let current: Record<string, unknown> = {};

/** Make the next tests see this fake VS Code (the module object stays the same). */
export function use(vscode: FakeVscode): void {
  current = vscode.module();
  FakeClient.created = [];
}

/** Make `require('vscode')` and `require('vscode-languageclient/node')` return the fakes. */
export function install(): void {
  const languageclient = {
    LanguageClient: FakeClient,
    State,
    DidChangeConfigurationNotification: { type: { method: 'workspace/didChangeConfiguration' } },
  };
  const vscode = new Proxy(
    {},
    { get: (_, name) => (name === '__esModule' ? true : current[name as string]) },
  );
  const fakes: Record<string, unknown> = { vscode, 'vscode-languageclient/node': languageclient };
  const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const original = loader._load;
  loader._load = function (request: string, ...rest: unknown[]) {
    return request in fakes ? fakes[request] : original.call(this, request, ...rest);
  };
}
