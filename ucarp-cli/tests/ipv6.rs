//! IPv6 CARP with the built `ucarp` binary in network namespaces: an
//! IPv6-only pair (election, kill -9 takeover, leave advert), a dual-stack
//! pair kept quiet by either family, what goes on the wire (adverts and
//! neighbour advertisements), and packets that must be refused. Runs as
//! root (for real in CI).

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use carp_io::iface::InterfaceInfo;
use carp_io::socket::FrameSender;
use carp_proto::datagram::{AdvertDatagram6, AdvertFrame6};
use carp_proto::ethernet::MacAddr;
use carp_proto::ndp::NeighborAdvert;
use carp_proto::{AdvertRepr, Password, VirtualHostAuth};
use nix::sys::signal::Signal;
use test_support::lab::{privileged, Capture, Lab, Proc};
use test_support::peers;
use test_support::scripts::Dir;

const VIP6: &str = "fd99::100";
const VIP4: &str = "10.99.0.100";
const SECOND: Duration = Duration::from_secs(1);

/// Up and down scripts that add and remove the address as an operator's
/// would (`nodad`: usable at once), and log `<up|down> <args>`.
fn scripts(test: &str) -> Dir {
    let dir = Dir::new(test);
    let log = dir.path("log");
    let family = r#"case "$2" in *:*) f=-6; p=64 ;; *) f=-4; p=16 ;; esac"#;
    dir.script(
        "up",
        &format!(
            "{family}\nif [ $f = -6 ]; then ip $f addr add \"$2/$p\" dev \"$1\" nodad; \
             else ip $f addr add \"$2/$p\" dev \"$1\"; fi\necho \"$UCARP_HOST up $*\" >> {}\n",
            log.display()
        ),
    );
    dir.script(
        "down",
        &format!(
            "{family}\nip $f addr del \"$2/$p\" dev \"$1\" 2>/dev/null\n\
             echo \"$UCARP_HOST down $*\" >> {}\n",
            log.display()
        ),
    );
    dir
}

fn ucarp(lab: &Lab, host: usize, dir: &Dir, args: &[&str]) -> Proc {
    let mut command = lab.command(host, "env");
    command
        .arg(format!("UCARP_HOST=h{host}"))
        .arg(env!("CARGO_BIN_EXE_ucarp"))
        .args(["-i", "eth0", "-v", "7", "-p", "secret", "-f", "none"])
        .arg("-u")
        .arg(dir.path("up"))
        .arg("-d")
        .arg(dir.path("down"))
        .args(args);
    Proc::spawn(&format!("h{host}"), command)
}

fn is_master(line: &str) -> bool {
    line.contains("Switching to state: MASTER")
}

/// Each host gets fd99::<host+1>/64 so that it can reach the virtual
/// address on the link.
fn add_ula(lab: &Lab, host: usize) {
    let status = lab
        .command(host, "ip")
        .args(["-6", "addr", "add", &format!("fd99::{}/64", host + 1)])
        .args(["dev", "eth0", "nodad"])
        .status()
        .unwrap();
    assert!(status.success());
}

fn interface(lab: &Lab, host: usize) -> InterfaceInfo {
    lab.in_ns(host, || InterfaceInfo::lookup("eth0").unwrap())
}

fn accepted(status: &str) -> u64 {
    test_support::status::status_count(status, "accepted")
}

