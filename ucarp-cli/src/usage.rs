//! The `--help` text, in UCARP's layout. `docs/ucarp.8` documents the same
//! options; a test keeps the two in step.

/// Printed by `-h` / `--help`.
pub const USAGE: &str = concat!(
    "ucarp ",
    env!("CARGO_PKG_VERSION"),
    " (ucarp-rs, compatible with UCARP 1.5.2)

--interface=<if> (-i <if>): bind interface <if>
--srcip=<ip> (-s <ip>): source (real) IP address of that host (one per family;
  IPv6 defaults to the interface's link-local address)
--mcast=<ip> (-m <ip>): multicast group IP address (default 224.0.0.18, ff02::12)
--vhid=<id> (-v <id>): virtual IP identifier (1-255)
--pass=<pass> (-p <pass>): password (visible in the process list: prefer --passfile)
--passfile=<file> (-o <file>): read password from file (first line)
--preempt (-P): becomes a master as soon as possible
--neutral (-n): don't run downscript at start if backup
--addr=<ip> (-a <ip>): virtual shared IP address, IPv4 or IPv6 (repeat for several)
--help (-h): summary of command-line options
--advbase=<seconds> (-b <seconds>): advertisement frequency (0-255, default 1)
--advskew=<skew> (-k <skew>): advertisement skew (0-255, default 0)
--upscript=<file> (-u <file>): run <file> to become a master
--downscript=<file> (-d <file>): run <file> to become a backup
--deadratio=<ratio> (-r <ratio>): ratio to consider a host as dead (default 3)
--debug (-D): enable debug output
--shutdown (-z): call shutdown script at exit
--daemonize (-B): run in background
--ignoreifstate (-S): ignore interface state (down, no carrier)
--nomcast (-M): use broadcast (instead of multicast) advertisements
--facility=<facility> (-f): set syslog facility (default=daemon, none to disable)
--xparam=<value> (-x): extra parameter to send to up/down scripts
--script-timeout=<seconds>: kill a script's process group after this long (1-3600, default 60)
--peer=<ip>: send adverts by unicast to <ip> instead of the group (repeat for several)
--track-interface=<if>[:<weight>]: demote by <weight> (default 1) while <if> has no carrier
--track-script=<command>: health check run with /bin/sh -c; failing, it demotes (repeatable;
  --track-interval/--track-timeout <seconds> (default 2/2), --track-rise/--track-fall <n>
  (default 1/1), --track-weight <n> (default 1) apply to all)
--startup-demote=<n>:<seconds>: demoted by <n> for <seconds> after start
--no-demote-skew: do not add the demotion to the advertised skew (for UCARP peers)
--replay=<mode>: refuse replayed adverts: enforce (default; safe with UCARP peers),
  strict (every peer is ucarp-rs), permissive (count and log only), off
--garp-refresh=<seconds>: while master, announce the addresses again this often
--vmac: put the owned addresses (-a <addr>/<prefix>) on a macvlan device with MAC
  00:00:5e:00:01:<vhid>, so that a takeover changes no client's ARP entry
--vmac-name=<name>: that device's name (default ucarp<vhid>)
--control-socket=<path>: the control socket (default $RUNTIME_DIRECTORY or /run/ucarp,
  <if>.<vhid>.sock; none to disable)
--control-group=<group>: a group that may use the control socket too
--metrics=<addr>:<port>: serve Prometheus metrics at http://<addr>:<port>/metrics
--events=<fifo>: write one JSON line per transition to <fifo>
--config=<file>: every setting from <file> (ucarp.toml(5)); SIGHUP reloads it
--check-config=<file>: check <file>, say what is wrong, and exit (0 good, 1 bad)

Scripts are run as: <script> <interface> <virtual address> [<xparam>], once per
address, with UCARP_INTERFACE, UCARP_VHID, UCARP_STATE, UCARP_REASON and
UCARP_ADDRESSES in their environment.
Signals: SIGUSR1 logs the state, SIGUSR2 steps down, SIGTERM/SIGINT/SIGQUIT/SIGHUP
exit: a running script is stopped, the --shutdown down script runs, then a master
sends its leave advertisement. A second stop signal exits at once. With --config,
SIGHUP reloads the file instead: only what changed is touched.

Control a running daemon (through its control socket):
  ucarp status [--json]                    every virtual host's state, master, counters
  ucarp step-down [<vhid> | <if>:<vhid>]   masters step down, as SIGUSR2
  ucarp demote (<vhid> | <if>:<vhid> | --group <name>) [<n>]   (default 128)
  ucarp undemote (<vhid> | <if>:<vhid> | --group <name>)
  ucarp reload                             reload --config's file, as SIGHUP
  (--socket <path> picks one daemon when several run)

Sample usage:

Manage the 10.1.1.252 shared virtual address on interface eth0, with
1 as a virtual address identifier, the password in /etc/ucarp.pass, and
10.1.1.1 as a real permanent address for this host.
Call /etc/vip-up.sh when the host becomes a master, and
/etc/vip-down.sh when the virtual IP address has to be disabled.

ucarp --interface=eth0 --srcip=10.1.1.1 --vhid=1 --passfile=/etc/ucarp.pass \\
      --addr=10.1.1.252 \\
      --upscript=/etc/vip-up.sh --downscript=/etc/vip-down.sh
"
);
