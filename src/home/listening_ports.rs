//! Which TCP ports a process listens on, from `/proc/net/tcp*` and its open sockets. A
//! process named like a dev server (node, vite, ...) is one only if it serves a port; npm
//! installing Codex, or Codex's own node wrapper, serves none.

use std::collections::HashMap;
use std::path::Path;

/// Socket inode to port, for every listening TCP socket of the machine (IPv4 and IPv6).
/// Empty where there is no `/proc` (not Linux): then nothing is called a dev server.
pub fn listening_sockets() -> HashMap<u64, u16> {
    let mut sockets = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            sockets.extend(parse_listening(&text));
        }
    }
    sockets
}

/// The ports among `sockets` that `pid` holds open, sorted, each once.
pub fn ports_of(pid: u32, sockets: &HashMap<u64, u16>) -> Vec<u16> {
    let Ok(entries) = std::fs::read_dir(Path::new("/proc").join(pid.to_string()).join("fd")) else {
        return Vec::new();
    };
    let mut ports: Vec<u16> = entries
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| socket_inode(&target.to_string_lossy()))
        .filter_map(|inode| sockets.get(&inode).copied())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// A descriptor's link reads `socket:[12345]` for a socket.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The rows of a `/proc/net/tcp` table in state LISTEN (0A): local port and inode.
fn parse_listening(table: &str) -> HashMap<u64, u16> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if *state != LISTEN {
                return None;
            }
            let port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            Some((inode.parse().ok()?, port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listening_rows_count() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1435 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:1435 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1
";
        let rows = parse_listening(table);
        assert_eq!(rows.get(&4242), Some(&5173));
        assert!(
            !rows.contains_key(&4343),
            "an established connection serves nothing"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_serving_a_port_has_it_and_one_that_does_not_has_none() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sockets = listening_sockets();
        assert!(ports_of(std::process::id(), &sockets).contains(&port));

        let mut idle = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let ports = ports_of(idle.id(), &listening_sockets());
        let _ = idle.kill();
        let _ = idle.wait();
        assert!(ports.is_empty(), "{ports:?}");
    }
}