/// An IPv6-only pair with link-local sources: election, the address usable
/// at once after the up script (a third host pings it), kill -9 takeover,
/// and a clean stop's leave advert handing over at once.
#[test]
fn ipv6_only_pair_elects_fails_over_and_hands_over() {
    if !privileged("ipv6_only_pair_elects_fails_over_and_hands_over") {
        return;
    }
    let lab = Lab::new(3);
    for host in 0..3 {
        add_ula(&lab, host);
        lab.wait_link_local(host);
    }
    let dir = scripts("ipv6-pair");
    let mut a = ucarp(&lab, 0, &dir, &["-a", VIP6, "-k", "0"]);
    let mut b = ucarp(&lab, 1, &dir, &["-a", VIP6, "-k", "50"]);
    let link_local = interface(&lab, 0).link_local().unwrap();
    a.wait_for("a starts from its link-local address", 2 * SECOND, |l| {
        l.contains(&format!("from {link_local}")) && l.contains("group ff02::12")
    });
    a.wait_for("a master", 6 * SECOND, is_master);
    dir.wait_for("log", &format!("h0 up eth0 {VIP6}"), 3 * SECOND);

    // Usable at once: not tentative, and a neighbour reaches it.
    let shown = lab
        .command(0, "ip")
        .args(["-6", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    let line = shown.lines().find(|l| l.contains(VIP6)).unwrap();
    assert!(!line.contains("tentative"), "{line}");
    // A TCP connection to a closed port is refused only by a host that
    // was found (neighbour discovery answered) and owns the address.
    let reached = lab.in_ns(2, || {
        let target = std::net::SocketAddr::new(VIP6.parse().unwrap(), 9);
        std::net::TcpStream::connect_timeout(&target, 2 * SECOND).map(|_| ())
    });
    assert_eq!(
        reached.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "{VIP6} unreachable from a neighbour right after the up script"
    );

    std::thread::sleep(2 * SECOND);
    let line = peers::status(&b);
    assert!(line.contains("BACKUP"), "{line}");
    assert!(accepted(&line) >= 2, "b hears a over IPv6: {line}");
    assert!(!b.lines().iter().any(|l| is_master(l)), "b took over");

    // kill -9: b takes over after its master-down time.
    let mark = b.mark();
    a.kill9();
    let takeover = b.wait_for_after(mark, "b master", 6 * SECOND, is_master);
    assert!(takeover.contains("master down"), "{takeover}");
    dir.wait_for("log", &format!("h1 up eth0 {VIP6}"), 3 * SECOND);

    // a comes back as backup; b stops cleanly: its leave advert hands over
    // at once.
    let mut a = ucarp(&lab, 0, &dir, &["-a", VIP6, "-k", "0"]);
    a.wait_for("a backup", 3 * SECOND, |l| l.contains("state: BACKUP"));
    // A leave advert counts only from the master a follows.
    peers::wait_heard(&lab, 0, 1, 3 * SECOND);
    let mark = a.mark();
    b.signal(Signal::SIGTERM);
    let takeover = a.wait_for_after(mark, "a master again", 2 * SECOND, is_master);
    assert!(
        takeover.contains("leave advertisement"),
        "{takeover}\n{}",
        a.lines().join("\n")
    );
    assert_eq!(b.wait_exit(5 * SECOND).and_then(|s| s.code()), Some(0));
    a.kill9();
}

/// A dual-stack pair: one state, adverts on both families, and either
/// family alone keeps the backup quiet; when the master dies the backup
/// takes both addresses.
#[test]
fn dual_stack_pair_keeps_one_state_over_either_family() {
    if !privileged("dual_stack_pair_keeps_one_state_over_either_family") {
        return;
    }
    let lab = Lab::new(2);
    (0..2).for_each(|host| lab.wait_link_local(host));
    let dir = scripts("ipv6-dual");
    let start = |host: usize, skew: &str| {
        let source = lab.addr(host).to_string();
        ucarp(
            &lab,
            host,
            &dir,
            &["-s", &source, "-a", VIP4, "-a", VIP6, "-k", skew],
        )
    };
    let mut a = start(0, "0");
    let b = start(1, "50");
    a.wait_for("a master", 6 * SECOND, is_master);
    for vip in [VIP4, VIP6] {
        dir.wait_for("log", &format!("h0 up eth0 {vip}"), 3 * SECOND);
    }
    std::thread::sleep(2 * SECOND);
    let before = accepted(&peers::status(&b));
    // Each advert comes on both families: about two a second.
    assert!(before >= 6, "b accepted {before}");

    // IPv4 CARP no longer reaches b: IPv6 adverts keep it a backup.
    lab.drop_carp_family(1, false);
    std::thread::sleep(5 * SECOND);
    let line = peers::status(&b);
    assert!(line.contains("BACKUP"), "{line}");
    assert!(
        accepted(&line) >= before + 4,
        "IPv6 adverts accepted: {line}"
    );
    assert!(!b.lines().iter().any(|l| is_master(l)), "b took over");

    let mark = b.mark();
    a.kill9();
    b.wait_for_after(mark, "b master", 6 * SECOND, is_master);
    for vip in [VIP4, VIP6] {
        dir.wait_for("log", &format!("h1 up eth0 {vip}"), 3 * SECOND);
    }
}

/// On the wire: IPv6 adverts to ff02::12 (33:33:00:00:00:12) with hop limit
/// 255 from the link-local address, and on takeover an unsolicited
/// neighbour advertisement per IPv6 address (override set, target
/// link-layer option with our MAC, to ff02::1, hop limit 255), sent again
/// a moment later.
#[test]
fn adverts_and_neighbour_advertisements_on_the_wire() {
    if !privileged("adverts_and_neighbour_advertisements_on_the_wire") {
        return;
    }
    let lab = Lab::new(1);
    lab.wait_link_local(0);
    // A host that forwards IPv6 says so in its neighbour advertisements.
    let forwarding = lab
        .command(0, "sh")
        .args(["-c", "echo 1 > /proc/sys/net/ipv6/conf/eth0/forwarding"])
        .status()
        .unwrap();
    assert!(forwarding.success());
    let dir = scripts("ipv6-wire");
    let capture = Capture::start_filtered(&lab, "ip6 and (ip6 proto 112 or icmp6)");
    let mut a = ucarp(&lab, 0, &dir, &["-a", VIP6, "-a", "fd99::101"]);
    a.wait_for("a master", 6 * SECOND, is_master);
    std::thread::sleep(3 * SECOND);
    let frames = capture.stop();
    a.kill9();
    let info = interface(&lab, 0);
    let link_local = info.link_local().unwrap();

    let adverts: Vec<AdvertFrame6> = frames
        .iter()
        .filter_map(|f| AdvertFrame6::parse(f).ok())
        .collect();
    assert!(adverts.len() >= 3, "{} adverts", adverts.len());
    for advert in &adverts {
        assert_eq!(advert.eth_src, info.mac);
        assert_eq!(advert.eth_dst, MacAddr([0x33, 0x33, 0, 0, 0, 0x12]));
        assert_eq!(advert.datagram.src, link_local);
        assert_eq!(advert.datagram.dst, "ff02::12".parse::<Ipv6Addr>().unwrap());
        assert_eq!(advert.datagram.advert.vhid, 7);
    }
    // (Hop limit 255 is part of what AdvertFrame6::parse accepts.)

    let announced: Vec<NeighborAdvert> = frames
        .iter()
        .filter_map(|f| NeighborAdvert::from_frame(f))
        .filter(|na| na.mac == info.mac)
        .collect();
    for vip in [VIP6, "fd99::101"] {
        let target: Ipv6Addr = vip.parse().unwrap();
        let sent: Vec<_> = announced.iter().filter(|na| na.target == target).collect();
        assert!(
            sent.len() >= 2,
            "{vip}: {} neighbour advertisements",
            sent.len()
        );
        assert!(sent.iter().all(|na| na.src == link_local && na.router));
    }
}

/// A lab of two with an IPv6-only backup on host 1 (advbase 10: it stays
/// a backup for 30 s unless an advert moves it), started as `name`.
fn backup_on_host_1(name: &str) -> (Lab, Dir, Proc) {
    let lab = Lab::new(2);
    (0..2).for_each(|host| lab.wait_link_local(host));
    let dir = scripts(name);
    let b = ucarp(&lab, 1, &dir, &["-a", VIP6, "-b", "10"]);
    b.wait_for("b backup", 3 * SECOND, |l| l.contains("state: BACKUP"));
    (lab, dir, b)
}

/// An advert for vhid 7 to the IPv6 group from `peer`'s link-local address.
fn advert_from(
    peer: &InterfaceInfo,
    (advbase, advskew): (u8, u8),
    counter: u64,
    digest: [u8; 20],
) -> AdvertFrame6 {
    AdvertFrame6 {
        eth_src: peer.mac,
        eth_dst: MacAddr::ipv6_multicast(carp_proto::DEFAULT_GROUP6),
        datagram: AdvertDatagram6 {
            src: peer.link_local().unwrap(),
            dst: carp_proto::DEFAULT_GROUP6,
            advert: AdvertRepr {
                vhid: 7,
                advbase,
                advskew,
                demote: 0,
                counter,
                digest,
            },
        },
    }
}

/// A correctly signed leave advertisement is refused when it arrives with
/// hop limit 64 (routed) or behind a hop-by-hop header, counted under its
/// cause; the same advert with hop limit 255 and no extension header, from
/// the master the backup follows, makes it take over at once.
#[test]
fn ipv6_adverts_with_hop_limit_64_or_extension_headers_are_refused() {
    if !privileged("ipv6_adverts_with_hop_limit_64_or_extension_headers_are_refused") {
        return;
    }
    let (lab, _dir, b) = backup_on_host_1("ipv6-refused");
    let peer = interface(&lab, 0);
    let auth = VirtualHostAuth::new(
        &Password::new(b"secret").unwrap(),
        7,
        &[IpAddr::V6(VIP6.parse().unwrap())],
    )
    .unwrap();
    let advert = |counter: u64, advbase: u8, advskew: u8| {
        advert_from(&peer, (advbase, advskew), counter, auth.sign(counter))
    };
    let leave = |counter: u64| advert(counter, 255, 255);
    let routed = |counter| {
        let mut frame = leave(counter).to_bytes().to_vec();
        frame[14 + 7] = 64;
        frame
    };
    let hop_by_hop = |counter| {
        let plain = leave(counter).to_bytes();
        let mut frame = plain[..54].to_vec();
        frame[14 + 4..14 + 6].copy_from_slice(&44u16.to_be_bytes());
        frame[14 + 6] = 0; // next header: hop-by-hop options
        frame.extend_from_slice(&[112, 0, 1, 4, 0, 0, 0, 0]); // then CARP; PadN
        frame.extend_from_slice(&plain[54..]);
        frame
    };
    let send = |frames: Vec<Vec<u8>>| {
        lab.in_ns(0, || {
            let sender = FrameSender::open("eth0", peer.index).unwrap();
            for frame in frames {
                sender.send(&frame).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    send((1..=3).map(routed).chain((4..=6).map(hop_by_hop)).collect());
    std::thread::sleep(Duration::from_millis(300));
    let line = peers::status(&b);
    assert!(line.contains("BACKUP"), "{line}");
    assert_eq!(
        test_support::status::status_count(&line, "bad_hop_limit"),
        3,
        "{line}"
    );
    assert_eq!(
        test_support::status::status_count(&line, "extension_header"),
        3,
        "{line}"
    );
    assert!(!b.lines().iter().any(|l| is_master(l)), "b took over");

    // Well formed, from a master b follows (an advert first: a leave
    // advert counts only from the master followed), it hands over at once.
    let mark = b.mark();
    send(vec![
        advert(7, 10, 0).to_bytes().to_vec(),
        leave(8).to_bytes().to_vec(),
    ]);
    let takeover = b.wait_for_after(mark, "b master", 2 * SECOND, is_master);
    assert!(takeover.contains("leave advertisement"), "{takeover}");
}

/// IPv6 adverts come through a raw socket, whose buffer a flood can fill:
/// what the kernel dropped there is counted (`socket_overflow`) once the
/// next packet it stores tells (SO_RXQ_OVFL), and logged.
#[test]
fn a_full_ipv6_socket_buffer_is_counted() {
    if !privileged("a_full_ipv6_socket_buffer_is_counted") {
        return;
    }
    let (lab, _dir, b) = backup_on_host_1("ipv6-overflow");
    let peer = interface(&lab, 0);
    let forged = advert_from(&peer, (1, 0), 1, [0; 20]).to_bytes();
    lab.in_ns(0, || {
        let sender = FrameSender::open("eth0", peer.index).unwrap();
        // The buffer holds 2 MiB, a couple of thousand such packets; b
        // reads none while stopped.
        b.signal(Signal::SIGSTOP);
        for _ in 0..10_000 {
            sender.send(&forged).unwrap();
        }
        b.signal(Signal::SIGCONT);
        std::thread::sleep(SECOND / 2);
        for _ in 0..10 {
            sender.send(&forged).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    std::thread::sleep(SECOND / 2);
    let line = peers::status(&b);
    let dropped = test_support::status::status_count(&line, "socket_overflow");
    assert!(dropped >= 1000, "{line}");
    assert!(
        b.lines()
            .iter()
            .any(|l| l.contains("the raw IPv6 socket's buffer was full")),
        "no log line:\n{}",
        b.lines().join("\n")
    );
}

/// The README's code block that starts with `first_line` (without it).
fn readme_block(first_line: &str) -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find(first_line)
        .unwrap_or_else(|| panic!("README has no {first_line:?}"));
    let rest = &readme[start..];
    rest[..rest.find("```").expect("end of the code block")].to_string()
}

/// The README's mail-relay example over IPv6, as written there: its
/// scripts, its command line. The master dies (kill -9, cable out); the
/// other relay takes the address and a client reaches it there at once,
/// which needs the neighbour advertisement to replace the client's cached
/// link-layer address.
#[test]
fn readme_mail_relay_example_over_ipv6() {
    if !privileged("readme_mail_relay_example_over_ipv6") {
        return;
    }
    let lab = Lab::new(3);
    (0..3).for_each(|host| lab.wait_link_local(host));
    let dir = Dir::new("ipv6-readme");
    let up = readme_block("#!/bin/sh\n# /etc/vip-up.sh");
    let down = readme_block("#!/bin/sh\n# /etc/vip-down.sh");
    std::fs::write(dir.path("up"), up).unwrap();
    std::fs::write(dir.path("down"), down).unwrap();
    std::fs::write(dir.path("pass"), "love\n").unwrap();
    for name in ["up", "down"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(dir.path(name), mode).unwrap();
    }
    let command = readme_block("ucarp --interface=eth0 --vhid=1 --passfile=/etc/ucarp.pass \\\n      --addr=2001:db8:1::252");
    let args: Vec<String> = command
        .replace("\\\n", " ")
        .split_whitespace()
        .skip(1)
        .map(|arg| {
            arg.replace("/etc/ucarp.pass", &dir.path("pass").display().to_string())
                .replace("/etc/vip-up.sh", &dir.path("up").display().to_string())
                .replace("/etc/vip-down.sh", &dir.path("down").display().to_string())
        })
        .collect();
    let relay = |host: usize, extra: &[&str]| {
        let mut command = lab.command(host, env!("CARGO_BIN_EXE_ucarp"));
        command.args(&args).args(["-f", "none"]).args(extra);
        Proc::spawn(&format!("relay{}", host + 1), command)
    };
    let client_reaches_vip = || {
        lab.in_ns(2, || {
            let target = std::net::SocketAddr::new("2001:db8:1::252".parse().unwrap(), 25);
            std::net::TcpStream::connect_timeout(&target, 2 * SECOND)
                .map(|_| ())
                .map_err(|e| e.kind())
        })
    };
    let has_vip = |host: usize| {
        let out = lab
            .command(host, "ip")
            .args(["-6", "addr", "show", "dev", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("2001:db8:1::252/64")
    };
    let status = lab
        .command(2, "ip")
        .args([
            "-6",
            "addr",
            "add",
            "2001:db8:1::3/64",
            "dev",
            "eth0",
            "nodad",
        ])
        .status()
        .unwrap();
    assert!(status.success());

    let mut relay1 = relay(0, &["--preempt"]);
    relay1.wait_for("relay 1 master", 6 * SECOND, is_master);
    let relay2 = relay(1, &["--advskew=100"]);
    relay2.wait_for("relay 2 backup", 3 * SECOND, |l| {
        l.contains("state: BACKUP")
    });
    let period = Duration::from_millis(20);
    test_support::lab::eventually(3 * SECOND, period, || {
        has_vip(0)
            .then_some(())
            .ok_or("relay 1 never held the address".to_string())
    });
    assert_eq!(
        client_reaches_vip(),
        Err(std::io::ErrorKind::ConnectionRefused)
    );

    // Relay 1 dies: process and cable.
    let mark = relay2.mark();
    relay1.kill9();
    lab.set_cable(0, false);
    relay2.wait_for_after(mark, "relay 2 master", 6 * SECOND, is_master);
    test_support::lab::eventually(3 * SECOND, period, || {
        has_vip(1)
            .then_some(())
            .ok_or("relay 2 never held the address".to_string())
    });
    assert_eq!(
        client_reaches_vip(),
        Err(std::io::ErrorKind::ConnectionRefused),
        "the client still sends to relay 1's MAC: no neighbour advertisement?"
    );
}

/// IPv6 switched off on the interface: the kernel would drop every IPv6
/// advert arriving there, so an IPv6 virtual host would hear no peer and
/// become a second master. It is refused at start instead.
#[test]
fn ipv6_disabled_on_the_interface_is_refused() {
    if !privileged("ipv6_disabled_on_the_interface_is_refused") {
        return;
    }
    let lab = Lab::new(1);
    let disabled = lab
        .command(0, "sh")
        .args(["-c", "echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6"])
        .status()
        .unwrap();
    assert!(disabled.success());
    let dir = scripts("ipv6-disabled");
    let mut node = ucarp(&lab, 0, &dir, &["-s", "fd99::1", "-a", VIP6]);
    let status = node.wait_exit(5 * SECOND);
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{:?}", node.lines());
    assert!(
        node.lines()
            .iter()
            .any(|l| l.contains("IPv6 is disabled on eth0")),
        "{:?}",
        node.lines()
    );
}
