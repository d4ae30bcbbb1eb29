import type { Op, RequestOf, ResultOf } from '../../protocol/messages.js';
import type { Connection } from '../connection.js';

/** What a handler returns: the reply's result, and work to start once the reply is on the wire. */
export interface Handled<O extends Op> {
  result: ResultOf[O];
  afterReply?: () => void;
}

export type Handler<O extends Op> = (connection: Connection, request: RequestOf<O>) => Promise<Handled<O>>;
