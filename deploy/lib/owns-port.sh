# Sourced by the test servers' start scripts (deploy/*/start.sh).
# owns_port PID PORT: the process PID has a socket listening on
# 127.0.0.1:PORT (read from /proc, so no ss/netstat needed). A server that
# failed to bind while another process holds the port does not count.
owns_port() {
  local pid=$1 hexport inode
  hexport=$(printf '%04X' "$2")
  for inode in $(awk -v a="0100007F:$hexport" '$2 == a && $4 == "0A" {print $10}' /proc/net/tcp); do
    if ls -l "/proc/$pid/fd" 2>/dev/null | grep -q "socket:\[$inode\]"; then return 0; fi
  done
  return 1
}
