/**
 * Ferry's web page: log in, browse the account's files by folder, download, delete, upload with
 * tus (resumable, with progress, pause, resume and cancel), and see the server and its log. It
 * speaks only the HTTP side's own API (docs/http.md), with the session cookie `POST /api/login`
 * sets; no framework (the page is a few views over fetch and the DOM).
 */
import { DetailedError, Upload } from 'tus-js-client';
import { formatBytes } from '../src/units.js';

interface FileSummary {
  name: string;
  size: number;
  sha256: string;
  modified: string;
  damaged?: string;
}
interface Me {
  user: string;
  role: string;
  root: string;
}
type SortKey = 'name' | 'size' | 'modified';

const $ = <T extends HTMLElement>(selector: string): T => document.querySelector<T>(selector)!;
let folder = '';
let files: FileSummary[] = [];
let sort: { key: SortKey; ascending: boolean } = { key: 'name', ascending: true };

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(path, { ...init, headers: { 'Content-Type': 'application/json', ...init.headers } });
  const body = (await response.json().catch(() => ({}))) as { error?: { code: string; message: string } };
  if (!response.ok) throw new ApiError(response.status, body.error?.code ?? 'EPROTO', body.error?.message ?? response.statusText);
  return body as T;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text = '',
  attributes: Record<string, string> = {},
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.textContent = text;
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

function show(view: 'login' | 'app'): void {
  $('#login').hidden = view !== 'login';
  for (const id of ['#files-view', '#server-view', '#who', '#logout']) $(id).hidden = view !== 'app';
}

async function start(): Promise<void> {
  try {
    enter(await api<Me>('/api/me'));
  } catch {
    show('login');
    $<HTMLInputElement>('#user').focus();
  }
}

function enter(me: Me): void {
  $('#who').textContent = `${me.user} (${me.role})`;
  show('app');
  void refresh();
}

async function refresh(): Promise<void> {
  const listed: FileSummary[] = [];
  let after: string | undefined;
  do {
    const query = new URLSearchParams({ prefix: folder, limit: '1000', ...(after === undefined ? {} : { after }) });
    const page = await api<{ files: FileSummary[]; next?: string }>(`/api/files?${query.toString()}`);
    listed.push(...page.files);
    after = page.next;
  } while (after !== undefined);
  files = listed;
  renderFiles();
  void renderServer();
}

/** The rows of the current folder: its files, and one row per subfolder (names with a `/` below it). */
function renderFiles(): void {
  const filter = $<HTMLInputElement>('#filter').value;
  const body = $('#files tbody');
  body.replaceChildren();
  const folders = new Map<string, number>();
  const here: FileSummary[] = [];
  for (const file of files) {
    const rest = file.name.slice(folder.length);
    if (!rest.startsWith(filter)) continue;
    const slash = rest.indexOf('/');
    if (slash >= 0) folders.set(rest.slice(0, slash + 1), (folders.get(rest.slice(0, slash + 1)) ?? 0) + file.size);
    else here.push(file);
  }
  const direction = sort.ascending ? 1 : -1;
  here.sort((a, b) => (a[sort.key] < b[sort.key] ? -direction : a[sort.key] > b[sort.key] ? direction : 0));
  for (const [name, bytes] of [...folders].sort()) {
    const row = element('tr');
    const open = element('button', `${name}`, { type: 'button', class: 'quiet', 'aria-label': `Open folder ${name}` });
    open.addEventListener('click', () => void openFolder(folder + name));
    const cell = element('td');
    cell.append(open);
    row.append(cell, element('td', formatBytes(bytes), { class: 'size' }), element('td'), element('td'), element('td'));
    body.append(row);
  }
  for (const file of here) body.append(fileRow(file));
  $('#empty').hidden = body.children.length > 0;
  renderPath();
}

function fileRow(file: FileSummary): HTMLTableRowElement {
  const row = element('tr');
  const shown = file.name.slice(folder.length);
  row.dataset['name'] = file.name;
  const hash = element('button', 'Show', { type: 'button', class: 'quiet', 'aria-label': `Show the SHA-256 of ${shown}` });
  const hashCell = element('td');
  hashCell.append(hash);
  hash.addEventListener('click', () => {
    hashCell.replaceChildren(element('code', file.sha256));
  });
  const download = element('a', 'Download', {
    href: `/files/${encodeName(file.name)}`,
    download: shown,
    'aria-label': `Download ${shown}`,
  });
  const remove = element('button', 'Delete', { type: 'button', class: 'quiet', 'aria-label': `Delete ${shown}` });
  remove.addEventListener('click', () => void deleteFile(file.name));
  const actions = element('td');
  actions.append(download, ' ', remove);
  row.append(
    element('td', file.damaged ? `${shown} (damaged)` : shown),
    element('td', formatBytes(file.size), { class: 'size' }),
    element('td', new Date(file.modified).toLocaleString()),
    hashCell,
    actions,
  );
  return row;
}

