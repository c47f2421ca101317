#!/usr/bin/env bash
# Generate TypeScript stubs for @grpc/grpc-js from proto/ and build the Node.js client.
#
#   scripts/gen_node_stubs.sh
#
# In scripts/node_client/: installs the pinned npm packages from package-lock.json
# (npm ci, only when node_modules is missing or older than the lock file),
# writes the stubs to generated/ with @grpc/proto-loader's proto-loader-gen-types,
# and compiles client.ts against them with tsc into dist/. A contract change that
# the client does not follow fails the compile. Needs Node.js 18+ and npm.
set -euo pipefail

cd "$(dirname "$0")/node_client"
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "installing npm packages in scripts/node_client ..." >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

rm -rf generated dist
# The loader flags must match LOADER_OPTIONS in client.ts: they shape the types.
node_modules/.bin/proto-loader-gen-types ditserve/v1/engine.proto \
  --includeDirs=../../proto --outDir=generated --grpcLib=@grpc/grpc-js \
  --keepCase --longs=String --enums=String --defaults --oneofs --includeComments
node_modules/.bin/tsc --project tsconfig.json
