#!/usr/bin/env bash
# Regenerates the Swift code for etcd's v3 API from Protos/etcd/*.proto.
#
# Needs protoc (Debian: protobuf-compiler). The two plugins are built from this package's own
# dependencies, so the generated code always matches the runtime libraries we link against.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }

swift build --product protoc-gen-swift
swift build --product protoc-gen-grpc-swift-2
bin=$(swift build --show-bin-path)

out=Sources/EtcdClient/Generated
mkdir -p "$out"
rm -f "$out"/*.swift

protoc \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" \
  --proto_path=Protos/etcd \
  --swift_out="$out" \
  --swift_opt=Visibility=Package \
  --grpc-swift_out="$out" \
  --grpc-swift_opt=Visibility=Package,Server=false,Client=true \
  Protos/etcd/kv.proto Protos/etcd/rpc.proto

# Generated code keeps protoc's layout; the formatter leaves it alone.
for file in "$out"/*.swift; do
  { echo "// swift-format-ignore-file"; cat "$file"; } > "$file.tmp" && mv "$file.tmp" "$file"
done

echo "generated: $(ls "$out")"