function encodeName(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/');
}

function renderPath(): void {
  const path = $('#path');
  path.replaceChildren();
  const parts = folder.split('/').filter(Boolean);
  const top = element('button', 'All files', { type: 'button' });
  top.addEventListener('click', () => void openFolder(''));
  path.append(top);
  parts.forEach((part, index) => {
    const link = element('button', `${part}/`, { type: 'button' });
    link.addEventListener('click', () => void openFolder(parts.slice(0, index + 1).join('/') + '/'));
    path.append(' / ', link);
  });
}

async function openFolder(prefix: string): Promise<void> {
  folder = prefix;
  $<HTMLInputElement>('#filter').value = '';
  await refresh();
}

async function deleteFile(name: string): Promise<void> {
  if (!window.confirm(`Delete ${name}? This cannot be undone.`)) return;
  try {
    await api(`/api/files/${encodeName(name)}`, { method: 'DELETE' });
    status(`Deleted ${name}.`);
  } catch (error) {
    status(`Could not delete ${name}: ${(error as Error).message}`);
  }
  await refresh();
}

function status(text: string): void {
  $('#status').textContent = text;
}

async function renderServer(): Promise<void> {
  const info = await api<{ version: string; uptimeSeconds: number; files: number; bytes: number; clients: number }>('/api/info');
  $('#info').textContent =
    `Ferry ${info.version}, up ${Math.floor(info.uptimeSeconds / 60)} min; ${info.files} files, ${formatBytes(info.bytes)}; ${info.clients} Ferry clients connected.`;
  const { entries } = await api<{ entries: { time: string; op: string; name: string; bytes: number; result: string; user?: string }[] }>(
    '/api/log?limit=50',
  );
  $('#log tbody').replaceChildren(
    ...entries.map((entry) => {
      const row = element('tr');
      row.append(
        element('td', new Date(entry.time).toLocaleString()),
        element('td', entry.op),
        element('td', entry.name),
        element('td', formatBytes(entry.bytes), { class: 'bytes' }),
        element('td', entry.result),
        element('td', entry.user ?? ''),
      );
      return row;
    }),
  );
}

/** One upload: its row with a progress bar, percent, bytes, rate and time left, and pause, resume and cancel. */
function upload(file: File): void {
  const name = folder + file.name;
  const exists = files.some((stored) => stored.name === name);
  if (exists && !window.confirm(`${name} exists. Replace it?`)) return;
  const row = element('li');
  row.dataset['name'] = name;
  const label = element('span', name);
  const state = element('span', 'starting', { class: 'state' });
  const bar = element('progress', '', { max: String(file.size || 1), value: '0', 'aria-label': `Upload of ${name}` });
  const pause = element('button', 'Pause', { type: 'button', class: 'quiet' });
  const cancel = element('button', 'Cancel', { type: 'button', class: 'quiet' });
  const buttons = element('span');
  buttons.append(pause, cancel);
  row.append(label, buttons, bar, state);
  $('#uploads').append(row);
  void sha256Of(file, (hashed) => {
    state.textContent = `computing its SHA-256: ${Math.floor((hashed * 100) / (file.size || 1))}%`;
  }).then(
    (sha256) => send(file, name, sha256, exists, { row, state, bar, pause, cancel, buttons }),
    (error: unknown) => {
      state.textContent = `failed: could not compute its SHA-256 (${String(error)})`;
      row.dataset['failed'] = 'true';
    },
  );
}

/** The file's SHA-256, computed in a Web Worker (hash-worker.ts). */
function sha256Of(file: File, onProgress: (bytes: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const worker = new Worker('/hash-worker.js', { type: 'module' });
    worker.onmessage = (event: MessageEvent<{ progress?: number; sha256?: string; error?: string }>) => {
      const { progress, sha256, error } = event.data;
      if (progress !== undefined) onProgress(progress);
      if (sha256 !== undefined || error !== undefined) worker.terminate();
      if (sha256 !== undefined) resolve(sha256);
      if (error !== undefined) reject(new Error(error));
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(event.message));
    };
    worker.postMessage(file);
  });
}

