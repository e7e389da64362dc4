//! The status model as JSON (`ucarp status --json`, the control socket's
//! `status` reply) and as text for people (`ucarp status`). The text is
//! rendered from the JSON, so both always say the same thing.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carp_io::{HookRun, RuntimeStatus, VirtualHostStatus};
use serde_json::{json, Value};

/// Seconds since the Unix epoch, with milliseconds.
pub fn unix_time(at: SystemTime) -> f64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    (since.as_millis() as f64) / 1000.0
}

/// The whole runtime.
pub fn runtime(status: &RuntimeStatus, started: SystemTime) -> Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "started": unix_time(started),
        "now": unix_time(SystemTime::now()),
        "interfaces": status.interfaces.iter().map(|i| json!({
            "name": i.name,
            "index": i.index,
            "link_up": i.link_up,
            "rejected": i.rejected,
        })).collect::<Vec<_>>(),
        "virtual_hosts": status.virtual_hosts.iter().map(virtual_host).collect::<Vec<_>>(),
    })
}

fn virtual_host(v: &VirtualHostStatus) -> Value {
    let c = &v.counters;
    let master = v.master.map(|address| {
        let advert = v.master_advert;
        json!({
            "address": address.to_string(),
            "us": address == v.source,
            "advbase": advert.map(|a| a.advbase),
            "advskew": advert.map(|a| a.advskew),
            "demote": advert.map(|a| a.demote),
        })
    });
    json!({
        "interface": v.interface,
        "vhid": v.vhid,
        "addresses": v.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "source": v.source.to_string(),
        "state": v.state().to_string(),
        "since": unix_time(v.since_wall),
        "in_state_seconds": round3(v.in_state_for().as_secs_f64()),
        "last_reason": v.last_reason.map(|r| r.to_string()),
        "master": master,
        "advbase": v.advbase,
        "advskew": v.advskew,
        "master_down_seconds": round3(v.master_down.as_secs_f64()),
        "demote": v.demote,
        "demote_causes": v.demote_causes.iter().map(|d| json!({
            "cause": d.cause,
            "demote": d.demote,
        })).collect::<Vec<_>>(),
        "demote_group": v.demote_group,
        "stopping": v.stopping,
        "counters": {
            "adverts_sent": c.sent,
            "adverts_received": c.accepted,
            "send_errors": c.send_errors,
            "arps_sent": c.arps_sent,
            "transitions": c.transitions,
            "rejected": c.rejected,
            "replays_tolerated": c.replays_tolerated,
        },
        "scripts": {
            "running": v.hooks.running.as_ref().map(hook_run),
            "last": v.hooks.last.as_ref().map(hook_run),
        },
    })
}

