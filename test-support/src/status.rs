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
