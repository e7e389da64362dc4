//! `ucarp --config` in network namespaces: 3 hosts × 20 vhids × 3
//! addresses from configuration files, one process each. Killing a host
//! moves exactly the vhids it was master of; a reload touches only what
//! changed; a bad file changes nothing. State is read from the SIGUSR1
//! status lines (one per virtual host). Runs as root (for real in CI).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use test_support::lab::{eventually, privileged, Lab, Proc};
use test_support::layout::{preferred, second, skew, HOSTS};
use test_support::peers::ours;
use test_support::scripts::Dir;
use test_support::status::{parse_status_line, VhostLine};

const VHIDS: u8 = 20;
const SECOND: Duration = Duration::from_secs(1);

/// One `[[vhost]]`: three addresses 10.98.<vhid>.1-3, the down script
/// recording its runs.
fn vhost(vhid: u8, skew: u8) -> String {
    format!(
        "[[vhost]]\nvhid = {vhid}\nadvskew = {skew}\n\
         addresses = [\"10.98.{vhid}.1\", \"10.98.{vhid}.2\", \"10.98.{vhid}.3\"]\n"
    )
}

/// A host's file: shared settings in [defaults], then the vhosts.
fn file(lab: &Lab, host: usize, dir: &Dir, vhosts: &str) -> String {
    format!(
        "[daemon]\nfacility = \"none\"\n\n[defaults]\ninterface = \"eth0\"\n\
         srcip = \"{}\"\npassword = \"secret\"\ndownscript = \"{}\"\n\n{vhosts}",
        lab.addr(host),
        dir.path("down.sh").display()
    )
}

