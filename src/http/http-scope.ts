import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { TransferLogRecord, UserRecord } from '../store/records.js';
import { AccountView } from '../server/account-view.js';
import { addressPrefix } from '../server/address-prefix.js';
import type { RequestScope } from '../server/request-context.js';
import type { ServerServices } from '../server/services.js';
import { type TransferEntry, logTransfer, reportTransfer, whoOf } from '../server/transfer-report.js';

/** One HTTP request's scope: who sent it and as which account; the handlers shared with the Ferry side run in it. */
export class HttpRequestScope implements RequestScope {
  readonly services: ServerServices;
  readonly clientAddress: string;
  readonly clientNetwork: string;
  log: Logger;
  #account: AccountView | undefined;

  constructor(services: ServerServices, request: IncomingMessage) {
    const { remoteAddress = '?', remotePort = 0 } = request.socket;
    this.services = services;
    this.clientAddress = `${remoteAddress}:${remotePort}`;
    this.clientNetwork = addressPrefix(remoteAddress);
    this.log = services.logger.child({ client: this.clientAddress, http: true });
  }

  get account(): AccountView | undefined {
    return this.#account;
  }

  /** The request is made as `user` (its credentials were checked). */
  actAs(user: UserRecord): AccountView {
    this.#account = new AccountView(user);
    this.log = this.log.child({ user: user.name });
    return this.#account;
  }

  get who(): Pick<TransferLogRecord, 'client' | 'user'> {
    return whoOf(this.clientAddress, this.#account);
  }

  async logTransfer(entry: TransferEntry): Promise<void> {
    await logTransfer(this.services.store, this.log, this.who, entry);
  }

  reportTransfer(entry: TransferEntry): void {
    reportTransfer(this.log, entry);
  }
}
