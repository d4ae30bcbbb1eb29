import type { ClientConnection } from './connection.js';
import { openMoreConnections } from './more-connections.js';

/** One connection an upload's chunks go out on: the upload's own (from `put`) or one that joined it (`putJoin`). */
interface Lane {
  readonly connection: ClientConnection;
  /** The upload's stream on this connection. */
  readonly stream: number;
  /** A joined lane: chunks sent on it are confirmed by a `ping` behind them (the upload's own lane needs none: its putEnd comes after them). */
  readonly joined: boolean;
  /** Chunks sent on this lane that the server has not yet confirmed taking. */
  readonly unconfirmed: Set<number>;
  /** The last confirmation asked for on this lane: settles once every chunk sent before it was taken. */
  confirmed: Promise<unknown>;
  lost: boolean;
}

/**
 * The connections one upload attempt sends its chunks on (parallel streams): the upload's own
 * and those that joined it. Each chunk goes on the lane with the least queued; chunks sent on a
 * joined lane are confirmed by a `ping` right behind them (the server handles a connection's
 * frames in order), so when a joined lane is cut, exactly its unconfirmed chunks are to be sent
 * again, on the other lanes (`takeLost`). The upload's own connection being cut ends the attempt,
 * as without lanes.
 */
export class UploadLanes {
  readonly #lanes: Lane[];
  /** Chunks of cut lanes, to be sent again. */
  readonly #lost: number[] = [];
  #lastPicked = -1;
  /** Waiting in `room` for a lane's socket to drain. */
  readonly #roomWaiters: (() => void)[] = [];
  /** On every lane's socket, 'drain' and 'close': wakes `room`. */
  readonly #wake = (): void => {
    for (const waiter of this.#roomWaiters.splice(0)) waiter();
  };
  /** Stop watching each lane's socket. */
  readonly #unwatch: (() => void)[];

  private constructor(lanes: Lane[]) {
    this.#lanes = lanes;
    this.#unwatch = lanes.map((lane) => lane.connection.watchDrain(this.#wake));
  }

  /** Just the upload's own connection. */
  static single(connection: ClientConnection, stream: number): UploadLanes {
    return new UploadLanes([UploadLanes.#lane(connection, stream, false)]);
  }

  /**
   * The upload's own connection plus up to `streams - 1` more that join it with `joinKey`
   * (fewer if the server takes no more connections from this network; `onNotice` says so).
   */
  static async open(
    connection: ClientConnection,
    put: { stream: number; joinKey: string },
    streams: number,
    openConnection: () => Promise<ClientConnection>,
    onNotice: ((text: string) => void) | undefined,
  ): Promise<UploadLanes> {
    const joinOne = async (): Promise<Lane> => {
      const extra = await openConnection();
      try {
        const { stream } = await extra.request('putJoin', { key: put.joinKey });
        return UploadLanes.#lane(extra, stream, true);
      } catch (error) {
        extra.destroy();
        throw error;
      }
    };
    const joined = await openMoreConnections(streams - 1, joinOne, (lane) => lane.connection.destroy(), onNotice);
    return new UploadLanes([UploadLanes.#lane(connection, put.stream, false), ...joined]);
  }

  static #lane(connection: ClientConnection, stream: number, joined: boolean): Lane {
    return { connection, stream, joined, unconfirmed: new Set(), confirmed: Promise.resolve(), lost: false };
  }

  /** Lanes still sending. */
  get count(): number {
    return this.#lanes.filter((lane) => !lane.lost).length;
  }

  /**
   * Sends chunk `index` (`write` puts its frame on the connection given, under the lane's stream)
   * on the live lane with the least queued. Returns whether that lane's socket has room for more.
   */
  send(index: number, write: (connection: ClientConnection, stream: number) => boolean): boolean {
    const lane = this.#pick();
    const room = write(lane.connection, lane.stream);
    if (lane.joined) {
      lane.unconfirmed.add(index);
      lane.confirmed = lane.connection.request('ping', {}).then(
        () => lane.unconfirmed.delete(index),
        () => this.#cut(lane),
      );
    }
    return room;
  }

  /** Waits until some lane's socket can take more (or none is left: the attempt's next check says why). */
  async room(): Promise<void> {
    for (;;) {
      const live = this.#lanes.filter((lane) => !lane.lost && !lane.connection.lost);
      if (live.length === 0 || live.some((lane) => !lane.connection.socket.writableNeedDrain)) return;
      await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
    }
  }

  /** Chunks whose lane was cut before the server confirmed them: to be sent again; each is handed out once. */
  takeLost(): number[] {
    return this.#lost.splice(0);
  }

  /** Waits until every chunk sent on a joined lane is confirmed or its lane is cut (then it is in `takeLost`). */
  async settled(): Promise<void> {
    await Promise.all(this.#lanes.map((lane) => lane.confirmed));
  }

  /** Closes the joined connections (the upload's own is its caller's: it is only let go). */
  close(): void {
    for (const unwatch of this.#unwatch) unwatch();
    for (const lane of this.#lanes) if (lane.joined) lane.connection.destroy();
    this.#wake();
  }

  /** The live lane with the least queued; of equals, the next in turn after the last one picked. */
  #pick(): Lane {
    let best: Lane | undefined;
    const count = this.#lanes.length;
    for (let step = 1; step <= count; step += 1) {
      const lane = this.#lanes[(this.#lastPicked + step) % count]!;
      if (lane.lost || lane.connection.lost) continue;
      if (!best || lane.connection.socket.writableLength < best.connection.socket.writableLength) best = lane;
    }
    // The upload's own lane is never skipped as cut: if it is, the attempt ends at its next check.
    best ??= this.#lanes[0]!;
    this.#lastPicked = this.#lanes.indexOf(best);
    return best;
  }

  #cut(lane: Lane): void {
    if (lane.lost) return;
    lane.lost = true;
    this.#lost.push(...lane.unconfirmed);
    lane.unconfirmed.clear();
    lane.connection.destroy();
  }
}
