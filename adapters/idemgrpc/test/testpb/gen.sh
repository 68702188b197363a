#!/bin/sh
# Regenerates payments.pb.go and payments_grpc.pb.go from payments.proto.
# Needs protoc (Debian: protobuf-compiler), and the two plugins on PATH:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.10
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
set -eu
cd "$(dirname "$0")"
protoc --go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	payments.proto