interface UploadRow {
  row: HTMLLIElement;
  state: HTMLSpanElement;
  bar: HTMLProgressElement;
  pause: HTMLButtonElement;
  cancel: HTMLButtonElement;
  buttons: HTMLSpanElement;
}

/**
 * Sends the file with tus, its SHA-256 in the metadata: the server publishes it only if the bytes
 * it received hash the same, so the row says "verified" only once the server confirmed it.
 */
function send(file: File, name: string, sha256: string, exists: boolean, { row, state, bar, pause, cancel, buttons }: UploadRow): void {
  const startedAt = performance.now();
  const tus = new Upload(file, {
    endpoint: '/tus/',
    metadata: { filename: name, sha256, ...(exists ? { overwrite: '' } : {}) },
    chunkSize: 8 * 1024 * 1024,
    retryDelays: [0, 1000, 3000, 5000],
    removeFingerprintOnSuccess: true,
    onProgress: (sent, total) => {
      bar.value = sent;
      const seconds = (performance.now() - startedAt) / 1000;
      const rate = seconds > 0 ? sent / seconds : 0;
      const left = rate > 0 ? Math.ceil((total - sent) / rate) : 0;
      state.textContent = `${Math.floor((sent * 100) / (total || 1))}%, ${formatBytes(sent)} of ${formatBytes(total)}, ${formatBytes(rate)}/s, ${left} s left`;
    },
    onSuccess: () => {
      bar.value = file.size || 1;
      state.textContent = `verified: the server has the same SHA-256, ${sha256}`;
      row.dataset['done'] = 'true';
      buttons.remove();
      void refresh();
    },
    onError: (error) => {
      const mismatch = error instanceof DetailedError && error.originalResponse?.getStatus() === 460;
      state.textContent = mismatch
        ? 'failed: the server received other bytes than this file (SHA-256 mismatch); nothing was stored'
        : `failed: ${error.message.split('\n')[0] ?? ''}`;
      row.dataset['failed'] = 'true';
    },
  });
  let paused = false;
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    if (paused) {
      void tus.abort();
      state.textContent = `paused at ${formatBytes(bar.value)}`;
    } else {
      tus.start();
    }
  });
  cancel.addEventListener('click', () => {
    void tus.abort(true).then(() => {
      row.remove();
    });
  });
  // The same file chosen again after a reload resumes where the server is (tus-js-client keeps its URL in localStorage).
  void tus.findPreviousUploads().then((previous) => {
    const last = previous[0];
    if (last) tus.resumeFromPreviousUpload(last);
    tus.start();
  });
}

function wire(): void {
  $('#login').addEventListener('submit', (event) => {
    event.preventDefault();
    const user = $<HTMLInputElement>('#user').value;
    const password = $<HTMLInputElement>('#password').value;
    api<Me>('/api/login', { method: 'POST', body: JSON.stringify({ user, password }) }).then(
      (me) => {
        $('#login-error').textContent = '';
        $<HTMLInputElement>('#password').value = '';
        enter(me);
      },
      (error: unknown) => {
        $('#login-error').textContent = error instanceof ApiError && error.status === 401 ? 'Wrong user or password.' : String(error);
      },
    );
  });
  $('#logout').addEventListener('click', () => {
    void api('/api/logout', { method: 'POST' }).finally(() => {
      files = [];
      show('login');
    });
  });
  $('#filter').addEventListener('input', () => renderFiles());
  for (const button of document.querySelectorAll<HTMLButtonElement>('th button[data-sort]')) {
    button.addEventListener('click', () => {
      const key = button.dataset['sort'] as SortKey;
      sort = { key, ascending: sort.key === key ? !sort.ascending : true };
      renderFiles();
    });
  }
  const chooser = $<HTMLInputElement>('#chooser');
  chooser.addEventListener('change', () => {
    for (const file of chooser.files ?? []) upload(file);
    chooser.value = '';
  });
  document.addEventListener('dragover', (event) => {
    event.preventDefault();
    document.body.classList.add('dragging');
  });
  document.addEventListener('dragleave', () => document.body.classList.remove('dragging'));
  document.addEventListener('drop', (event) => {
    event.preventDefault();
    document.body.classList.remove('dragging');
    for (const file of event.dataTransfer?.files ?? []) upload(file);
  });
}

wire();
void start();