fn hook_run(run: &HookRun) -> Value {
    json!({
        "hook": run.hook,
        "command": run.command,
        "started": unix_time(run.started),
        "outcome": run.outcome,
        "success": run.success,
        "took_seconds": run.took.map(|t| round3(t.as_secs_f64())),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time (days to civil date as in
/// Howard Hinnant's `civil_from_days`).
pub fn utc(unix: f64) -> String {
    let secs = unix.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A duration for people: `850ms`, `12.3s`, `4m05s`, `3h02m`, `2d04h`.
pub fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0);
    let whole = s as u64;
    match whole {
        0 => format!("{:.0}ms", s * 1000.0),
        1..=59 => format!("{s:.1}s"),
        60..=3599 => format!("{}m{:02}s", whole / 60, whole % 60),
        3600..=86_399 => format!("{}h{:02}m", whole / 3600, whole % 3600 / 60),
        _ => format!("{}d{:02}h", whole / 86_400, whole % 86_400 / 3600),
    }
}

/// `ucarp status` for people, from the JSON status of one daemon.
pub fn text(status: &Value) -> String {
    let mut out = String::new();
    let now = status["now"].as_f64().unwrap_or(0.0);
    let _ = writeln!(
        out,
        "ucarp {} (pid {}), running for {}",
        status["version"].as_str().unwrap_or("?"),
        status["pid"],
        ago(now - status["started"].as_f64().unwrap_or(now))
    );
    let vhosts = status["virtual_hosts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if vhosts.is_empty() {
        out.push_str("  no virtual host\n");
    }
    for v in &vhosts {
        vhost_text(&mut out, v, now);
    }
    for i in status["interfaces"].as_array().into_iter().flatten() {
        let rejected = counts(&i["rejected"]);
        if !i["link_up"].as_bool().unwrap_or(true) || !rejected.is_empty() {
            let _ = writeln!(
                out,
                "interface {}: {}{}",
                i["name"].as_str().unwrap_or("?"),
                if i["link_up"].as_bool().unwrap_or(false) {
                    "up"
                } else {
                    "NO CARRIER"
                },
                if rejected.is_empty() {
                    String::new()
                } else {
                    format!(", packets refused or lost before any virtual host {rejected}")
                }
            );
        }
    }
    out
}

fn vhost_text(out: &mut String, v: &Value, now: f64) {
    let s = |key: &str| v[key].as_str().unwrap_or("-").to_string();
    let since = v["since"].as_f64().unwrap_or(now);
    let in_state = v["in_state_seconds"].as_f64().unwrap_or(now - since);
    let _ = writeln!(
        out,
        "vhid {} on {}: {}{} for {} (since {}){}",
        v["vhid"],
        s("interface"),
        s("state"),
        if v["stopping"].as_bool().unwrap_or(false) {
            " (stopping)"
        } else {
            ""
        },
        ago(in_state),
        utc(since),
        v["last_reason"]
            .as_str()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    let addresses: Vec<&str> = v["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let _ = writeln!(
        out,
        "  addresses {}; source {}; advbase {} advskew {}; master down after {}s",
        addresses.join(" "),
        s("source"),
        v["advbase"],
        v["advskew"],
        v["master_down_seconds"]
    );
    let m = &v["master"];
    if m.is_null() {
        out.push_str("  master    none heard\n");
    } else {
        let _ = writeln!(
            out,
            "  master    {}{}: advbase {} advskew {} demote {}",
            m["address"].as_str().unwrap_or("?"),
            if m["us"].as_bool().unwrap_or(false) {
                " (us)"
            } else {
                ""
            },
            opt(&m["advbase"]),
            opt(&m["advskew"]),
            opt(&m["demote"])
        );
    }
    let demote = v["demote"].as_u64().unwrap_or(0);
    let causes: Vec<String> = v["demote_causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} +{}", c["cause"].as_str().unwrap_or("?"), c["demote"]))
        .collect();
    let group = v["demote_group"].as_str();
    if demote > 0 || !causes.is_empty() || group.is_some() {
        let _ = writeln!(
            out,
            "  demote    {demote}{}{}",
            group.map(|g| format!(" (group {g})")).unwrap_or_default(),
            if causes.is_empty() {
                String::new()
            } else {
                format!(": {}", causes.join(", "))
            }
        );
    }
    let c = &v["counters"];
    let rejected = counts(&c["rejected"]);
    let _ = writeln!(
        out,
        "  adverts   sent {} received {}; send errors {}; arps {}; transitions {}; rejected {}",
        c["adverts_sent"],
        c["adverts_received"],
        c["send_errors"],
        c["arps_sent"],
        c["transitions"],
        if rejected.is_empty() {
            "0".to_string()
        } else {
            rejected
        }
    );
    let scripts = &v["scripts"];
    for (label, run) in [("running", &scripts["running"]), ("last", &scripts["last"])] {
        if run.is_null() {
            continue;
        }
        let started = run["started"].as_f64().unwrap_or(now);
        let _ = writeln!(
            out,
            "  script    {label}: {} {}{} ({} ago)",
            run["hook"].as_str().unwrap_or("?"),
            run["command"].as_str().unwrap_or("?"),
            run["outcome"]
                .as_str()
                .map(|o| format!(": {o} after {}s", opt(&run["took_seconds"])))
                .unwrap_or_default(),
            ago(now - started)
        );
    }
}

fn opt(value: &Value) -> String {
    if value.is_null() {
        "?".into()
    } else {
        value.to_string()
    }
}

/// `bad_digest=3 wrong_vhid=2` from a JSON object of counts.
fn counts(value: &Value) -> String {
    value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_920_245.0), "2026-11-29 02:44:05 UTC");
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(ago(0.25), "250ms");
        assert_eq!(ago(12.34), "12.3s");
        assert_eq!(ago(245.0), "4m05s");
        assert_eq!(ago(3.0 * 3600.0 + 120.0), "3h02m");
        assert_eq!(ago(2.0 * 86_400.0 + 4.0 * 3600.0), "2d04h");
    }
}