fn write(dir: &Dir, host: usize, text: &str) -> PathBuf {
    let path = dir.path(&format!("host{host}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn start(lab: &Lab, host: usize, config: &PathBuf) -> Proc {
    let mut command = lab.command(host, ours().to_str().unwrap());
    command.arg("--config").arg(config);
    let proc = Proc::spawn(&format!("host{host}"), command);
    // Signals are handled once every virtual host has started; a SIGUSR1
    // before that would end the process (its default action).
    proc.wait_for("start-up", 5 * SECOND, |l| {
        l.contains(&format!("vhid {VHIDS} on eth0: starting"))
    });
    proc
}

/// Every virtual host's status line, after a SIGUSR1.
fn status(proc: &Proc, count: usize) -> BTreeMap<u8, VhostLine> {
    let mark = proc.mark();
    proc.signal(Signal::SIGUSR1);
    eventually(5 * SECOND, Duration::from_millis(20), || {
        let lines: BTreeMap<u8, VhostLine> = proc
            .lines()
            .iter()
            .skip(mark)
            .filter_map(|l| parse_status_line(l))
            .map(|v| (v.vhid, v))
            .collect();
        if lines.len() >= count {
            return Ok(lines);
        }
        Err(format!(
            "{}: {} of {count} status lines; output:\n{}",
            proc.name,
            lines.len(),
            proc.lines().join("\n")
        ))
    })
}

/// Waits until every vhid has the expected master among `alive`, and every
/// backup knows it.
fn converge(
    lab: &Lab,
    procs: &[Proc],
    alive: &[usize],
    expected: impl Fn(u8) -> usize,
    timeout: Duration,
) -> Vec<BTreeMap<u8, VhostLine>> {
    eventually(timeout, Duration::from_millis(200), || {
        let all: Vec<_> = alive
            .iter()
            .map(|&h| status(&procs[h], usize::from(VHIDS)))
            .collect();
        let ok = (1..=VHIDS).all(|v| {
            alive.iter().zip(&all).all(|(&h, s)| {
                let want = if h == expected(v) { "MASTER" } else { "BACKUP" };
                let master = lab.addr(expected(v)).to_string();
                s.get(&v)
                    .is_some_and(|s| s.state == want && s.master.as_deref() == Some(&master))
            })
        });
        if ok {
            return Ok(all);
        }
        Err(format!("no convergence within {timeout:?}: {all:#?}"))
    })
}

#[test]
fn twenty_vhids_per_host_from_files_then_kill_and_reload() {
    if !privileged("twenty_vhids_per_host_from_files_then_kill_and_reload") {
        return;
    }
    let lab = Lab::new(HOSTS);
    let dir = Dir::new("config-reload");
    dir.script(
        "down.sh",
        &format!(
            "echo \"$UCARP_VHID $2\" >> {}",
            dir.path("down.log").display()
        ),
    );
    let vhosts = |host: usize| -> String { (1..=VHIDS).map(|v| vhost(v, skew(host, v))).collect() };
    let configs: Vec<PathBuf> = (0..HOSTS)
        .map(|h| write(&dir, h, &file(&lab, h, &dir, &vhosts(h))))
        .collect();
    let mut procs: Vec<Proc> = (0..HOSTS).map(|h| start(&lab, h, &configs[h])).collect();
    let before = converge(&lab, &procs, &[0, 1, 2], preferred, 20 * SECOND);
    // One process serves all 20: the main thread waits in the protocol
    // loop, plus signal, log, stderr and one script thread per vhost.
    let threads = std::fs::read_dir(format!("/proc/{}/task", procs[0].pid()))
        .unwrap()
        .count();
    assert!(threads <= 4 + usize::from(VHIDS), "{threads} threads");

    // kill -9 host 0: its vhids move to their second choice; nothing else
    // transitions.
    procs[0].kill9();
    let moved_to = |v: u8| {
        if preferred(v) == 0 {
            second(v)
        } else {
            preferred(v)
        }
    };
    let after = converge(&lab, &procs, &[1, 2], moved_to, 10 * SECOND);
    for (i, h) in [1usize, 2].into_iter().enumerate() {
        for v in 1..=VHIDS {
            let moved = u64::from(preferred(v) == 0 && second(v) == h);
            assert_eq!(
                after[i][&v].transitions,
                before[h][&v].transitions + moved,
                "host {h} vhid {v}: only the dead host's vhids may move"
            );
        }
    }

    // Reload host 1 with vhid 4 changed (host 1 is its preferred master;
    // with skew 120 it hands over to host 2), vhid 5 removed (host 1 is a
    // backup there), vhid 21 added (host 1's alone), the rest as they were.
    let host = 1;
    let mut changed: String = (1..=VHIDS)
        .filter(|&v| v != 5)
        .map(|v| vhost(v, if v == 4 { 120 } else { skew(host, v) }))
        .collect();
    changed.push_str(&vhost(21, 0));
    write(&dir, host, &file(&lab, host, &dir, &changed));
    let down_runs_before = dir.read("down.log").lines().count();
    let mark = procs[host].mark();
    procs[host].signal(Signal::SIGHUP);
    let summary = procs[host].wait_for_after(mark, "reload summary", 5 * SECOND, |l| {
        l.contains("reload of ")
    });
    assert!(
        summary.contains("1 added, 1 changed, 1 removed, 18 unchanged"),
        "{summary}"
    );
    // vhid 4 moves to host 2 (its next choice), vhid 21 is host 1's alone.
    let reloaded = eventually(10 * SECOND, Duration::from_millis(200), || {
        let s1 = status(&procs[1], usize::from(VHIDS));
        let s2 = status(&procs[2], usize::from(VHIDS));
        let settled = s1
            .get(&4)
            .is_some_and(|v| v.state == "BACKUP" && !v.stopping)
            && s2[&4].state == "MASTER"
            && s1.get(&21).is_some_and(|v| v.state == "MASTER")
            && !s1.contains_key(&5);
        if settled {
            return Ok((s1, s2));
        }
        Err(format!("reload not applied: {s1:#?}"))
    });
    for v in (1..=VHIDS).filter(|&v| ![4, 5].contains(&v)) {
        assert_eq!(
            reloaded.0[&v].transitions, after[0][&v].transitions,
            "host 1 vhid {v} was not changed but transitioned"
        );
        assert_eq!(
            reloaded.1[&v].transitions, after[1][&v].transitions,
            "host 2 vhid {v} transitioned"
        );
    }
    // Down scripts ran only for the changed, removed and added vhids (the
    // old vhid 4 leaving, the new 4 and 21 starting).
    let runs: Vec<String> = dir
        .read("down.log")
        .lines()
        .skip(down_runs_before)
        .map(|l| l.split(' ').next().unwrap_or_default().to_string())
        .collect();
    assert!(
        runs.iter().all(|v| ["4", "5", "21"].contains(&v.as_str())) && !runs.is_empty(),
        "down scripts for untouched vhids: {runs:?}"
    );

    // A bad file changes nothing, and says why.
    let mut bad = changed.clone();
    bad.push_str("[[vhost]]\nvhid = 22\nadvskw = 1\naddresses = [\"10.98.22.1\"]\n");
    write(&dir, host, &file(&lab, host, &dir, &bad));
    let mark = procs[host].mark();
    procs[host].signal(Signal::SIGHUP);
    let refusal = procs[host].wait_for_after(mark, "refusal", 5 * SECOND, |l| {
        l.contains("reload refused")
    });
    assert!(
        refusal.contains("host1.toml:") && refusal.contains("unknown field `advskw`"),
        "{refusal}"
    );
    std::thread::sleep(SECOND);
    let unchanged = status(&procs[1], usize::from(VHIDS));
    assert!(!unchanged.contains_key(&22));
    for (v, line) in &reloaded.0 {
        assert_eq!(unchanged[v].transitions, line.transitions, "vhid {v}");
    }
}

/// With a configuration file, SIGHUP during a stop is not a second stop:
/// the down script the stop waits for finishes, and the exit is clean.
#[test]
fn sighup_while_stopping_does_not_force_the_stop() {
    if !privileged("sighup_while_stopping_does_not_force_the_stop") {
        return;
    }
    let lab = Lab::new(1);
    let dir = Dir::new("config-hup-stop");
    let log = dir.path("down.log");
    dir.script(
        "down.sh",
        &format!("sleep 1\necho done >> {}", log.display()),
    );
    let text = format!(
        "[daemon]\nfacility = \"none\"\nshutdown = true\n\n[defaults]\ninterface = \"eth0\"\n\
         srcip = \"{}\"\npassword = \"secret\"\ndownscript = \"{}\"\nneutral = true\n\
         advbase = 0\nadvskew = 50\n\n{}",
        lab.addr(0),
        dir.path("down.sh").display(),
        vhost(1, 50)
    );
    let config = dir.path("host0.toml");
    std::fs::write(&config, text).unwrap();
    let mut command = lab.command(0, ours().to_str().unwrap());
    command.arg("--config").arg(&config);
    let mut proc = Proc::spawn("host0", command);
    proc.wait_for("master", 5 * SECOND, |l| {
        l.contains("Switching to state: MASTER")
    });
    proc.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    proc.signal(Signal::SIGHUP);
    let status = proc.wait_exit(10 * SECOND).expect("no exit");
    assert_eq!(status.code(), Some(0), "{}", proc.lines().join("\n"));
    assert!(proc
        .lines()
        .iter()
        .any(|l| l.contains("SIGHUP while stopping: ignored")));
    // Once per address, all three run to their end.
    assert_eq!(
        std::fs::read_to_string(&log).unwrap_or_default(),
        "done\ndone\ndone\n"
    );
}
