/** What `TickWrites` needs of a socket (a `net.Socket` or a `tls.TLSSocket`). */
interface Corkable {
  cork(): void;
  uncork(): void;
}

/**
 * Gathers what a connection sends in one tick into one write: the socket is corked at the first
 * frame of the tick and uncorked on the next tick, once the tick's promise jobs have run (Node's
 * documented way to batch writes). Replies that one LMDB commit lets go together, a request with
 * its data, and the requests of several small files started at once then cost one system call
 * and one wake-up of the peer, not one each (docs/perf-notes.md, "Replies of one tick in one
 * write"). `end()` in the same tick still sends everything (it uncorks).
 */
export class TickWrites {
  readonly #socket: Corkable;
  #held = false;

  constructor(socket: Corkable) {
    this.#socket = socket;
  }

  /** Call before each write of the tick. */
  gather(): void {
    if (this.#held) return;
    this.#held = true;
    this.#socket.cork();
    process.nextTick(() => {
      this.#held = false;
      this.#socket.uncork();
    });
  }
}
