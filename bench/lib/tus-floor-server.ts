/**
 * The floor for a verified tus upload: the least any server that checks the whole file must do,
 * with no framework, no per-chunk checks, no durability and no resume. It speaks just enough tus
 * 1.0 for tus-js-client (POST creates, PATCH appends), SHA-256s every byte on the main thread as it
 * arrives, writes it with blocking `write` calls, and refuses the last PATCH if the SHA-256 differs
 * from Upload-Metadata's `sha256`. Run as `node tus-floor-server.js PORT DIR`; it says "listening"
 * on stdout.
 */
import { type Hash, createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

interface FloorUpload {
  fd: number;
  length: number;
  offset: number;
  hash: Hash;
  sha256: string | undefined;
}

const [port = '0', directory = ''] = process.argv.slice(2);
const uploads = new Map<string, FloorUpload>();
const tusHeaders = { 'Tus-Resumable': '1.0.0' };

function sha256Of(metadata: string | string[] | undefined): string | undefined {
  const pair = (typeof metadata === 'string' ? metadata : '').split(',').find((entry) => entry.startsWith('sha256 '));
  return pair && Buffer.from(pair.slice('sha256 '.length), 'base64').toString();
}

createServer((request, response) => {
  if (request.method === 'POST') {
    const id = String(uploads.size + 1);
    const fd = openSync(join(directory, id), 'w');
    const sha256 = sha256Of(request.headers['upload-metadata']);
    uploads.set(id, { fd, length: Number(request.headers['upload-length']), offset: 0, hash: createHash('sha256'), sha256 });
    response.writeHead(201, { ...tusHeaders, Location: `/files/${id}` }).end();
    return;
  }
  const upload = uploads.get(request.url?.split('/').pop() ?? '');
  if (request.method !== 'PATCH' || !upload) {
    response.writeHead(404, tusHeaders).end();
    return;
  }
  request.on('data', (piece: Buffer) => {
    upload.hash.update(piece);
    writeSync(upload.fd, piece);
    upload.offset += piece.length;
  });
  request.on('end', () => {
    if (upload.offset === upload.length) {
      closeSync(upload.fd);
      if (upload.sha256 !== undefined && upload.hash.digest('hex') !== upload.sha256) {
        response.writeHead(460, tusHeaders).end();
        return;
      }
    }
    response.writeHead(204, { ...tusHeaders, 'Upload-Offset': String(upload.offset) }).end();
  });
}).listen(Number(port), '127.0.0.1', () => process.stdout.write('listening\n'));
