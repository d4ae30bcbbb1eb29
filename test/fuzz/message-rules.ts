// What the server must do, checked on every message it sends.
import { errorCatalogue } from '../../src/protocol/errors.js';
import type { ControlMessage } from '../helpers/raw-client.js';
import { show } from './report.js';

/** Codes the reference client makes up itself; the catalogue says they never travel on the wire. */
const clientSideCodes = new Set(['ECONNECT', 'ECONNLOST', 'EUSAGE']);
// One line, and plain: the server's own rule for messages (src/protocol/messages.ts, oneLine)
// is that control characters (C0, DEL, C1, which includes NEL U+0085 and CSI U+009B) do not
// appear in them. FOUND BY THIS TEST: EBADNAME for a name holding DEL or a C1 character echoed
// it raw (JSON.stringify escapes only C0); every message now goes through wireMessage().
// eslint-disable-next-line no-control-regex
const controlCharacter = /[\u0000-\u001f\u007f-\u009f]/u;

/** What is wrong with an error reply or event (its code and message), or undefined. */
export function codeProblem(message: ControlMessage): string | undefined {
  const code = message['code'];
  if (typeof code !== 'string' || !Object.hasOwn(errorCatalogue, code))
    return `code ${show(code)} is not in the error catalogue: ${show(message)}`;
  if (clientSideCodes.has(code)) return `code ${code} is client-side only and must never be on the wire: ${show(message)}`;
  if (code === 'EINTERNAL') return `EINTERNAL, an unexpected server failure: ${show(message)}`;
  const text = message['message'];
  if (typeof text !== 'string' || text.length === 0) return `no message: ${show(message)}`;
  if (controlCharacter.test(text)) return `the message is not one plain line (it holds a control character): ${show(message)}`;
  return undefined;
}

/** The head of a big ok reply, as the server writes replies: `{"id":<id>,"ok":true,"result":`. */
export const bigOkReply = /^\{"id":(-?[0-9][0-9.eE+-]*),"ok":true,"result":[[{]/u;
