//! Reading our SIGUSR1 status line, e.g. `BACKUP on eth0 id 7: accepted 4
//! sent 0 send-errors 0 arps 0 transitions 1 rejected [bad_digest=3] …`.

/// A number from the line: `accepted`, `sent`, `send-errors`, … or a
/// rejection cause (`bad_digest`); 0 when absent.
pub fn status_count(line: &str, key: &str) -> u64 {
    if let Some(rest) = line.split(&format!("{key} ")).nth(1) {
        return rest
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
    }
    line.split(&format!("{key}="))
        .nth(1)
        .and_then(|rest| rest.split([' ', ']']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// One virtual host's SIGUSR1 line, parsed: `MASTER on eth0 id 7:
/// accepted 4 sent 9 … transitions 2 rejected […] for 1.2s (reason) master
/// 10.0.0.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhostLine {
    pub state: String,
    pub interface: String,
    pub vhid: u8,
    pub transitions: u64,
    /// The master as this host knows it, if any.
    pub master: Option<String>,
    /// Still finishing its down script and leave advert.
    pub stopping: bool,
}

/// Parses a status line (with or without a log prefix such as `LOG
/// [INFO] `); `None` for any other line.
pub fn parse_status_line(line: &str) -> Option<VhostLine> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.windows(4).position(|w| {
        ["MASTER", "BACKUP", "INIT"].contains(&w[0]) && w[1] == "on" && w[3] == "id"
    })?;
    let vhid = words.get(at + 4)?.strip_suffix(':')?.parse().ok()?;
    // The reason in parentheses may say "master" too: the master is the
    // last "master" followed by an address.
    let master = words
        .windows(2)
        .rev()
        .find(|w| w[0] == "master" && w[1].parse::<std::net::IpAddr>().is_ok())
        .map(|w| w[1].to_string());
    Some(VhostLine {
        state: words[at].to_string(),
        interface: words[at + 2].to_string(),
        vhid,
        transitions: status_count(line, "transitions"),
        master,
        stopping: words.last() == Some(&"stopping"),
    })
}
