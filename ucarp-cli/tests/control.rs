//! Seeing and steering a running daemon, end to end with the built
//! `ucarp` binary in network namespaces: the control socket (`ucarp
//! status`, `step-down`, `demote`, `undemote`, `reload`), Prometheus
//! metrics scraped over HTTP, the event FIFO, and systemd's notify
//! protocol with a fake `NOTIFY_SOCKET`. Bad requests on both sockets are
//! answered with an error and change nothing. Runs as root (for real in
//! CI).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::control::{self, vhost_of, wait_state};
use test_support::lab::{privileged, until, Lab, Proc};
use test_support::peers::{self, Impl};
use test_support::scripts::Dir;

const SECOND: Duration = Duration::from_secs(1);
const METRICS: &str = "127.0.0.1:9237";

/// The `ucarp` client, run as an operator would.
fn client(lab: &Lab, host: usize, args: &[&str]) -> (i32, String, String) {
    let output = lab
        .command(host, peers::ours().to_str().unwrap())
        .args(args)
        .output()
        .expect("run ucarp client");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// One HTTP exchange with the metrics server in `host`'s namespace.
fn http(lab: &Lab, host: usize, request: &[u8]) -> String {
    lab.in_ns(host, || {
        let mut stream = TcpStream::connect(METRICS).expect("connect to metrics");
        stream.set_read_timeout(Some(5 * SECOND)).unwrap();
        let _ = stream.write_all(request);
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply
    })
}

/// The value of the sample whose line starts with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Two of ours; host 0 preferred (no preempt). Status from the socket
/// names the master on both sides; demote / undemote / step-down move the
/// address as an operator expects; metrics agree with the status.
#[test]
fn control_commands_and_metrics_end_to_end() {
    if !privileged("control_commands_and_metrics_end_to_end") {
        return;
    }
    let lab = Lab::new(2);
    let a = peers::start(&lab, 0, Impl::Ours, &["-k", "0", "--metrics", METRICS]);
    wait_state(&lab, 0, "MASTER", 6 * SECOND);
    let _b = peers::start(&lab, 1, Impl::Ours, &["-k", "50"]);
    wait_state(&lab, 1, "BACKUP", 3 * SECOND);

    // The backup knows who the master is, and what it advertises.
    let b = until("b hears a", 3 * SECOND, || {
        let v = vhost_of(&lab, 1).unwrap();
        (v["master"]["address"] == lab.addr(0).to_string()).then_some(v)
    });
    assert_eq!(b["master"]["advskew"], 0, "{b}");
    assert_eq!(b["master"]["demote"], 0, "{b}");
    assert_eq!(b["master"]["us"], false, "{b}");
    assert_eq!(b["addresses"][0], peers::VIP, "{b}");
    assert!(
        b["counters"]["adverts_received"].as_u64().unwrap() > 0,
        "{b}"
    );

    // The text form says the same.
    let (code, text, _) = client(&lab, 0, &["status"]);
    assert_eq!(code, 0);
    assert!(text.contains("vhid 7 on eth0: MASTER"), "{text}");
    assert!(text.contains("(us)"), "{text}");

    // Metrics agree with the status.
    let reply = http(&lab, 0, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.contains("text/plain; version=0.0.4"), "{reply}");
    let master = r#"ucarp_vhost_state{interface="eth0",vhid="7",state="MASTER"}"#;
    assert_eq!(sample(&reply, master), Some(1.0), "{reply}");
    let a_status = vhost_of(&lab, 0).unwrap();
    let transitions = a_status["counters"]["transitions"].as_f64().unwrap();
    assert_eq!(
        sample(
            &reply,
            r#"ucarp_vhost_transitions_total{interface="eth0",vhid="7"}"#
        ),
        Some(transitions),
        "{reply}"
    );
    assert!(reply.contains("ucarp_build_info{version="), "{reply}");
    // Losses have a series to alert on before the first one.
    for cause in ["receive_overflow", "socket_overflow"] {
        let series =
            format!(r#"ucarp_interface_rejected_total{{interface="eth0",cause="{cause}"}}"#);
        assert_eq!(sample(&reply, &series), Some(0.0), "{reply}");
    }

    // Demoted by the operator: the backup takes over at once.
    let (code, _, err) = client(&lab, 0, &["demote", "7", "50"]);
    assert_eq!(code, 0, "{err}");
    wait_state(&lab, 1, "MASTER", 2 * SECOND);
    let a_status = wait_state(&lab, 0, "BACKUP", 2 * SECOND);
    assert_eq!(a_status["demote"], 50, "{a_status}");
    assert_eq!(
        a_status["demote_causes"][0]["cause"], "operator",
        "{a_status}"
    );
    let reply = http(&lab, 0, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(
        sample(&reply, r#"ucarp_vhost_demote{interface="eth0",vhid="7"}"#),
        Some(50.0),
        "{reply}"
    );

    // Undemoted, without preempt: the address stays where it is, and the
    // new master sees A's demotion gone from its adverts.
    let (code, _, err) = client(&lab, 0, &["undemote", "eth0:7"]);
    assert_eq!(code, 0, "{err}");
    let a_status = vhost_of(&lab, 0).unwrap();
    assert_eq!(a_status["demote"], 0, "{a_status}");
    assert!(a_status["demote_causes"].as_array().unwrap().is_empty());
    std::thread::sleep(2 * SECOND);
    assert_eq!(vhost_of(&lab, 1).unwrap()["state"], "MASTER");
    assert_eq!(
        vhost_of(&lab, 0).unwrap()["master"]["address"],
        lab.addr(1).to_string()
    );

    // Step down (UCARP's SIGUSR2) on the new master: it goes quiet, and A
    // takes over at its master-down time.
    let (code, _, err) = client(&lab, 1, &["step-down", "7"]);
    assert_eq!(code, 0, "{err}");
    let b_status = wait_state(&lab, 1, "BACKUP", SECOND);
    assert_eq!(b_status["last_reason"], "asked to step down", "{b_status}");
    let a_status = wait_state(&lab, 0, "MASTER", 5 * SECOND);
    assert!(
        a_status["last_reason"]
            .as_str()
            .unwrap()
            .contains("master down"),
        "{a_status}"
    );
    // `demote` without a number demotes by 128.
    let (code, _, err) = client(&lab, 0, &["demote", "7"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(vhost_of(&lab, 0).unwrap()["demote"], 128);
    wait_state(&lab, 1, "MASTER", 2 * SECOND);
    drop(a);
}

/// Every malformed request, on the control socket and on the metrics
/// port, gets an error and nothing else: the state, the transitions and
/// the demotion stay as they were.
#[test]
fn bad_requests_are_answered_with_an_error_and_change_nothing() {
    if !privileged("bad_requests_are_answered_with_an_error_and_change_nothing") {
        return;
    }
    let lab = Lab::new(1);
    let _a = peers::start(&lab, 0, Impl::Ours, &["--metrics", METRICS]);
    let before = wait_state(&lab, 0, "MASTER", 6 * SECOND);
    let socket = lab.control_socket(0, 7);

    let refused = [
        &b"frobnicate\n"[..],
        b"\n",
        b"demote\n",
        b"demote 7 300\n",
        b"demote 99 5\n",
        b"demote eth9:7 5\n",
        b"step-down 7 8\n",
        b"undemote-group nosuchgroup\n",
        b"reload\n",
        b"\xff\xfe\n",
        &[b'x'; 5000][..],
    ];
    for request in refused {
        let reply = control::request_raw(&socket, request).expect("an answer");
        let json: Value = serde_json::from_str(reply.trim()).expect("one JSON line");
        assert_eq!(json["ok"], false, "{request:?} -> {reply}");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{reply}"
        );
    }
    // A client that trickles a byte every 300 ms is cut off after a second
    // in all (not a second per byte), long before it would finish.
    let trickle_start = Instant::now();
    let mut trickler = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    trickler.set_read_timeout(Some(10 * SECOND)).unwrap();
    let reader = trickler.try_clone().unwrap();
    let replied = std::thread::spawn(move || {
        let mut reply = String::new();
        let _ = BufReader::new(reader).read_line(&mut reply);
        (reply, trickle_start.elapsed())
    });
    for _ in 0..10 {
        if trickler.write_all(b"s").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let (reply, after) = replied.join().unwrap();
    assert!(reply.contains("not received in time"), "{reply}");
    assert!(after < 3 * SECOND, "cut off after {after:?}");
    // A client that connects and says nothing is dropped after a second;
    // the next client is served.
    let silent = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    assert!(control::status(&socket).is_ok());
    drop(silent);

    let http_refused = [
        (&b"POST /metrics HTTP/1.1\r\n\r\n"[..], "405"),
        (b"GET /secret HTTP/1.1\r\n\r\n", "404"),
        (b"\xff\xfe\r\n\r\n", "400"),
    ];
    for (request, status) in http_refused {
        let reply = http(&lab, 0, request);
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {status}")),
            "{request:?} -> {reply}"
        );
    }
    let huge = vec![b'a'; 20_000];
    let reply = http(&lab, 0, &huge);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");

    let after = vhost_of(&lab, 0).unwrap();
    assert_eq!(after["state"], "MASTER");
    assert_eq!(
        after["counters"]["transitions"],
        before["counters"]["transitions"]
    );
    assert_eq!(after["demote"], 0);
    // And the client says what was wrong.
    let (code, _, err) = client(&lab, 0, &["demote", "8"]);
    assert_eq!(code, 1);
    assert!(err.contains("no virtual host 8"), "{err}");
}

/// A dead daemon's socket refuses: the client says it is not running,
/// whether the daemon crashed (file left behind) or stopped cleanly (file
/// removed). A new daemon replaces the crashed one's file.
#[test]
fn status_of_a_dead_daemon_is_refused_not_stale() {
    if !privileged("status_of_a_dead_daemon_is_refused_not_stale") {
        return;
    }
    let lab = Lab::new(1);
    let mut a = peers::start(&lab, 0, Impl::Ours, &[]);
    wait_state(&lab, 0, "MASTER", 6 * SECOND);
    peers::kill9(&mut a);
    let (code, _, err) = client(&lab, 0, &["status"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not running"), "{err}");

    // A second daemon for the same socket while one runs is refused.
    let _b = peers::start(&lab, 0, Impl::Ours, &[]);
    wait_state(&lab, 0, "BACKUP", 3 * SECOND);
    let mut c = peers::start(&lab, 0, Impl::Ours, &[]);
    let code = c.wait_exit(5 * SECOND).expect("refused at start");
    assert_eq!(code.code(), Some(2));
    assert!(
        c.lines()
            .iter()
            .any(|l| l.contains("another ucarp is running there")),
        "{:?}",
        c.lines()
    );
    _b.signal(nix::sys::signal::Signal::SIGTERM);
    until("socket removed at exit", 5 * SECOND, || {
        (!lab.control_socket(0, 7).exists()).then_some(())
    });
    let (code, _, err) = client(&lab, 0, &["status"]);
    assert_eq!(code, 3);
    assert!(err.contains("not running"), "{err}");
}

/// With a configuration file: `ucarp reload` applies the file and reports
/// what it did; a broken file is refused with the reason and nothing
/// changes; a demotion group is demoted and undemoted as one.
#[test]
fn reload_and_group_demotion_through_the_control_socket() {
    if !privileged("reload_and_group_demotion_through_the_control_socket") {
        return;
    }
    let lab = Lab::new(1);
    let dir = Dir::new("control-reload");
    let file = dir.path("ucarp.toml");
    let write = |vhids: &[u8]| {
        let mut text = format!(
            "[defaults]\ninterface = \"eth0\"\nsrcip = \"{}\"\npassword = \"pw\"\ndemote-group = \"db\"\n",
            lab.addr(0)
        );
        for vhid in vhids {
            text += &format!("[[vhost]]\nvhid = {vhid}\naddresses = [\"10.99.1.{vhid}\"]\n");
        }
        std::fs::write(&file, text).unwrap();
    };
    write(&[1, 2]);
    let mut command = lab.command(0, peers::ours().to_str().unwrap());
    command.args(["--config", file.to_str().unwrap()]);
    let _d = Proc::spawn("daemon", command);
    let socket = lab.runtime_dir(0).join("ucarp.sock");
    until("two masters", 8 * SECOND, || {
        let s = control::status(&socket).ok()?;
        let vhosts = s["virtual_hosts"].as_array()?.clone();
        (vhosts.len() == 2 && vhosts.iter().all(|v| v["state"] == "MASTER")).then_some(())
    });

    write(&[1, 2, 3]);
    let (code, out, err) = client(&lab, 0, &["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 added"), "{out}");
    std::fs::write(&file, "[[vhost]]\nvhid = \"seven\"\n").unwrap();
    let (code, _, err) = client(&lab, 0, &["reload"]);
    assert_eq!(code, 1);
    assert!(err.contains("refused, nothing changed"), "{err}");
    assert!(
        err.contains("ucarp.toml:2:8"),
        "the error names the place: {err}"
    );
    let s = control::status(&socket).unwrap();
    assert_eq!(s["virtual_hosts"].as_array().unwrap().len(), 3, "{s}");

    let (code, _, err) = client(&lab, 0, &["demote", "--group", "db", "30"]);
    assert_eq!(code, 0, "{err}");
    let s = control::status(&socket).unwrap();
    for v in s["virtual_hosts"].as_array().unwrap() {
        assert_eq!(v["demote"], 30, "{v}");
        assert_eq!(v["demote_group"], "db", "{v}");
    }
    let (code, _, err) = client(&lab, 0, &["undemote", "--group", "db"]);
    assert_eq!(code, 0, "{err}");
    let s = control::status(&socket).unwrap();
    assert!(s["virtual_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["demote"] == 0));

    // The operator's demotion of a virtual host survives a reload that
    // restarts it for another setting.
    let (code, _, err) = client(&lab, 0, &["demote", "eth0:2", "40"]);
    assert_eq!(code, 0, "{err}");
    write(&[1, 2, 3]);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("vhid = 2\n", "vhid = 2\nadvskew = 7\n")).unwrap();
    let (code, out, err) = client(&lab, 0, &["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 changed"), "{out}");
    let two = until("vhid 2 restarted", 5 * SECOND, || {
        let s = control::status(&socket).ok()?;
        s["virtual_hosts"]
            .as_array()?
            .iter()
            .find(|v| v["vhid"] == 2 && v["advskew"] == 7)
            .cloned()
    });
    assert_eq!(two["demote"], 40, "{two}");
}

/// The event FIFO: one JSON line per transition, numbered from 1 in order,
/// for a reader that comes after the daemon started.
#[test]
fn transitions_reach_the_event_fifo_in_order() {
    if !privileged("transitions_reach_the_event_fifo_in_order") {
        return;
    }
    let lab = Lab::new(1);
    let dir = Dir::new("control-events");
    let fifo = dir.path("events");
    let _a = peers::start(&lab, 0, Impl::Ours, &["--events", fifo.to_str().unwrap()]);
    wait_state(&lab, 0, "MASTER", 6 * SECOND);
    let (code, _, err) = client(&lab, 0, &["step-down"]);
    assert_eq!(code, 0, "{err}");
    let reader = BufReader::new(std::fs::File::open(&fifo).unwrap());
    let events: Vec<Value> = reader
        .lines()
        .take(3)
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3], "{events:?}");
    let path: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["from"].as_str().unwrap(), e["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        path,
        [
            ("INIT", "BACKUP"),
            ("BACKUP", "MASTER"),
            ("MASTER", "BACKUP")
        ]
    );
    assert_eq!(events[1]["master"], lab.addr(0).to_string());
    assert_eq!(events[2]["reason"], "asked to step down");
    assert_eq!(events[0]["vhid"], 7);
}

/// systemd's notify protocol against a fake NOTIFY_SOCKET: READY=1 once
/// running, STATUS= updated when the state changes, WATCHDOG=1 at half
/// the period while the protocol loop runs.
#[test]
fn systemd_notify_ready_status_and_watchdog() {
    if !privileged("systemd_notify_ready_status_and_watchdog") {
        return;
    }
    let lab = Lab::new(1);
    let dir = Dir::new("control-notify");
    let path = dir.path("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(SECOND)).unwrap();
    let mut command = lab.command(0, peers::ours().to_str().unwrap());
    command
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .args([
            "-i",
            "eth0",
            "-s",
            &lab.addr(0).to_string(),
            "-v",
            "7",
            "-p",
            "x",
        ])
        .args(["-a", peers::VIP, "-f", "none"]);
    let _d = Proc::spawn("notified", command);
    let started = Instant::now();
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < 6 * SECOND {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push((
                started.elapsed(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
        let master = messages
            .iter()
            .any(|(_, m)| m.starts_with("STATUS=") && m.contains("MASTER eth0:7"));
        if master && messages.iter().filter(|(_, m)| m == "WATCHDOG=1").count() >= 5 {
            break;
        }
    }
    let text: Vec<&String> = messages.iter().map(|(_, m)| m).collect();
    let ready = text
        .iter()
        .find(|m| m.contains("READY=1"))
        .unwrap_or_else(|| panic!("no READY=1: {text:?}"));
    assert!(ready.contains("MAINPID="), "{ready}");
    assert!(ready.contains("STATUS=BACKUP eth0:7"), "{ready}");
    assert!(
        text.iter().any(|m| m.as_str() == "STATUS=MASTER eth0:7"),
        "{text:?}"
    );
    let pings: Vec<Duration> = messages
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(at, _)| *at)
        .collect();
    assert!(pings.len() >= 5, "{text:?}");
}

/// Stderr connected to the journal (`$JOURNAL_STREAM` names it): every
/// line carries its syslog priority as `<N>`, so `journalctl -p warning`
/// finds the transitions.
#[test]
fn journal_lines_carry_their_priority() {
    if !privileged("journal_lines_carry_their_priority") {
        return;
    }
    use std::os::fd::AsFd;
    let lab = Lab::new(1);
    let (reader, writer) = std::io::pipe().unwrap();
    let stat = nix::sys::stat::fstat(writer.as_fd()).unwrap();
    let mut command = lab.command(0, peers::ours().to_str().unwrap());
    command
        .env("JOURNAL_STREAM", format!("{}:{}", stat.st_dev, stat.st_ino))
        .args([
            "-i",
            "eth0",
            "-s",
            &lab.addr(0).to_string(),
            "-v",
            "7",
            "-p",
            "x",
        ])
        .args(["-a", peers::VIP, "-f", "none"])
        .stdout(std::process::Stdio::null())
        .stderr(writer);
    let mut child = command.spawn().unwrap();
    drop(command);
    let mut lines = BufReader::new(reader).lines();
    let mut seen = Vec::new();
    let found = loop {
        let Some(Ok(line)) = lines.next() else {
            break None;
        };
        seen.push(line.clone());
        if line.contains("Switching to state: BACKUP") {
            break Some(line);
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let line = found.unwrap_or_else(|| panic!("no transition logged: {seen:?}"));
    assert!(
        line.starts_with("<4>[WARNING] Switching to state: BACKUP"),
        "{line}"
    );
    assert!(seen.iter().any(|l| l.starts_with("<6>[INFO] ")), "{seen:?}");
}
