import type { Op } from '../../protocol/messages.js';
import { deleteFile } from './delete.js';
import { get } from './get.js';
import { hashes } from './hashes.js';
import { hello } from './hello.js';
import { info } from './info.js';
import { ping } from './ping.js';
import { list } from './list.js';
import { log } from './log.js';
import { put } from './put.js';
import { putEnd } from './put-end.js';
import { stat } from './stat.js';
import type { Handler } from './types.js';

/** One handler per operation. */
export const handlers: { [O in Op]: Handler<O> } = { hello, list, stat, delete: deleteFile, info, ping, log, hashes, put, putEnd, get };
