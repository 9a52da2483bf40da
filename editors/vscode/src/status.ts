// The status bar item: server state, model name, latency of the last completion.
// Only a type import of `vscode`, so the formatting is unit-tested without VS Code.

import type * as vscode from 'vscode';

export type ServerState = 'starting' | 'running' | 'stopped' | 'failed';

export interface StatusInfo {
  state: ServerState;
  inline: boolean;
  version?: string;
  /** From the server's `fillpoint/status` notification, once it sends one. */
  model?: string;
  modelState?: 'loading' | 'ready' | 'error';
  message?: string;
  latencyMs?: { completion?: number; inline?: number };
  /** The latency of the most recent request of either kind. */
  lastMs?: number;
}

/** The `fillpoint/status` notification's parameters (sent by the server when the model changes). */
export interface StatusNotification {
  state: 'loading' | 'ready' | 'error';
  model?: string;
  message?: string;
}
export const STATUS_NOTIFICATION = 'fillpoint/status';

const ICONS: Record<ServerState, string> = {
  starting: '$(loading~spin)',
  running: '$(sparkle)',
  stopped: '$(circle-slash)',
  failed: '$(error)',
};

/** The item's text and tooltip for a state. */
export function render(info: StatusInfo): { text: string; tooltip: string } {
  const loading = info.state === 'running' && info.modelState === 'loading';
  const broken = info.state === 'failed' || info.modelState === 'error';
  const icon = loading ? ICONS.starting : broken ? ICONS.failed : ICONS[info.state];
  const parts = [`${icon} fillpoint`];
  if (info.state === 'running' && info.model) {
    parts.push(info.model);
  }
  if (info.state === 'running' && info.lastMs !== undefined) {
    parts.push(`${Math.round(info.lastMs)} ms`);
  }
  if (!info.inline) {
    parts.push('(inline off)');
  }
  const lines = [`fillpoint ${info.version ?? ''}`.trim() + `: server ${info.state}`];
  if (info.model || info.modelState) {
    lines.push(`model: ${info.model ?? '?'}${info.modelState ? ` (${info.modelState})` : ''}`);
  }
  if (info.latencyMs?.completion !== undefined) {
    lines.push(`last completion list: ${Math.round(info.latencyMs.completion)} ms`);
  }
  if (info.latencyMs?.inline !== undefined) {
    lines.push(`last inline completion: ${Math.round(info.latencyMs.inline)} ms`);
  }
  lines.push(`inline completion: ${info.inline ? 'on' : 'off'}`);
  if (info.message) {
    lines.push(info.message);
  }
  lines.push('Click to show the output.');
  return { text: parts.join(' '), tooltip: lines.join('\n') };
}

/** Keeps one status bar item in step with the latest information. */
export class Status {
  info: StatusInfo;

  constructor(
    private readonly item: vscode.StatusBarItem,
    inline: boolean,
  ) {
    this.info = { state: 'stopped', inline };
    this.item.command = 'fillpoint.showOutput';
    this.update({});
    this.item.show();
  }

  update(change: Partial<StatusInfo>): void {
    this.info = { ...this.info, ...change };
    const { text, tooltip } = render(this.info);
    this.item.text = text;
    this.item.tooltip = tooltip;
  }

  latency(kind: 'completion' | 'inline', ms: number): void {
    this.update({ latencyMs: { ...this.info.latencyMs, [kind]: ms }, lastMs: ms });
  }

  /** A request's result, its round trip (what the user waits for) noted unless cancelled. */
  async timed<T>(
    kind: 'completion' | 'inline',
    token: vscode.CancellationToken,
    run: () => vscode.ProviderResult<T>,
  ): Promise<T | null | undefined> {
    const start = performance.now();
    const result = await run();
    if (!token.isCancellationRequested) this.latency(kind, performance.now() - start);
    return result;
  }

  /** Apply a `fillpoint/status` notification. */
  notify(params: StatusNotification): void {
    this.update({ modelState: params.state, model: params.model, message: params.message });
  }
}
