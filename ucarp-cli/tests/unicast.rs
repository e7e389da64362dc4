//! Unicast peers with the built `ucarp` binary in network namespaces whose
//! bridge drops CARP multicast (224.0.0.18, ff02::12), as clouds and
//! snooping switches do: multicast ends with two masters there, peers
//! elect one and fail over; adverts from anyone but a peer are refused.
//! Runs as root (for real in CI).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use carp_proto::{AdvertRepr, Password, VirtualHostAuth};
use nix::sys::signal::Signal;
use socket2::{Domain, Protocol, Socket, Type};
use test_support::lab::{privileged, Lab, Proc};
use test_support::peers::{self, status_count};

const VIP: &str = "10.99.0.100";
const SECOND: Duration = Duration::from_secs(1);

fn ucarp(lab: &Lab, host: usize, args: &[&str]) -> Proc {
    let mut command = lab.command(host, env!("CARGO_BIN_EXE_ucarp"));
    command
        .args(["-i", "eth0", "-v", "7", "-p", "secret", "-f", "none"])
        .args(args);
    Proc::spawn(&format!("h{host}"), command)
}

/// A node of a unicast cluster: its own address as source, the others as
/// peers.
fn peer_node(lab: &Lab, host: usize, hosts: usize, extra: &[&str]) -> Proc {
    let source = lab.addr(host).to_string();
    let peers: Vec<String> = (0..hosts)
        .filter(|&h| h != host)
        .map(|h| format!("--peer={}", lab.addr(h)))
        .collect();
    let mut args = vec!["-s", &source, "-a", VIP];
    args.extend(peers.iter().map(String::as_str));
    args.extend(extra);
    ucarp(lab, host, &args)
}

fn is_master(line: &str) -> bool {
    line.contains("Switching to state: MASTER")
}

/// Where multicast is dropped, a multicast pair ends with two masters; the
/// same pair with peers elects one, fails over on kill -9, and hands over
/// at once on a clean stop (the leave advert goes by unicast too).
#[test]
fn peers_elect_one_master_where_multicast_is_dropped() {
    if !privileged("peers_elect_one_master_where_multicast_is_dropped") {
        return;
    }
    let lab = Lab::new(2);
    lab.drop_carp_multicast();

    let multicast: Vec<Proc> = (0..2)
        .map(|host| {
            let source = lab.addr(host).to_string();
            let skew = ["0", "50"][host];
            ucarp(&lab, host, &["-s", &source, "-a", VIP, "-k", skew])
        })
        .collect();
    for node in &multicast {
        node.wait_for("multicast: each becomes master", 6 * SECOND, is_master);
    }
    drop(multicast);

    let mut a = peer_node(&lab, 0, 2, &["-k", "0"]);
    let b = peer_node(&lab, 1, 2, &["-k", "50"]);
    a.wait_for("a master", 6 * SECOND, is_master);
    a.wait_for("a names its peer", SECOND, |l| {
        l.contains("unicast peers 10.99.0.2")
    });
    std::thread::sleep(3 * SECOND);
    let line = peers::status(&b);
    assert!(line.contains("BACKUP"), "{line}");
    assert!(status_count(&line, "accepted") >= 2, "{line}");
    assert!(!b.lines().iter().any(|l| is_master(l)), "b took over");

    let mark = b.mark();
    a.kill9();
    let takeover = b.wait_for_after(mark, "b master", 6 * SECOND, is_master);
    assert!(takeover.contains("master down"), "{takeover}");

    let a = peer_node(&lab, 0, 2, &["-k", "0"]);
    a.wait_for("a backup", 3 * SECOND, |l| l.contains("state: BACKUP"));
    // A leave advert counts only from the master a follows.
    peers::wait_heard(&lab, 0, 1, 3 * SECOND);
    let mark = a.mark();
    b.signal(Signal::SIGTERM);
    let takeover = a.wait_for_after(mark, "a master again", 2 * SECOND, is_master);
    assert!(takeover.contains("leave advertisement"), "{takeover}");
}

