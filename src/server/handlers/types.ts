import type { Op, RequestOf, ResultOf } from '../../protocol/messages.js';
import type { RequestContext, RequestScope } from '../request-context.js';

/** What a handler returns: the reply's result, and work to start once the reply is on the wire. */
export interface Handled<O extends Op> {
  result: ResultOf[O];
  afterReply?: () => void;
}

export type Handler<O extends Op> = (request: RequestOf<O>, ctx: RequestContext) => Handled<O> | Promise<Handled<O>>;

/**
 * A handler that needs nothing of a Ferry connection, only the request's scope: the HTTP side
 * runs the same ones.
 */
export type ScopedHandler<O extends Op> = (request: RequestOf<O>, scope: RequestScope) => Handled<O> | Promise<Handled<O>>;

/** Each operation's request, by op: the form that lets one call serve every handler without a cast. */
export type RequestByOp = { [O in Op]: RequestOf<O> };

/** One handler per operation. */
export type HandlerTable = { [O in Op]: (request: RequestByOp[O], ctx: RequestContext) => Handled<O> | Promise<Handled<O>> };
