/**
 * The module rules `npm test` checks (npm run deps): no import cycles, type-only imports included,
 * and the layers of docs/design.md ("Modules"). Paths are relative to the project root.
 */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      comment: 'No import cycle, type-only imports included: each module can be read and tested on its own.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'protocol-is-pure',
      comment: 'The codec and the error catalogue import nothing of ours outside src/protocol, and no I/O.',
      severity: 'error',
      from: { path: '^src/protocol/' },
      to: { pathNot: '^src/protocol/', dependencyTypesNot: ['npm'] },
    },
    {
      name: 'protocol-no-io',
      comment: 'No sockets, files, LMDB or threads in the codec.',
      severity: 'error',
      from: { path: '^src/protocol/' },
      to: { path: '^(node:)?(net|tls|fs|fs/promises|worker_threads|child_process)$|lmdb|piscina' },
    },
    {
      name: 'store-knows-no-server',
      comment: 'The metadata store imports nothing of the server, the client or the CLI.',
      severity: 'error',
      from: { path: '^src/store/' },
      to: { path: '^src/(server|client|cli)/' },
    },
    {
      name: 'accounts-know-no-server',
      comment: 'Accounts (the store of users and password hashes) import nothing of the server, the client or the CLI.',
      severity: 'error',
      from: { path: '^src/accounts/' },
      to: { path: '^src/(server|client|cli)/' },
    },
    {
      name: 'client-knows-no-server',
      comment: 'The client library imports nothing of the server, the store or the CLI.',
      severity: 'error',
      from: { path: '^src/client/' },
      to: { path: '^src/(server|store|cli)/' },
    },
    {
      name: 'server-knows-no-client-or-cli',
      severity: 'error',
      from: { path: '^src/server/' },
      to: { path: '^src/(client|cli)/' },
    },
    {
      name: 'workers-are-thin',
      comment: 'Worker tasks use the codec errors and hashing, nothing of the server, client, store or CLI.',
      severity: 'error',
      from: { path: '^workers/' },
      to: { path: '^src/(server|client|store|cli)/' },
    },
    {
      name: 'nothing-imports-the-cli',
      comment: 'The CLI is the edge: only bin/, the CLI itself and the tests import it.',
      severity: 'error',
      from: { pathNot: '^(src/cli|bin|test)/' },
      to: { path: '^src/cli/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.test.json' },
  },
};
