#!/usr/bin/env bash
# TypeScript declarations of the browser client, generated from its JSDoc.
#
#   scripts/check-types.sh           checks the JSDoc (tsc --checkJs), regenerates
#                                    the .d.ts files into a temporary directory,
#                                    compiles test/types-usage.ts (what a TypeScript
#                                    user writes) against them, and fails with a diff
#                                    if they differ from the committed ones
#   scripts/check-types.sh --write   regenerates them in place (commit the result)
#
# Needs `npm ci` first (the TypeScript compiler is a pinned devDependency).
# tsc runs on a copy of the sources: a committed .d.ts beside a .js would
# shadow it, so that tsc would read the old declarations instead of the JSDoc.
set -euo pipefail
cd "$(dirname "$0")/.."

write=false
case "${1:-}" in
  --write) write=true ;;
  '') ;;
  *) echo "usage: $0 [--write]" >&2; exit 2 ;;
esac

tsc=node_modules/.bin/tsc
if [ ! -x "$tsc" ]; then
  echo "$tsc is missing: run 'npm ci' in clients/js first" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/sources/src" "$tmp/generated" "$tmp/committed/src" "$tmp/usage/src" "$tmp/usage/test"
cp tsconfig.json tsconfig.types.json ./*.js "$tmp/sources/"
cp src/*.js "$tmp/sources/src/"

# Type-check every module and the example page (noEmit), then emit the
# declarations of the two entry points and every module they import.
"$tsc" -p "$tmp/sources/tsconfig.json"
"$tsc" -p "$tmp/sources/tsconfig.types.json" --outDir "$tmp/generated"

# The declarations must be valid and keep their precision for a TypeScript user.
cp tsconfig.json "$tmp/usage/"
cp test/tsconfig.json test/types-usage.ts "$tmp/usage/test/"
cp "$tmp/generated/"*.d.ts "$tmp/usage/"
cp "$tmp/generated/src/"*.d.ts "$tmp/usage/src/"
"$tsc" -p "$tmp/usage/test/tsconfig.json"

if $write; then
  rm -f ./*.d.ts src/*.d.ts
  cp "$tmp/generated/"*.d.ts .
  cp "$tmp/generated/src/"*.d.ts src/
  echo "wrote $(find "$tmp/generated" -name '*.d.ts' | wc -l) declaration files"
  exit 0
fi

cp ./*.d.ts "$tmp/committed/" 2>/dev/null || true
cp src/*.d.ts "$tmp/committed/src/" 2>/dev/null || true
if ! diff -ru "$tmp/committed" "$tmp/generated"; then
  echo >&2
  echo "The committed .d.ts files differ from what the JSDoc generates (diff above)." >&2
  echo "Run clients/js/scripts/check-types.sh --write and commit the result." >&2
  exit 1
fi
echo "types: the committed .d.ts files match the JSDoc"
