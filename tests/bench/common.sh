# Sourced by the benchmarks: a scratch directory, and every process whose
# pid is added to $pids stopped (and the directory removed) at the end.
dir=$(mktemp -d)
pids=""
trap 'kill $pids 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT INT TERM

# A free loopback port.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