/// Three nodes, each with the two others as peers: one master; when it
/// dies the next best takes over and the third stays a backup.
#[test]
fn three_node_unicast_mesh() {
    if !privileged("three_node_unicast_mesh") {
        return;
    }
    let lab = Lab::new(3);
    lab.drop_carp_multicast();
    let mut nodes: Vec<Proc> = (0..3)
        .map(|host| peer_node(&lab, host, 3, &["-k", ["0", "50", "100"][host]]))
        .collect();
    nodes[0].wait_for("a master", 6 * SECOND, is_master);
    std::thread::sleep(3 * SECOND);
    for node in &nodes[1..] {
        let line = peers::status(node);
        assert!(line.contains("BACKUP"), "{line}");
        assert!(status_count(&line, "accepted") >= 2, "{line}");
    }
    let mark = nodes[1].mark();
    nodes[0].kill9();
    nodes[1].wait_for_after(mark, "b master", 6 * SECOND, is_master);
    std::thread::sleep(2 * SECOND);
    assert!(
        !nodes[2].lines().iter().any(|l| is_master(l)),
        "c took over too"
    );
    assert!(peers::status(&nodes[2]).contains("BACKUP"));
}

/// A correctly signed leave advert sent by unicast from an address that is
/// not a peer is refused (`not_a_peer`) and changes nothing; the same
/// advert from the configured peer's address hands over at once.
#[test]
fn adverts_from_anyone_but_a_peer_are_refused() {
    if !privileged("adverts_from_anyone_but_a_peer_are_refused") {
        return;
    }
    let lab = Lab::new(3);
    lab.drop_carp_multicast();
    // b alone, advbase 10: a backup for 30 s unless an advert moves it.
    let b = peer_node(&lab, 1, 2, &["-b", "10"]);
    b.wait_for("b backup", 3 * SECOND, |l| l.contains("state: BACKUP"));
    let auth = VirtualHostAuth::new(
        &Password::new(b"secret").unwrap(),
        7,
        &[IpAddr::V4(VIP.parse().unwrap())],
    )
    .unwrap();
    let advert = |counter: u64, advbase: u8, advskew: u8| {
        AdvertRepr {
            vhid: 7,
            advbase,
            advskew,
            demote: 0,
            counter,
            digest: auth.sign(counter),
        }
        .to_bytes()
    };
    let target = SocketAddr::new(IpAddr::V4(lab.addr(1)), 0);
    let send = |host: usize, counter: u64, advbase: u8, advskew: u8| {
        lab.in_ns(host, || {
            let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).unwrap();
            socket.set_ttl_v4(255).unwrap();
            let datagram = advert(counter, advbase, advskew);
            socket.send_to(&datagram, &target.into()).unwrap();
        })
    };
    let send_from = |host: usize, counter: u64| send(host, counter, 255, 255);
    // Host 2 is not b's peer.
    send_from(2, 1);
    send_from(2, 2);
    std::thread::sleep(Duration::from_millis(300));
    let line = peers::status(&b);
    assert!(line.contains("BACKUP"), "{line}");
    assert_eq!(status_count(&line, "not_a_peer"), 2, "{line}");
    assert!(!b.lines().iter().any(|l| is_master(l)));
    // Host 0 is: an advert (b then follows it), then its leave advert.
    let mark = b.mark();
    send(0, 3, 10, 0);
    send_from(0, 4);
    let takeover = b.wait_for_after(mark, "b master", 2 * SECOND, is_master);
    assert!(takeover.contains("leave advertisement"), "{takeover}");
}

/// IPv6 peers (each node's ULA as source and as the other's peer).
#[test]
fn ipv6_peers_elect_and_fail_over() {
    if !privileged("ipv6_peers_elect_and_fail_over") {
        return;
    }
    let lab = Lab::new(2);
    lab.drop_carp_multicast();
    for host in 0..2 {
        let status = lab
            .command(host, "ip")
            .args(["-6", "addr", "add", &format!("fd99::{}/64", host + 1)])
            .args(["dev", "eth0", "nodad"])
            .status()
            .unwrap();
        assert!(status.success());
        lab.wait_link_local(host);
    }
    let node = |host: usize, skew: &str| {
        let source = format!("fd99::{}", host + 1);
        let peer = format!("--peer=fd99::{}", 2 - host);
        ucarp(
            &lab,
            host,
            &["-s", &source, "-a", "fd99::100", &peer, "-k", skew],
        )
    };
    let mut a = node(0, "0");
    let b = node(1, "50");
    a.wait_for("a master", 6 * SECOND, is_master);
    std::thread::sleep(3 * SECOND);
    let line = peers::status(&b);
    assert!(line.contains("BACKUP"), "{line}");
    assert!(status_count(&line, "accepted") >= 2, "{line}");
    let mark = b.mark();
    a.kill9();
    b.wait_for_after(mark, "b master", 6 * SECOND, is_master);
}
