#!/usr/bin/env bash
# redis-cluster.sh start|stop|status DIR
#
# Starts (or stops) a Redis Cluster of private redis-server processes on free
# loopback ports, masters only, with their files under DIR:
#   DIR/node<i>/   data, nodes.conf and redis.log of node i
#   DIR/pids       one PID per line (stop kills exactly these)
#   DIR/addrs      one host:port per line
# MASTERS (default 3) sets the number of masters. After start, the cluster
# answers cluster_state:ok on every node; the addresses are printed
# comma-separated, ready for a ClusterClient. redisstore's own tests start
# their cluster with it (they may not require svctest); the tests in the
# test-only modules use the Go helper svctest.StartRedisCluster. It is also
# for humans and the Makefile.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2
masters=${MASTERS:-3}

port_free() { # true if nothing listens on 127.0.0.1:$1
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

stop() {
	[[ -f $dir/pids ]] || return 0
	while read -r pid; do
		[[ -n $pid ]] || continue
		kill -TERM "$pid" 2>/dev/null || true
	done <"$dir/pids"
	for _ in $(seq 50); do
		alive=0
		while read -r pid; do
			[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && alive=1
		done <"$dir/pids"
		[[ $alive -eq 0 ]] && break
		sleep 0.1
	done
	while read -r pid; do
		[[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true
	done <"$dir/pids"
	rm -f "$dir/pids" "$dir/addrs"
}

start() {
	command -v redis-server >/dev/null || { echo "redis-server not on PATH" >&2; exit 1; }
	command -v redis-cli >/dev/null || { echo "redis-cli not on PATH" >&2; exit 1; }
	if [[ -f $dir/pids ]]; then
		echo "$dir/pids exists: stop the running cluster first" >&2
		exit 1
	fi
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	: >"$dir/pids"
	: >"$dir/addrs"
	trap 'stop' ERR
	for i in $(seq 0 $((masters - 1))); do
		# A node needs its port and the cluster bus port (port+10000) free.
		for _ in $(seq 100); do
			port=$((20000 + RANDOM % 25000))
			port_free "$port" && port_free $((port + 10000)) && break
		done
		node="$dir/node$i"
		rm -rf "$node"
		mkdir -p "$node"
		redis-server --port "$port" --bind 127.0.0.1 --dir "$node" --save "" --appendonly no \
			--protected-mode no --daemonize yes --pidfile "$node/redis.pid" \
			--logfile "$node/redis.log" --cluster-enabled yes \
			--cluster-config-file "$node/nodes.conf" --cluster-node-timeout 5000
		# A loaded machine (a -race test run on two cores) can take seconds
		# to start it: wait up to 30 s, and say what its log says if it
		# never answers (a port lost to another process, say).
		up=0
		for _ in $(seq 600); do
			[[ -s $node/redis.pid ]] && redis-cli -p "$port" ping >/dev/null 2>&1 && { up=1; break; }
			sleep 0.05
		done
		[[ -s $node/redis.pid ]] && cat "$node/redis.pid" >>"$dir/pids"
		if [[ $up -ne 1 ]]; then
			echo "node $i on port $port did not answer PING within 30 s; its log:" >&2
			tail -n 20 "$node/redis.log" >&2 2>/dev/null || true
			exit 1
		fi
		echo "127.0.0.1:$port" >>"$dir/addrs"
	done
	mapfile -t addrs <"$dir/addrs"
	redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log"
	for _ in $(seq 600); do
		ready=1
		for a in "${addrs[@]}"; do
			info=$(redis-cli -h "${a%:*}" -p "${a##*:}" cluster info 2>/dev/null || true)
			grep -q 'cluster_state:ok' <<<"$info" &&
				grep -q "cluster_known_nodes:$masters" <<<"$info" || { ready=0; break; }
		done
		[[ $ready -eq 1 ]] && break
		sleep 0.05
	done
	if [[ $ready -ne 1 ]]; then
		echo "cluster did not reach cluster_state:ok; logs in $dir" >&2
		stop
		exit 1
	fi
	trap - ERR
	(IFS=,; echo "${addrs[*]}")
}

case $cmd in
start) start ;;
stop) stop ;;
status)
	[[ -f $dir/addrs ]] || { echo "not running"; exit 1; }
	while read -r a; do
		printf '%s ' "$a"
		redis-cli -h "${a%:*}" -p "${a##*:}" cluster info | grep cluster_state
	done <"$dir/addrs"
	;;
*) usage ;;
esac
