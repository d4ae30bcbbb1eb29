import type { Op } from '../../protocol/messages.js';
import type { RequestContext } from '../request-context.js';
import { deleteFile } from './delete.js';
import { get } from './get.js';
import { getDirect, getDirectEnd } from './get-direct.js';
import { hashes } from './hashes.js';
import { hello } from './hello.js';
import { info } from './info.js';
import { list } from './list.js';
import { log } from './log.js';
import { login, logout, whoami } from './login.js';
import { ping } from './ping.js';
import { putEnd } from './put-end.js';
import { put, putJoin } from './put.js';
import { putWhole } from './put-whole.js';
import { stat } from './stat.js';
import { uploads } from './uploads.js';
import type { Handled, HandlerTable, RequestByOp } from './types.js';

/** One handler per operation. */
export const handlers: HandlerTable = {
  hello,
  login,
  logout,
  whoami,
  list,
  uploads,
  stat,
  delete: deleteFile,
  info,
  ping,
  log,
  hashes,
  put,
  putJoin,
  putEnd,
  putWhole,
  get,
  getDirect,
  getDirectEnd,
};

/** Runs the handler of `op` (call it as `handle(request.op, request, ctx)`). */
export function handle<O extends Op>(op: O, request: RequestByOp[O], ctx: RequestContext): Handled<O> | Promise<Handled<O>> {
  return handlers[op](request, ctx);
}
