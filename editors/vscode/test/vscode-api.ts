// Just enough of the VS Code API for the real vscode-languageclient to run inside the bundled
// extension: documents, providers, configuration, output, progress, status bar. The values
// follow VS Code's types (Position, Range, CompletionItem, ...) so the client's converters work.
// What VS Code would draw (suggest widget, ghost text) is out of reach: tests call the
// registered providers the way the editor would.

type Listener = (event: any) => unknown;

export class Disposable {
  constructor(private readonly fn: () => void = () => undefined) {}
  static from(...items: { dispose(): unknown }[]) {
    return new Disposable(() => items.forEach((i) => i.dispose()));
  }
  dispose(): void {
    this.fn();
  }
}

export class EventEmitter<T> {
  private listeners: Listener[] = [];
  event = (listener: Listener) => {
    this.listeners.push(listener);
    return new Disposable(() => (this.listeners = this.listeners.filter((l) => l !== listener)));
  };
  async fire(value: T): Promise<void> {
    for (const listener of [...this.listeners]) await listener(value);
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class CancellationTokenSource {
  private emitter = new EventEmitter<void>();
  token = {
    isCancellationRequested: false,
    onCancellationRequested: this.emitter.event,
  };
  cancel(): void {
    this.token.isCancellationRequested = true;
    void this.emitter.fire();
  }
  dispose(): void {}
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(a: any, b: any, c?: number, d?: number) {
    [this.start, this.end] =
      typeof a === 'number' ? [new Position(a, b), new Position(c!, d!)] : [a, b];
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly path: string,
  ) {}
  static file(path: string): Uri {
    return new Uri('file', path);
  }
  static parse(value: string): Uri {
    const match = /^([a-z-]+):\/\/(.*)$/.exec(value);
    return match ? new Uri(match[1], decodeURIComponent(match[2])) : new Uri('file', value);
  }
  get fsPath(): string {
    return this.path;
  }
  toString(): string {
    return `${this.scheme}://${encodeURI(this.path)}`;
  }
  with(change: { path?: string }): Uri {
    return new Uri(this.scheme, change.path ?? this.path);
  }
}

/** Any other class the client builds: keeps its constructor arguments. */
class Value {
  args: unknown[];
  constructor(...args: unknown[]) {
    this.args = args;
  }
}

export class CompletionItem {
  range?: Range | { inserting: Range; replacing: Range };
  insertText?: string;
  constructor(readonly label: string | { label: string }) {}
}
export class CompletionList {
  constructor(
    readonly items: CompletionItem[] = [],
    readonly isIncomplete = false,
  ) {}
}
export class InlineCompletionItem {
  constructor(
    readonly insertText: string | { value: string },
    readonly range?: Range,
    readonly command?: unknown,
  ) {}
}
export class InlineCompletionList {
  constructor(readonly items: InlineCompletionItem[]) {}
}

/** A Python document open in the editor. */
export class TextDocument {
  version = 1;
  isClosed = false;
  isDirty = false;
  isUntitled = false;
  eol = 1;
  constructor(
    readonly uri: Uri,
    readonly languageId: string,
    private text: string,
  ) {}
  get fileName(): string {
    return this.uri.fsPath;
  }
  get lineCount(): number {
    return this.text.split('\n').length;
  }
  getText(): string {
    return this.text;
  }
  lineAt(line: number) {
    const text = this.text.split('\n')[line] ?? '';
    return { text, range: new Range(line, 0, line, text.length) };
  }
  offsetAt(p: Position): number {
    const lines = this.text.split('\n');
    return lines.slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
  }
  positionAt(offset: number): Position {
    const before = this.text.slice(0, offset).split('\n');
    return new Position(before.length - 1, before[before.length - 1].length);
  }
  getWordRangeAtPosition(p: Position): Range | undefined {
    const line = this.lineAt(p.line).text;
    let start = p.character;
    while (start > 0 && /\w/.test(line[start - 1])) start--;
    return start < p.character ? new Range(p.line, start, p.line, p.character) : undefined;
  }
  validatePosition(p: Position): Position {
    return p;
  }
  validateRange(r: Range): Range {
    return r;
  }
}

/** The fake editor: settings, open documents, registered providers, what the user would see. */
export class FakeWorkbench {
  settings = new Map<string, unknown>();
  documents: TextDocument[] = [];
  completionProviders: any[] = [];
  inlineProviders: any[] = [];
  commands = new Map<string, (...args: any[]) => unknown>();
  messages: string[] = [];
  /** Progress the server reported (model loading), one promise per progress bar. */
  progress: Promise<unknown>[] = [];
  log: string[] = [];
  item = { text: '', tooltip: '', command: '', show() {}, hide() {}, dispose() {} };
  private configuration = new EventEmitter<any>();
  private opened = new EventEmitter<TextDocument>();

  constructor(
    private readonly defaults: Record<string, unknown>,
    private readonly folder: string,
  ) {}

  /** Change a setting as the Settings UI does. */
  async set(key: string, value: unknown): Promise<void> {
    this.settings.set(key, value);
    await this.configuration.fire({
      affectsConfiguration: (s: string) => key === s || key.startsWith(s + '.'),
    });
  }

  /** Open a document, as VS Code does when the user opens a file. */
  async open(document: TextDocument): Promise<void> {
    this.documents.push(document);
    await this.opened.fire(document);
  }

  private getConfiguration(section?: string) {
    const full = (key: string) => (section ? `${section}.${key}` : key);
    const get = (key: string, fallback?: unknown): unknown => {
      const k = full(key);
      if (this.settings.has(k)) return this.settings.get(k);
      return k in this.defaults ? this.defaults[k] : fallback;
    };
    return {
      get,
      has: (key: string) => get(key) !== undefined,
      inspect: (key: string) => ({ key: full(key), globalValue: this.settings.get(full(key)) }),
      update: (key: string, value: unknown) => this.set(full(key), value),
    };
  }

  module(): Record<string, unknown> {
    const disposable = () => new Disposable();
    const event = () => disposable;
    const register = (list: any[]) => (selector: unknown, provider: unknown) => {
      list.push(provider);
      return new Disposable(() => list.splice(list.indexOf(provider), 1));
    };
    const line = (level: string) => (message: string) => this.log.push(`${level}: ${message}`);
    const api: Record<string, unknown> = {
      __esModule: true, // so `__importStar(require('vscode'))` keeps this object and its fallbacks
      version: '1.91.0',
      Disposable,
      EventEmitter,
      CancellationTokenSource,
      CancellationError: class extends Error {},
      Position,
      Range,
      Uri,
      CompletionItem,
      CompletionList,
      InlineCompletionItem,
      InlineCompletionList,
      StatusBarAlignment: { Left: 1, Right: 2 },
      ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
      LogLevel: { Off: 0, Trace: 1, Debug: 2, Info: 3, Warning: 4, Error: 5 },
      ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
      CompletionItemKind: new Proxy({}, { get: (_, name) => String(name) }),
      CompletionTriggerKind: { Invoke: 0, TriggerCharacter: 1, TriggerForIncompleteCompletions: 2 },
      InlineCompletionTriggerKind: { Invoke: 0, Automatic: 1 },
      env: {
        appName: 'fake VS Code',
        language: 'en',
        machineId: 'test',
        openExternal: async () => true,
      },
      window: {
        activeTextEditor: undefined,
        visibleTextEditors: [],
        tabGroups: { all: [], onDidChangeTabs: event() },
        onDidChangeActiveTextEditor: event(),
        onDidChangeVisibleTextEditors: event(),
        createOutputChannel: (name: string) => ({
          name,
          logLevel: 3,
          onDidChangeLogLevel: event(),
          trace: line('trace'),
          debug: line('debug'),
          info: line('info'),
          warn: line('warn'),
          error: line('error'),
          append: line('append'),
          appendLine: line('line'),
          replace: line('replace'),
          clear() {},
          show() {},
          hide() {},
          dispose() {},
        }),
        createStatusBarItem: () => this.item,
        showErrorMessage: async (m: string) => void this.messages.push(`error: ${m}`),
        showWarningMessage: async (m: string) => void this.messages.push(`warning: ${m}`),
        showInformationMessage: async (m: string) => void this.messages.push(`info: ${m}`),
        withProgress: async (_options: unknown, task: (p: unknown, t: unknown) => unknown) => {
          const done = task({ report() {} }, new CancellationTokenSource().token);
          this.progress.push(Promise.resolve(done));
          return done;
        },
      },
      workspace: {
        workspaceFolders: [{ uri: Uri.file(this.folder), name: 'project', index: 0 }],
        getWorkspaceFolder: () => undefined,
        get textDocuments() {
          return wb.documents;
        },
        notebookDocuments: [],
        getConfiguration: (section?: string) => this.getConfiguration(section),
        onDidChangeConfiguration: this.configuration.event,
        onDidOpenTextDocument: this.opened.event,
        createFileSystemWatcher: () => ({
          onDidCreate: event(),
          onDidChange: event(),
          onDidDelete: event(),
          dispose() {},
        }),
        registerTextDocumentContentProvider: disposable,
      },
      languages: {
        match: (selector: any[], document: TextDocument) =>
          selector.some(
            (s) =>
              (s.language === undefined || s.language === document.languageId) &&
              (s.scheme === undefined || s.scheme === document.uri.scheme),
          )
            ? 10
            : 0,
        createDiagnosticCollection: () => ({
          set() {},
          delete() {},
          clear() {},
          forEach() {},
          dispose() {},
        }),
        registerCompletionItemProvider: register(this.completionProviders),
        registerInlineCompletionItemProvider: register(this.inlineProviders),
      },
      commands: {
        registerCommand: (name: string, fn: (...args: any[]) => unknown) => {
          this.commands.set(name, fn);
          return new Disposable(() => this.commands.delete(name));
        },
        executeCommand: async () => undefined,
      },
      extensions: { getExtension: () => undefined },
    };
    const wb = this;
    for (const namespace of ['window', 'workspace', 'languages', 'env']) {
      api[namespace] = inert(api[namespace] as Record<string, unknown>);
    }
    // Classes and enums the client only builds or reads for features fillpoint does not have.
    return new Proxy(api, {
      get(target, name: string) {
        if (name in target) return target[name];
        return /^[A-Z]/.test(name) ? Value : undefined;
      },
    });
  }
}

/** A namespace whose unknown events (`onDid...`) and registrations do nothing. */
function inert(namespace: Record<string, unknown>): Record<string, unknown> {
  return new Proxy(namespace, {
    get(target, name: string) {
      if (name in target) return target[name];
      if (/^on[A-Z]/.test(name)) return () => new Disposable();
      if (/^(register|create)[A-Z]/.test(name)) return () => new Disposable();
      return undefined;
    },
  });
}
