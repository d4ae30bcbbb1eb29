import { FerryError } from '../../protocol/errors.js';
import { checkName } from '../../protocol/names.js';
import type { StoredFile } from '../../store/records.js';
import type { Connection } from '../connection.js';
import { fileInfo } from './file-info.js';
import type { Handler } from './types.js';

/** The stored file called `name`, or ENOENT. */
export function storedFile(connection: Connection, name: string): StoredFile {
  const file = connection.services.store.file(checkName(name));
  if (!file) throw new FerryError('ENOENT', `${name}: not found`);
  return file;
}

export const stat: Handler<'stat'> = async (connection, request) => ({ result: fileInfo(storedFile(connection, request.name)) });
