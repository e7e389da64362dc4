//! Network namespaces for tests: one namespace holding a bridge, one per
//! host, joined by veth pairs. Names are unique per test and process, and
//! everything is deleted on drop, also when the test fails.
//!
//! Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN). Without it a test skips
//! with a printed reason, except under CI (CI=true), where it fails.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

fn run(args: &[&str]) -> Result<(), String> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) {
    if let Err(e) = run(args) {
        panic!("{e}");
    }
}

/// Whether namespace tests can run here; in CI they must.
pub fn privileged(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    let ok = root && run(&["ip", "netns", "list"]).is_ok();
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: namespace tests need root and iproute2, and CI must run them");
        }
        eprintln!("SKIPPED {test}: needs root and iproute2 for network namespaces");
    }
    ok
}

/// A bridge and hosts on it, each on interface `eth0` of its namespace,
/// all in 10.99.0.0/16.
pub struct Lab {
    pub prefix: String,
    pub hosts: usize,
    addrs: Vec<Ipv4Addr>,
}

impl Lab {
    /// `hosts` hosts, host i at 10.99.0.(i+1).
    pub fn new(hosts: usize) -> Lab {
        Lab::with_addrs(
            (0..hosts)
                .map(|i| Ipv4Addr::new(10, 99, 0, i as u8 + 1))
                .collect(),
        )
    }

    /// One host per address (each in 10.99.0.0/16).
    pub fn with_addrs(addrs: Vec<Ipv4Addr>) -> Lab {
        let prefix = format!(
            "crs{}x{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab {
            prefix,
            hosts: addrs.len(),
            addrs,
        };
        let hosts = lab.hosts;
        let bridge = lab.bridge_ns();
        must(&["ip", "netns", "add", &bridge]);
        must(&["ip", "-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        // No multicast snooping: every host sees every advert, like a hub.
        must(&[
            "ip",
            "-n",
            &bridge,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        must(&["ip", "-n", &bridge, "link", "set", "br0", "up"]);
        for host in 0..hosts {
            let ns = lab.ns(host);
            let port = format!("p{host}");
            must(&["ip", "netns", "add", &ns]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            must(&[
                "ip", "-n", &bridge, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            must(&[
                "ip", "-n", &bridge, "link", "set", &port, "master", "br0", "up",
            ]);
            must(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/16", lab.addr(host)),
                "dev",
                "eth0",
            ]);
            must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        }
        lab
    }

    pub fn bridge_ns(&self) -> String {
        format!("{}-br", self.prefix)
    }

    pub fn ns(&self, host: usize) -> String {
        format!("{}-h{host}", self.prefix)
    }

    pub fn addr(&self, host: usize) -> Ipv4Addr {
        self.addrs[host]
    }

    /// Cuts (or restores) host's cable: its eth0 loses carrier.
    pub fn set_cable(&self, host: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        must(&[
            "ip",
            "-n",
            &self.bridge_ns(),
            "link",
            "set",
            &format!("p{host}"),
            state,
        ]);
    }

    /// Deletes host's eth0 and creates it again (a new veth pair, so a new
    /// interface index), with the same address, up and on the bridge: what
    /// a network restart or a re-plugged USB NIC looks like to a daemon.
    pub fn recreate_interface(&self, host: usize) {
        let (bridge, ns, port) = (self.bridge_ns(), self.ns(host), format!("p{host}"));
        must(&["ip", "-n", &bridge, "link", "del", &port]);
        must(&[
            "ip", "-n", &bridge, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
            "netns", &ns,
        ]);
        must(&[
            "ip", "-n", &bridge, "link", "set", &port, "master", "br0", "up",
        ]);
        let addr = format!("{}/16", self.addr(host));
        must(&["ip", "-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
        must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
    }

    /// Runs `tc` in host's namespace (qdiscs on its eth0).
    pub fn tc(&self, host: usize, args: &[&str]) {
        let ns = self.ns(host);
        let mut command = vec!["ip", "netns", "exec", ns.as_str(), "tc"];
        command.extend_from_slice(args);
        must(&command);
    }

    /// Isolates host on the bridge (or ends it): an isolated port forwards
    /// to no other isolated port, so isolating every host partitions them
    /// all while carrier stays up.
    pub fn isolate(&self, host: usize, isolated: bool) {
        let state = if isolated { "on" } else { "off" };
        let port = format!("p{host}");
        must(&[
            "ip",
            "-n",
            &self.bridge_ns(),
            "link",
            "set",
            &port,
            "type",
            "bridge_slave",
            "isolated",
            state,
        ]);
    }

    /// Drops `percent` % of the CARP datagrams delivered to host, at random,
    /// in the bridge (nftables; this kernel has no netem). Dropping before
    /// the host's interface treats every receive path alike: UCARP reads
    /// with libpcap, which an `ip` input hook in the host would not affect.
    pub fn drop_carp_percent(&self, host: usize, percent: u32) {
        let rule =
            format!("oifname \"p{host}\" ip protocol 112 numgen random mod 100 < {percent} drop");
        self.bridge_filter("carploss", &[rule]);
    }

    /// Adds `rules` (nft rule bodies) to a forward-hook chain of `table` in
    /// the bridge namespace; the table is created on first use and later
    /// calls add to it.
    fn bridge_filter(&self, table: &str, rules: &[String]) {
        let mut script = format!(
            "add table bridge {table}\n\
             add chain bridge {table} forward {{ type filter hook forward priority 0; }}\n"
        );
        for rule in rules {
            script += &format!("add rule bridge {table} forward {rule}\n");
        }
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.bridge_ns(), "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nft (apt-get install nftables)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft rules: {script}");
    }

    /// Waits until host's eth0 has its IPv6 link-local address (the kernel
    /// adds it shortly after the link comes up; an IPv6 virtual host
    /// without a source needs it at start). It may still be tentative:
    /// adverts are sent from it regardless.
    pub fn wait_link_local(&self, host: usize) {
        let ns = self.ns(host);
        eventually(Duration::from_secs(5), Duration::from_millis(10), || {
            let output = Command::new("ip")
                .args([
                    "-n", &ns, "-6", "addr", "show", "dev", "eth0", "scope", "link",
                ])
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&output.stdout);
            text.contains("inet6 fe80")
                .then_some(())
                .ok_or(format!("{ns}: no link-local address on eth0: {text}"))
        })
    }

    /// Drops all CARP multicast in the bridge (224.0.0.18 and ff02::12),
    /// as clouds and snooping switches do; unicast still passes.
    pub fn drop_carp_multicast(&self) {
        let rules = ["ip daddr 224.0.0.18 drop", "ip6 daddr ff02::12 drop"];
        self.bridge_filter("nomcast", &rules.map(String::from));
    }

    /// Drops every CARP packet of one family delivered to host, in the
    /// bridge: `ipv6` false drops IPv4 protocol 112, true IPv6 next header
    /// 112. Another call for the same host adds to the first.
    pub fn drop_carp_family(&self, host: usize, ipv6: bool) {
        let matcher = if ipv6 {
            "ip6 nexthdr 112"
        } else {
            "ip protocol 112"
        };
        self.bridge_filter(
            "carpfamily",
            &[format!("oifname \"p{host}\" {matcher} drop")],
        );
    }

    /// PIDs of the processes in host's namespace.
    pub fn pids(&self, host: usize) -> Vec<i32> {
        let output = Command::new("ip")
            .args(["netns", "pids", &self.ns(host)])
            .output()
            .expect("ip netns pids");
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// A command run inside host's namespace. Our daemons there put their
    /// control sockets in the host's own runtime directory
    /// ([`Lab::runtime_dir`]), as systemd's `RuntimeDirectory=` would, so
    /// parallel tests never meet.
    pub fn command(&self, host: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns(host), program]);
        command.env("RUNTIME_DIRECTORY", self.runtime_dir(host));
        command
    }

    /// Host's runtime directory: where its daemons' control sockets are
    /// (`<dir>/eth0.7.sock`, `<dir>/ucarp.sock`). Removed with the lab.
    pub fn runtime_dir(&self, host: usize) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("{}-run{host}", self.prefix))
    }

    /// The control socket of the one-virtual-host daemon for `vhid` on
    /// host's eth0.
    pub fn control_socket(&self, host: usize, vhid: u8) -> std::path::PathBuf {
        self.runtime_dir(host).join(format!("eth0.{vhid}.sock"))
    }

    /// Runs `f` on a thread that has entered host's namespace.
    pub fn in_ns<T: Send>(&self, host: usize, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.ns(host));
        thread::scope(|scope| {
            scope
                .spawn(move || {
                    let ns = std::fs::File::open(&path).expect("namespace file");
                    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                    f()
                })
                .join()
                .expect("namespace thread")
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Processes left in the namespaces (daemons, a failed test's nodes)
        // would outlive them: kill them first.
        for ns in (0..self.hosts)
            .map(|h| self.ns(h))
            .chain([self.bridge_ns()])
        {
            if let Ok(output) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
        }
        for host in 0..self.hosts {
            let _ = run(&["ip", "netns", "del", &self.ns(host)]);
            let _ = std::fs::remove_dir_all(self.runtime_dir(host));
        }
        let _ = run(&["ip", "netns", "del", &self.bridge_ns()]);
    }
}

/// A process whose stdout lines are collected with their arrival time.
pub struct Proc {
    pub name: String,
    /// Our daemon's runtime directory (its control socket is there), when
    /// the test knows it: state is then read from the daemon, not its log.
    pub control_dir: Option<std::path::PathBuf>,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Proc {
    pub fn spawn(name: &str, mut command: Command) -> Proc {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        // stdout lines as they are; stderr (the logs) prefixed with "LOG ".
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        collect(name, "", stdout, &lines);
        collect(name, "LOG ", stderr, &lines);
        Proc {
            name: name.to_string(),
            control_dir: None,
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    pub fn send(&mut self, line: &str) {
        if let Some(stdin) = &mut self.stdin {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Waits until a line satisfies `pred`; returns it.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for_after(0, what, timeout, pred)
    }

    /// The lines matching `pred`, each with its arrival time in seconds
    /// since `since` and the process's name: what a failing test prints
    /// to show who did what when.
    pub fn transcript(&self, since: Instant, pred: impl Fn(&str) -> bool) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| pred(l))
            .map(|(at, l)| {
                let secs = at.saturating_duration_since(since).as_secs_f64();
                format!("{secs:8.3} {}: {l}", self.name)
            })
            .collect()
    }

    /// Number of lines seen so far (to wait for lines after a point).
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Waits until a line after the first `mark` ones satisfies `pred`.
    pub fn wait_for_after(
        &self,
        mark: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.lines().into_iter().skip(mark).find(|l| pred(l)) {
                return line;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: no {what} within {timeout:?}; output:\n{}",
                    self.name,
                    self.lines().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process id (with `ip netns exec`, the program itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        // `ip netns exec` execs the program, so the child is the node itself.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal);
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

fn collect(
    name: &str,
    prefix: &'static str,
    stream: impl std::io::Read + Send + 'static,
    lines: &Arc<Mutex<Vec<(Instant, String)>>>,
) {
    let sink = Arc::clone(lines);
    let label = name.to_string();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if std::env::var_os("LAB_VERBOSE").is_some() {
                eprintln!("[{label}] {prefix}{line}");
            }
            sink.lock()
                .unwrap()
                .push((Instant::now(), format!("{prefix}{line}")));
        }
    });
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tcpdump on the lab's bridge, CARP only, into a pcap file.
pub struct Capture {
    child: Child,
    path: PathBuf,
}

impl Capture {
    /// CARP over IPv4 only.
    pub fn start(lab: &Lab) -> Capture {
        Capture::start_filtered(lab, "ip proto 112")
    }

    /// Whatever the tcpdump `filter` matches.
    pub fn start_filtered(lab: &Lab, filter: &str) -> Capture {
        let path = std::env::temp_dir().join(format!("{}.pcap", lab.prefix));
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.bridge_ns(),
                "tcpdump",
                // Each packet handed over at once: without it the last
                // second's packets (the ring's block timeout) are lost at
                // the stop.
                "--immediate-mode",
                "-i",
                "br0",
                "-U",
                "-w",
            ])
            .arg(&path)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump (apt-get install tcpdump)");
        thread::sleep(Duration::from_millis(300));
        Capture { child, path }
    }

    /// Stops the capture and returns the captured frames.
    pub fn stop(mut self) -> Vec<Vec<u8>> {
        thread::sleep(Duration::from_millis(200));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = self.child.wait();
        let pcap = std::fs::read(&self.path).expect("capture file");
        let _ = std::fs::remove_file(&self.path);
        crate::pcap::frames(&pcap)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path of a binary cargo built next to this test's executable:
/// `target/<profile>/examples/<name>` or `target/<profile>/<name>`.
/// `cargo test --test X` does not rebuild examples or binaries, so
/// `build_args` (e.g. `["-p", "carp-io", "--example", "carp_node"]`) are
/// built first, once per test binary, so a test never runs a stale one.
pub fn built(relative: &str, build_args: &[&str]) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    {
        let mut built = BUILT.lock().unwrap();
        if !built.iter().any(|b| b == relative) {
            let release = std::env::current_exe()
                .unwrap()
                .components()
                .any(|c| c.as_os_str() == "release");
            let status = Command::new(env!("CARGO"))
                .arg("build")
                .args(build_args)
                .args(release.then_some("--release"))
                .status()
                .expect("running cargo build");
            assert!(status.success(), "cargo build {build_args:?} failed");
            built.push(relative.to_string());
        }
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join(relative);
    assert!(
        path.exists(),
        "{} not built (run through cargo test)",
        path.display()
    );
    path
}

/// Polls `probe` every `period` until it gives `Ok`, and returns that; past
/// `timeout` fails the test with the last `Err`'s words.
pub fn eventually<T>(
    timeout: Duration,
    period: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(why) => {
                assert!(Instant::now() < deadline, "{why}");
                thread::sleep(period);
            }
        }
    }
}

/// `probe` until it gives a value, every 20 ms ([`eventually`] for probes
/// that say only whether, not why).
pub fn until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    eventually(timeout, Duration::from_millis(20), || {
        probe().ok_or_else(|| format!("{what}: not within {timeout:?}"))
    })
}
