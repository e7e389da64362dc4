#!/usr/bin/env python3
"""Side-by-side benchmarks of our `ucarp` and UCARP 1.5.2 (/usr/sbin/ucarp).

Run as root from the repository: `sudo python3 scripts/bench.py [--quick]`.
Builds the release binary, then measures both implementations in the same
run on the same kind of network namespaces, and prints a Markdown report
(medians with min/max, and ours/UCARP ratios) for docs/BENCHMARKS.md.

Benchmarks, not tests: nothing here asserts; it measures and reports.
"""

import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = os.path.join(REPO, "target", "release", "ucarp")
FLOOD = os.path.join(REPO, "target", "release", "examples", "flood")
UCARP = "/usr/sbin/ucarp"
VIP = "10.98.0.100"
VIP6 = "fd98::100"
QUICK = "--quick" in sys.argv
# --only=takeover,takeover6,unicast,owned,outage,tracked,false,planned,stddev,idle,flood,flood255,rss,many runs just those sections.
ONLY = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--only=")), None)


def wanted(section):
    return ONLY is None or section in ONLY
# "ours6": our binary with an IPv6 virtual address (link-local source,
# ff02::12); UCARP has no IPv6, so it is measured beside ours over IPv4.
# "oursp": our binary with the other host as unicast peer (--peer).
# "ourso": our binary owning the address (-a VIP/16): it adds it itself.
# "oursv": the same on a virtual MAC device (--vmac).
IMPLS = {"ours": OURS, "ucarp": UCARP, "ours6": OURS, "oursp": OURS, "ourso": OURS, "oursv": OURS}
_lab_counter = [0]


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


class Lab:
    """A bridge namespace and `n` hosts at 10.98.0.(i+1)/16 on eth0."""

    def __init__(self, n):
        _lab_counter[0] += 1
        self.prefix = f"bn{os.getpid()}x{_lab_counter[0]}"
        self.n = n
        self.br = f"{self.prefix}-br"
        self.procs = []
        sh("ip", "netns", "add", self.br)
        sh("ip", "-n", self.br, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.br, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
        sh("ip", "-n", self.br, "link", "set", "br0", "up")
        for i in range(n):
            ns = self.ns(i)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", self.br, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.br, "link", "set", f"p{i}", "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.addr(i)}/16", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def ns(self, i):
        return f"{self.prefix}-h{i}"

    def addr(self, i):
        return f"10.98.0.{i + 1}"

    def spawn(self, i, argv, **kw):
        # Each host's daemons get their own runtime directory (control
        # sockets), as under systemd's RuntimeDirectory=.
        env = dict(kw.pop("env", os.environ))
        env["RUNTIME_DIRECTORY"] = f"/tmp/{self.ns(i)}-run"
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(i)] + argv, env=env, **kw)
        self.procs.append(p)
        return p

    def loss(self, host, percent):
        rules = (
            "add table bridge loss\n"
            "add chain bridge loss forward { type filter hook forward priority 0; }\n"
            f'add rule bridge loss forward oifname "p{host}" ip protocol 112 '
            f"numgen random mod 100 < {percent} drop\n"
        )
        subprocess.run(["ip", "netns", "exec", self.br, "nft", "-f", "-"], input=rules, text=True, check=True)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for ns in [self.ns(i) for i in range(self.n)] + [self.br]:
            out = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in out:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", ns, check=False)


@contextmanager
def lab(n):
    l = Lab(n)
    try:
        yield l
    finally:
        l.close()


class Node:
    """One ucarp process; its up script appends a timestamp to a file."""

    def __init__(self, lab, host, impl, extra, work):
        self.lab, self.host, self.impl = lab, host, impl
        self.up_file = os.path.join(work, f"{lab.prefix}-{host}-{impl}.up")
        self.log_file = os.path.join(work, f"{lab.prefix}-{host}-{impl}.log")
        up = os.path.join(work, "up.sh")
        identity = ["-a", VIP6] if impl == "ours6" else ["-s", lab.addr(host), "-a", VIP]
        if impl in ("ourso", "oursv"):
            identity = ["-s", lab.addr(host), "-a", VIP + "/16"]
        if impl == "oursv":
            identity += ["--vmac"]
        if impl == "oursp":
            identity += ["--peer", lab.addr(1 - host)]
        argv = [IMPLS[impl], "-i", "eth0", "-v", "9", "-p", "bench", "-f", "none", "-u", up] + identity + extra
        env = dict(os.environ, UP_FILE=self.up_file)
        self.log = open(self.log_file, "w")
        self.proc = lab.spawn(host, argv, env=env, stdout=self.log, stderr=self.log)

    def ups(self):
        try:
            with open(self.up_file) as f:
                return [float(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def takeovers(self):
        with open(self.log_file) as f:
            return f.read().count("Switching to state: MASTER")

    def is_master(self):
        with open(self.log_file) as f:
            states = [l.split("Switching to state: ")[1].split()[0] for l in f if "Switching to state: " in l]
        return bool(states) and states[-1] == "MASTER"

    def cpu_seconds(self):
        """CPU time of all the process's threads, in ns resolution
        (schedstat), not clock ticks."""
        total = 0
        task_dir = f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(task_dir):
            with open(f"{task_dir}/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait_until(cond, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return False


class Capture:
    """tcpdump on the bridge; returns (timestamp, source IP) of CARP adverts,
    IPv4 or IPv6, and with `arp` (timestamp, "garp " + sender IP) of
    gratuitous ARPs."""

    def __init__(self, lab, work, arp=False):
        self.path = os.path.join(work, f"{lab.prefix}.pcap")
        self.proc = subprocess.Popen(
            # --immediate-mode: without it the packets of the last moments
            # before the stop (a takeover's announcement) stay in the ring.
            ["ip", "netns", "exec", lab.br, "tcpdump", "--immediate-mode", "-i", "br0", "-U", "-w", self.path,
             "ip proto 112 or ip6 proto 112" + (" or arp" if arp else "")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self):
        time.sleep(0.2)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait()
        adverts = []
        with open(self.path, "rb") as f:
            data = f.read()
        at = 24
        while at + 16 <= len(data):
            sec, usec, caplen, _ = struct.unpack("<IIII", data[at:at + 16])
            frame = data[at + 16:at + 16 + caplen]
            if len(frame) >= 34 and frame[12:14] == b"\x08\x00":
                src = ".".join(str(b) for b in frame[26:30])
                adverts.append((sec + usec / 1e6, src))
            elif len(frame) >= 54 and frame[12:14] == b"\x86\xdd":
                adverts.append((sec + usec / 1e6, frame[22:38].hex()))
            elif len(frame) >= 42 and frame[12:14] == b"\x08\x06" and frame[28:32] == frame[38:42]:
                adverts.append((sec + usec / 1e6, "garp " + ".".join(str(b) for b in frame[28:32])))
            at += 16 + caplen
        return adverts


def master_down(impl, advbase, advskew, master_interval, deadratio=3):
    skew = advskew / 256
    if impl == "ucarp":
        return advbase * deadratio + skew
    return skew + deadratio * max(advbase, master_interval)


def summary(values, unit="ms", scale=1000.0, digits=1):
    if not values:
        return "n/a", None
    v = [x * scale for x in values]
    med = statistics.median(v)
    return f"{med:.{digits}f} {unit} ({min(v):.{digits}f} … {max(v):.{digits}f}, n={len(v)})", med


def ratio(ours, theirs):
    if ours is None or theirs is None or theirs == 0:
        return "n/a"
    return f"{ours / theirs:.2f}"


def unplanned_takeover(work, advbase, advskew, reps, impls=("ours", "ucarp")):
    """Master's last advert on the wire → backup's up script, minus the
    master-down time the backup's implementation computes."""
    out = {}
    for impl in impls:
        out[impl] = []
    for rep in range(reps):
        for impl in impls:
            with lab(2) as l:
                cap = Capture(l, work)
                m = Node(l, 0, impl, ["-b", str(advbase), "-k", str(advskew)], work)
                if not wait_until(m.is_master, 10):
                    continue
                b = Node(l, 1, impl, ["-b", str(advbase), "-k", str(advskew)], work)
                time.sleep(2.5 + rep * 0.137 % 1)
                ups_before = len(b.ups())
                m.stop()
                wait_until(lambda: len(b.ups()) > ups_before, 10)
                adverts = cap.stop()
                b.stop()
                # The master advertised alone first: its source is the first.
                master_src = adverts[0][1] if adverts else None
                last_master = [t for t, src in adverts if src == master_src]
                ups = b.ups()[ups_before:]
                if not last_master or not ups:
                    continue
                interval = advbase + advskew / 256
                rule = "ucarp" if impl == "ucarp" else "ours"
                late = ups[0] - last_master[-1] - master_down(rule, advbase, advskew, interval)
                out[impl].append(late)
    return out


def owned_takeover(work, reps):
    """Master's last advert on the wire → the address present on the
    backup (seen by `ip -ts monitor address` in its namespace), minus the
    master-down time: ours owning the address (-a VIP/16, no script in the
    way) against ours with an up script that adds it (`ip addr add`, the
    UCARP way) and UCARP with the same script."""
    out = {"ourso": [], "ours": [], "ucarp": [], "garp": []}
    up_adds = os.path.join(work, "up-adds.sh")
    with open(up_adds, "w") as f:
        f.write("#!/bin/sh\nip addr add \"$2\"/16 dev \"$1\"\n")
    os.chmod(up_adds, 0o755)
    for rep in range(reps):
        for impl in ("ourso", "ours", "ucarp"):
            with lab(2) as l:
                cap = Capture(l, work, arp=True)
                extra = ["-b", "1", "-k", "0"]
                if impl != "ourso":
                    extra += ["-u", up_adds]
                m = Node(l, 0, impl, extra, work)
                if not wait_until(m.is_master, 10):
                    continue
                b = Node(l, 1, impl, extra[:2] + ["-k", "50"] + extra[4:], work)
                mon_path = os.path.join(work, f"{l.prefix}-mon.txt")
                mon_file = open(mon_path, "w")
                mon = subprocess.Popen(["ip", "-n", l.ns(1), "-ts", "monitor", "address"],
                                       stdout=mon_file, stderr=subprocess.DEVNULL)
                time.sleep(2.5 + rep * 0.137 % 1)
                m.stop()
                seen = None
                deadline = time.time() + 10
                while seen is None and time.time() < deadline:
                    time.sleep(0.02)
                    with open(mon_path) as f:
                        for line in f:
                            if f"inet {VIP}/" in line and "Deleted" not in line:
                                # [2026-11-29T04:05:00.123456] in local time.
                                stamp = line.split("]")[0].lstrip("[")
                                whole, frac = stamp.split(".")
                                t = time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
                                seen = t + float("0." + frac)
                                break
                mon.terminate()
                mon.wait()
                mon_file.close()
                adverts = cap.stop()
                b.stop()
                carp = [(t, src) for t, src in adverts if not src.startswith("garp ")]
                master_src = carp[0][1] if carp else None
                last_master = [t for t, src in carp if src == master_src]
                if not last_master or seen is None:
                    continue
                rule = "ucarp" if impl == "ucarp" else "ours"
                due = last_master[-1] + master_down(rule, 1, 50, 1.0)
                out[impl].append(seen - due)
                # Owning it, the gratuitous ARP leaves only once the address
                # is in place: its kernel timestamp bounds the add from above
                # without `ip monitor`'s own wake-up in the figure.
                # (The old master's own announcements come before its death.)
                garps = [t for t, src in adverts if src == "garp " + VIP and t > due - 0.1]
                if impl == "ourso" and garps:
                    out["garp"].append(garps[0] - due)
    return out


def ping_replies(path):
    """Times of the echo replies in `ping -D -n` output."""
    times = []
    with open(path) as f:
        for line in f:
            if line.startswith("[") and "bytes from" in line:
                times.append(float(line[1:line.index("]")]))
    return times


def client_outage(work, reps, variants):
    """What a client sees when the master host dies: a third namespace
    pings the address every 10 ms; the master's daemon is killed and its
    cable cut at once (a dead host answers nothing). Per variant: the
    longest gap between replies (the outage), and the first reply after
    it minus the moment the backup's master-down time ran out after the
    master's last advert (client-visible lateness: takeover lateness plus
    the address, the ARP and the client's cache). Variants: ("ours" with
    up/down scripts adding and removing the address, "ourso" owning it,
    "oursv" owning it on a virtual MAC, "ucarp" with the scripts), each
    optionally with a client that ignores gratuitous ARP (nftables drops
    ARP requests whose sender is the address; its neighbour entries live
    base_reachable_time_ms=5000 so the wait stays bounded)."""
    up_adds = os.path.join(work, "up-adds.sh")
    down_dels = os.path.join(work, "down-dels.sh")
    with open(up_adds, "w") as f:
        f.write("#!/bin/sh\nip addr add \"$2\"/16 dev \"$1\"\n")
    with open(down_dels, "w") as f:
        f.write("#!/bin/sh\nip addr del \"$2\"/16 dev \"$1\" 2>/dev/null\n")
    os.chmod(up_adds, 0o755)
    os.chmod(down_dels, 0o755)
    out = {v: ([], []) for v in variants}
    for rep in range(reps):
        for variant in variants:
            impl, deaf = variant
            with lab(3) as l:
                cap = Capture(l, work)
                extra = ["-b", "1", "-k", "0"]
                if impl in ("ours", "ucarp"):
                    extra += ["-u", up_adds, "-d", down_dels]
                m = Node(l, 0, impl, extra, work)
                if not wait_until(m.is_master, 10):
                    continue
                b = Node(l, 1, impl, extra[:2] + ["-k", "50"] + extra[4:], work)
                client = l.ns(2)
                if deaf:
                    sh("ip", "netns", "exec", client, "sysctl", "-q",
                       "net.ipv4.neigh.eth0.base_reachable_time_ms=5000")
                    rules = ("add table arp deaf\n"
                             "add chain arp deaf input { type filter hook input priority 0; }\n"
                             f"add rule arp deaf input arp operation request arp saddr ip {VIP} drop\n")
                    subprocess.run(["ip", "netns", "exec", client, "nft", "-f", "-"], input=rules,
                                   text=True, check=True)
                time.sleep(2.0)
                ping_path = os.path.join(work, f"{l.prefix}-ping.txt")
                ping_file = open(ping_path, "w")
                # Line-buffered, so that its replies can be watched as they come.
                ping = subprocess.Popen(["ip", "netns", "exec", client, "stdbuf", "-oL",
                                         "ping", "-D", "-n", "-i", "0.01", VIP],
                                        stdout=ping_file, stderr=subprocess.DEVNULL)
                time.sleep(0.7 + rep * 0.137 % 1)
                m.stop()
                sh("ip", "-n", l.br, "link", "set", "p0", "down")
                cut = time.time()
                limit = 30 if deaf else 10
                wait_until(lambda: any(t > cut for t in ping_replies(ping_path)), limit)
                time.sleep(0.2)
                ping.send_signal(signal.SIGINT)
                ping.wait()
                ping_file.close()
                adverts = cap.stop()
                b.stop()
                replies = ping_replies(ping_path)
                before = [t for t in replies if t <= cut]
                after = [t for t in replies if t > cut]
                master_src = adverts[0][1] if adverts else None
                last_master = [t for t, src in adverts if src == master_src and t <= cut]
                if not before or not after or not last_master:
                    continue
                rule = "ucarp" if impl == "ucarp" else "ours"
                down_at = last_master[-1] + master_down(rule, 1, 50, 1.0)
                out[variant][0].append(after[0] - before[-1])
                out[variant][1].append(after[0] - down_at)
    return out


def tracked_failover(work, reps):
    """A service failure → the backup's up script. Ours: the master tracks
    an interface (a veth pair in its namespace) that goes down. UCARP has
    no tracking: the nearest an operator gets is a watchdog that kills
    UCARP on the failure, measured here from the kill."""
    out = {"ours": [], "ucarp": []}
    for rep in range(reps):
        for impl in ("ours", "ucarp"):
            with lab(2) as l:
                extra = ["-b", "1", "-k", "0"]
                if impl == "ours":
                    ns = l.ns(0)
                    sh("ip", "-n", ns, "link", "add", "trk0", "type", "veth", "peer", "name", "trk1")
                    sh("ip", "-n", ns, "link", "set", "trk1", "up")
                    sh("ip", "-n", ns, "link", "set", "trk0", "up")
                    extra += ["--track-interface", "trk0"]
                m = Node(l, 0, impl, extra, work)
                if not wait_until(m.is_master, 10):
                    continue
                b = Node(l, 1, impl, ["-b", "1", "-k", "50"], work)
                time.sleep(2.5 + rep * 0.137 % 1)
                before = len(b.ups())
                t0 = time.time()
                if impl == "ours":
                    sh("ip", "-n", l.ns(0), "link", "set", "trk0", "down")
                else:
                    m.stop()
                wait_until(lambda: len(b.ups()) > before, 10)
                ups = b.ups()[before:]
                if ups:
                    out[impl].append(ups[0] - t0)
                m.stop()
                b.stop()
    return out


def false_takeovers(work, loss, seconds):
    results = {}
    labs = {impl: Lab(2) for impl in ("ours", "ucarp")}
    nodes = {}
    try:
        for impl, l in labs.items():
            m = Node(l, 0, impl, ["-b", "0", "-k", "51"], work)
            wait_until(m.is_master, 5)
            b = Node(l, 1, impl, ["-b", "0", "-k", "51"], work)
            nodes[impl] = (m, b)
        time.sleep(2)
        before = {impl: m.takeovers() + b.takeovers() for impl, (m, b) in nodes.items()}
        if loss:
            for l in labs.values():
                l.loss(0, loss)
                l.loss(1, loss)
        time.sleep(seconds)
        for impl, (m, b) in nodes.items():
            results[impl] = m.takeovers() + b.takeovers() - before[impl]
    finally:
        for impl, (m, b) in nodes.items():
            m.stop()
            b.stop()
        for l in labs.values():
            l.close()
    return results


def planned_takeover(work, reps):
    out = {"ours": [], "ucarp": []}
    for _ in range(reps):
        for impl in ("ours", "ucarp"):
            with lab(2) as l:
                m = Node(l, 0, impl, ["-b", "1", "-k", "0"], work)
                if not wait_until(m.is_master, 10):
                    continue
                b = Node(l, 1, impl, ["-b", "1", "-k", "50"], work)
                time.sleep(2.3)
                sent = time.time()
                m.proc.send_signal(signal.SIGTERM)
                if wait_until(lambda: len(b.ups()) > 0, 10):
                    out[impl].append(b.ups()[0] - sent)
                m.stop()
                b.stop()
    return out


def interval_stddev(work, advbase, advskew, seconds):
    out = {}
    for impl in ("ours", "ucarp"):
        with lab(1) as l:
            cap = Capture(l, work)
            m = Node(l, 0, impl, ["-b", str(advbase), "-k", str(advskew)], work)
            wait_until(m.is_master, 10)
            time.sleep(seconds)
            adverts = cap.stop()
            m.stop()
            times = [t for t, src in adverts if src == l.addr(0)]
            gaps = [b - a for a, b in zip(times[1:], times[2:])]  # skip takeover burst
            nominal = advbase + int(advskew * 1_000_000 / 256) / 1e6
            if len(gaps) > 2:
                errors = [abs(g - nominal) for g in gaps]
                out[impl] = (statistics.pstdev(gaps), statistics.median(errors), max(errors), len(gaps))
            else:
                out[impl] = None
    return out


def settled_pair(l, impl, work):
    """Our master on host 0 (advbase 1), an `impl` backup on host 1
    (advskew 50), two seconds after the backup started."""
    m = Node(l, 0, "ours", ["-b", "1", "-k", "0"], work)
    wait_until(m.is_master, 10)
    b = Node(l, 1, impl, ["-b", "1", "-k", "50"], work)
    time.sleep(2)
    return m, b


def flood_cpu(work, kind, seconds):
    out = {}
    for impl in ("ours", "ucarp"):
        with lab(3) as l:
            m, b = settled_pair(l, impl, work)
            cpu0, machine0 = b.cpu_seconds(), machine_busy()
            r = sh("ip", "netns", "exec", l.ns(2), FLOOD, "iface=eth0", f"src={l.addr(2)}",
                   f"kind={kind}", "vhid=9", f"seconds={seconds}")
            cpu, machine = b.cpu_seconds() - cpu0, machine_busy() - machine0
            pps = r.stdout.strip()
            took = b.takeovers()
            m.stop()
            b.stop()
            out[impl] = (cpu, pps, took, machine)
    return out


def idle_cpu(work, seconds):
    """CPU of a backup hearing a master every second and nothing else,
    over `seconds`: ten wake-ups for ten adverts, each costing tens of µs
    that vary with scheduling, hence three pairs, alternating."""
    out = {"ours": [], "ucarp": []}
    for _ in range(3):
        for impl in ("ours", "ucarp"):
            with lab(2) as l:
                m, b = settled_pair(l, impl, work)
                cpu0 = b.cpu_seconds()
                time.sleep(seconds)
                out[impl].append(b.cpu_seconds() - cpu0)
                m.stop()
                b.stop()
    return out


def machine_busy():
    """Busy CPU seconds of the whole machine (/proc/stat: user, nice,
    system, irq, softirq, steal): what a process's own CPU time leaves out,
    such as the kernel's receive work done in softirq on another task's
    time (here mostly the flooder's)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[i] for i in (0, 1, 2, 5, 6, 7)) / os.sysconf("SC_CLK_TCK")


def steady_rss(work):
    out = {}
    for impl in ("ours", "ucarp"):
        with lab(2) as l:
            m = Node(l, 0, impl, ["-b", "1", "-k", "0"], work)
            wait_until(m.is_master, 10)
            b = Node(l, 1, impl, ["-b", "1", "-k", "50"], work)
            time.sleep(8)
            out[impl] = (m.rss_kib(), b.rss_kib())
            m.stop()
            b.stop()
    return out


def proc_cpu(pid):
    """CPU seconds of a process, threads that have ended included
    (utime + stime of /proc/PID/stat, in clock ticks: fine over a minute)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except FileNotFoundError:
        return 0.0


def proc_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def wait_lines(path, text, count, timeout):
    """Waits until `text` occurs `count` times in the file; returns when."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path) as f:
            if f.read().count(text) >= count:
                return time.time()
        time.sleep(0.001)
    return None


def write_vhosts(path, srcip, vhids, skew, up=None):
    """A --config file: `vhids` virtual hosts on eth0, each with one
    address 10.97.<vhid>.1 and the advskew `skew(vhid)` (None: none)."""
    with open(path, "w") as f:
        f.write(f'[daemon]\nfacility = "none"\n[defaults]\ninterface = "eth0"\n'
                f'srcip = "{srcip}"\npassword = "bench"\n')
        if up:
            f.write(f'upscript = "{up}"\n')
        for v in range(1, vhids + 1):
            f.write(f'[[vhost]]\nvhid = {v}\n')
            if skew(v) is not None:
                f.write(f'advskew = {skew(v)}\n')
            f.write(f'addresses = ["10.97.{v}.1"]\n')
    return path


def many_vhids(work, vhids, seconds):
    """`vhids` virtual hosts at advbase 1 on one interface, master on host 0
    and backup on host 1: ours as one process per host (--config), UCARP as
    one process per vhid per host. CPU over `seconds` and RSS of each
    host's processes; then the time from asking for a change of one vhid
    (ours: rewrite the file, SIGHUP; UCARP: SIGTERM its process, start it
    with the new option) to the changed vhid running again."""
    out = {}
    up = os.path.join(work, "up.sh")
    for impl in ("ours", "ucarp"):
        with lab(2) as l:
            procs = {0: [], 1: []}
            logs = {}

            def ours_config(host, changed_skew=None):
                skew = lambda v: 100 * host if v != 100 or changed_skew is None else changed_skew
                return write_vhosts(os.path.join(work, f"{l.prefix}-{host}.toml"), l.addr(host), vhids, skew, up)

            def ucarp_one(host, v, skew):
                log = os.path.join(work, f"{l.prefix}-{host}-{v}-{skew}.log")
                logs[(host, v)] = log
                f = open(log, "w")
                return l.spawn(host, [UCARP, "-i", "eth0", "-s", l.addr(host), "-v", str(v), "-p", "bench",
                                      "-a", f"10.97.{v}.1", "-f", "none", "-u", up, "-k", str(skew)],
                               env=dict(os.environ, UP_FILE=os.devnull), stdout=f, stderr=f)

            for host in (0, 1):
                if impl == "ours":
                    log = os.path.join(work, f"{l.prefix}-{host}.log")
                    logs[host] = log
                    f = open(log, "w")
                    procs[host].append(l.spawn(host, [OURS, "--config", ours_config(host)],
                                               env=dict(os.environ, UP_FILE=os.devnull), stdout=f, stderr=f))
                else:
                    for v in range(1, vhids + 1):
                        procs[host].append(ucarp_one(host, v, 100 * host))
                if host == 0:
                    # Host 0 becomes master of everything before host 1 starts.
                    if impl == "ours":
                        wait_lines(logs[0], "Switching to state: MASTER", vhids, 30)
                    else:
                        for v in range(1, vhids + 1):
                            wait_lines(logs[(0, v)], "Switching to state: MASTER", 1, 30)
            time.sleep(5)
            cpu0 = {h: sum(proc_cpu(p.pid) for p in procs[h]) for h in (0, 1)}
            time.sleep(seconds)
            cpu = {h: sum(proc_cpu(p.pid) for p in procs[h]) - cpu0[h] for h in (0, 1)}
            rss = {h: sum(proc_rss_kib(p.pid) for p in procs[h]) for h in (0, 1)}
            # Change vhid 100 on the master: advskew 0 -> 200.
            if impl == "ours":
                ours_config(0, changed_skew=200)
                with open(logs[0]) as f:
                    before = f.read().count("Switching to state: BACKUP (vhid 100 on eth0: start-up)")
                t0 = time.time()
                procs[0][0].send_signal(signal.SIGHUP)
                t1 = wait_lines(logs[0], "Switching to state: BACKUP (vhid 100 on eth0: start-up)", before + 1, 10)
            else:
                t0 = time.time()
                old = procs[0][99]
                old.send_signal(signal.SIGTERM)
                old.wait()
                ucarp_one(0, 100, 200)
                t1 = wait_lines(logs[(0, 100)], "Switching to state: BACKUP", 1, 10)
            applied = (t1 - t0) if t1 else None
            out[impl] = {"cpu": cpu, "rss": rss, "processes": len(procs[0]), "applied": applied}
    # Ours without scripts: no script thread ever starts.
    with lab(1) as l:
        path = write_vhosts(os.path.join(work, f"{l.prefix}-noscripts.toml"), l.addr(0), vhids, lambda v: None)
        log = os.path.join(work, f"{l.prefix}-noscripts.log")
        with open(log, "w") as f:
            p = l.spawn(0, [OURS, "--config", path], stdout=f, stderr=f)
        wait_lines(log, "Switching to state: MASTER", vhids, 30)
        time.sleep(5)
        out["ours"]["rss_without_scripts"] = proc_rss_kib(p.pid)
    return out


def schedstat_cpu(pid):
    """CPU seconds of a process's running threads (schedstat, ns)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def flood_many(work, vhids, seconds):
    """Ours only: the forged flood (vhid 9) against a backup running
    `vhids` virtual hosts from one --config file, the master on host 0
    running them all too. UCARP would need one process per vhid, each
    reading every packet of the flood. Returns the backup's CPU seconds,
    the flood's output, its takeovers and its log lines during the flood."""
    up = os.path.join(work, "up.sh")
    with lab(3) as l:
        logs, procs = {}, {}
        for host, skew in ((0, 0), (1, 100)):
            path = write_vhosts(os.path.join(work, f"{l.prefix}-flood-{host}.toml"), l.addr(host), vhids,
                                lambda v: skew, up)
            logs[host] = os.path.join(work, f"{l.prefix}-flood-{host}.log")
            with open(logs[host], "w") as f:
                procs[host] = l.spawn(host, [OURS, "--config", path],
                                      env=dict(os.environ, UP_FILE=os.devnull), stdout=f, stderr=f)
            if host == 0:
                wait_lines(logs[0], "Switching to state: MASTER", vhids, 30)
        time.sleep(5)
        with open(logs[1]) as f:
            lines0 = len(f.readlines())
        cpu0 = schedstat_cpu(procs[1].pid)
        r = sh("ip", "netns", "exec", l.ns(2), FLOOD, "iface=eth0", f"src={l.addr(2)}",
               "kind=forged", "vhid=9", f"seconds={seconds}")
        cpu = schedstat_cpu(procs[1].pid) - cpu0
        with open(logs[1]) as f:
            text = f.read()
        takeovers = text.count("Switching to state: MASTER")
        lines = len(text.splitlines()) - lines0
        return cpu, r.stdout.strip(), takeovers, lines


def main():
    if os.geteuid() != 0:
        sys.exit("bench: run as root (network namespaces)")
    for tool in ("ip", "tcpdump", "nft", "ping"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} missing (apt-get install iproute2 tcpdump nftables iputils-ping)")
    if not os.path.exists(UCARP):
        sys.exit("bench: /usr/sbin/ucarp missing (apt-get install ucarp)")
    # Apart: built together, the examples' dependencies' features would
    # unify into the daemon and its size would not be the shipped one.
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "carp-io", "--examples"], cwd=REPO, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ucarp-cli", "--bins"], cwd=REPO, check=True)
    work = tempfile.mkdtemp(prefix="ucarp-bench-")
    up = os.path.join(work, "up.sh")
    with open(up, "w") as f:
        f.write('#!/bin/sh\ndate +%s.%N >> "$UP_FILE"\n')
    os.chmod(up, 0o755)
    reps = 3 if QUICK else 8
    long_run = 20 if QUICK else 120
    rows = []
    try:
        for advbase, advskew in ((1, 0), (0, 51)) if wanted("takeover") else ():
            r = unplanned_takeover(work, advbase, advskew, reps)
            o, om = summary(r["ours"])
            u, um = summary(r["ucarp"])
            rows.append((f"unplanned takeover, late vs master-down, advbase {advbase}/advskew {advskew}", o, u, ratio(om, um)))
            print(f"# takeover {advbase}/{advskew}: ours {o}; ucarp {u}", file=sys.stderr)
        if wanted("takeover6"):
            # Same run, same labs: ours over IPv6 and IPv4, UCARP over IPv4.
            r = unplanned_takeover(work, 1, 0, reps, impls=("ours6", "ours", "ucarp"))
            o6, o6m = summary(r["ours6"])
            o, om = summary(r["ours"])
            u, um = summary(r["ucarp"])
            rows.append(("unplanned takeover over IPv6 (ours; UCARP has no IPv6, column: UCARP over IPv4), advbase 1/advskew 0",
                         o6, u, ratio(o6m, um)))
            rows.append(("  same run, ours over IPv4 for comparison", o, u, ratio(om, um)))
            print(f"# takeover6: ours6 {o6}; ours {o}; ucarp {u}", file=sys.stderr)
        if wanted("tracked"):
            r = tracked_failover(work, reps)
            o, om = summary(r["ours"])
            u, um = summary(r["ucarp"])
            rows.append(("service failure → backup's up script (ours: tracked interface down; UCARP: a watchdog kills it), advbase 1",
                         o, u, ratio(om, um)))
            print(f"# tracked: ours {o}; ucarp {u}", file=sys.stderr)
        if wanted("owned"):
            r = owned_takeover(work, reps)
            oo, oom = summary(r["ourso"])
            o, om = summary(r["ours"])
            u, um = summary(r["ucarp"])
            rows.append(("unplanned takeover → address present (netlink), ours owning it (-a VIP/16), advbase 1", oo, u, ratio(oom, um)))
            rows.append(("  same run, ours with an up script adding it", o, u, ratio(om, um)))
            g, gm = summary(r["garp"])
            rows.append(("  same run, ours owning it: first gratuitous ARP on the wire (sent once the address is in place)",
                         g, "n/a", "n/a"))
            print(f"# owned: ourso {oo}; ours {o}; ucarp {u}", file=sys.stderr)
        if wanted("outage"):
            variants = [("ours", False), ("ourso", False), ("oursv", False), ("ucarp", False),
                        ("ourso", True), ("oursv", True), ("ucarp", True)]
            r = client_outage(work, reps, variants)
            names = {"ours": "ours, up/down scripts", "ourso": "ours owning the address",
                     "oursv": "ours owning it on a virtual MAC", "ucarp": "UCARP, up/down scripts"}
            u_gap, u_gap_m = summary(r[("ucarp", False)][0])
            u_late, u_late_m = summary(r[("ucarp", False)][1])
            u_gap_d, u_gap_dm = summary(r[("ucarp", True)][0])
            for (impl, deaf), (gaps, lates) in r.items():
                if impl == "ucarp":
                    continue
                g, gm = summary(gaps)
                lt, ltm = summary(lates)
                who = names[impl] + (", client ignoring gratuitous ARP" if deaf else "")
                rows.append((f"client outage (ping every 10 ms, master host dies), {who}: longest gap",
                             g, u_gap_d if deaf else u_gap, ratio(gm, u_gap_dm if deaf else u_gap_m)))
                if not deaf:
                    rows.append((f"  same, first reply after the master-down time ran out, {who}",
                                 lt, u_late, ratio(ltm, u_late_m)))
            print(f"# outage: {r}", file=sys.stderr)
        if wanted("unicast"):
            # Same run: ours with a unicast peer, ours multicast, UCARP.
            r = unplanned_takeover(work, 1, 0, reps, impls=("oursp", "ours", "ucarp"))
            op_, opm = summary(r["oursp"])
            o, om = summary(r["ours"])
            u, um = summary(r["ucarp"])
            rows.append(("unplanned takeover with a unicast peer (ours; UCARP has no peers, column: UCARP multicast), advbase 1/advskew 0",
                         op_, u, ratio(opm, um)))
            rows.append(("  same run, ours multicast for comparison", o, u, ratio(om, um)))
            print(f"# unicast: oursp {op_}; ours {o}; ucarp {u}", file=sys.stderr)
        for loss in (0, 20) if wanted("false") else ():
            r = false_takeovers(work, loss, long_run)
            rows.append((f"false takeovers in {long_run} s, healthy master, advbase 0/advskew 51, {loss} % loss",
                         str(r["ours"]), str(r["ucarp"]), "n/a"))
            print(f"# false takeovers {loss}%: {r}", file=sys.stderr)
        if wanted("planned"):
            r = planned_takeover(work, reps)
            o, om = summary(r["ours"])
            u, um = summary(r["ucarp"])
            rows.append(("planned takeover: SIGTERM to master → backup's up script (advbase 1)", o, u, ratio(om, um)))
        for advbase, advskew in ((1, 0), (0, 51)) if wanted("stddev") else ():
            r = interval_stddev(work, advbase, advskew, 15 if QUICK else 60)

            def fmt(m):
                if m is None:
                    return "n/a"
                sd, med, worst, n = m
                return f"stddev {sd * 1000:.3f} ms; median error {med * 1000:.3f} ms, worst {worst * 1000:.2f} ms (n={n})"

            sd = lambda m: m[0] if m else None
            rows.append((f"advert interval vs nominal, advbase {advbase}/advskew {advskew}",
                         fmt(r["ours"]), fmt(r["ucarp"]), ratio(sd(r["ours"]), sd(r["ucarp"]))))
        for kind in ("unrelated", "forged") if wanted("flood") else ():
            # The unrelated flood leaves both idle (ten adverts in 10 s):
            # a few tens of µs of scheduling noise per wake-up decide a
            # single run, so it runs five times, alternating; the median.
            runs = [flood_cpu(work, kind, 5 if QUICK else 10) for _ in range(5 if kind == "unrelated" else 1)]
            pick = lambda impl: sorted((run[impl] for run in runs), key=lambda v: v[0])[len(runs) // 2]
            r = {impl: pick(impl) for impl in ("ours", "ucarp")}
            (oc, op, ot, om), (uc, up_, ut, um) = r["ours"], r["ucarp"]
            every = lambda impl: ", ".join(f"{run[impl][0] * 1000:.2f}" for run in runs)
            spread = lambda impl: f" (runs: {every(impl)} ms)" if len(runs) > 1 else ""
            took = lambda impl: sum(run[impl][2] for run in runs)
            rows.append((f"backup CPU during a {kind} flood ({op}; {up_})",
                         f"{oc * 1000:.2f} ms CPU{spread('ours')}, {took('ours')} takeovers",
                         f"{uc * 1000:.2f} ms CPU{spread('ucarp')}, {took('ucarp')} takeovers",
                         ratio(oc, uc)))
            # Per packet: the two floods reach different rates.
            sent = lambda p: int(p.split("sent=")[1].split()[0]) if "sent=" in p else 0
            if kind == "forged" and sent(op) and sent(up_):
                per_o, per_u = oc / sent(op) * 1e9, uc / sent(up_) * 1e9
                rows.append((f"  same, CPU per packet sent", f"{per_o:.0f} ns", f"{per_u:.0f} ns", ratio(per_o, per_u)))
                mo, mu = om / sent(op) * 1e9, um / sent(up_) * 1e9
                rows.append((f"  same, whole machine's busy CPU per packet sent (flooder and softirq included)",
                             f"{mo:.0f} ns", f"{mu:.0f} ns", ratio(mo, mu)))
        if wanted("idle"):
            r = idle_cpu(work, 10)
            show = lambda impl: ", ".join(f"{v * 1000:.2f}" for v in r[impl]) + " ms"
            med = lambda impl: sorted(r[impl])[1]
            rows.append(("idle backup, CPU over 10 s (three runs)", show("ours"), show("ucarp"),
                         ratio(med("ours"), med("ucarp"))))
        if wanted("flood255"):
            vhids, seconds = 255, 5 if QUICK else 10
            cpu, pps, took, lines = flood_many(work, vhids, seconds)
            sent = int(pps.split("sent=")[1].split()[0]) if "sent=" in pps else 0
            per = f", {cpu / sent * 1e9:.0f} ns per packet" if sent else ""
            rows.append((f"forged flood against a backup running {vhids} vhids ({pps})",
                         f"{cpu * 1000:.1f} ms CPU{per}, {took} takeovers, {lines} log lines",
                         "n/a (one process per vhid)", "n/a"))
        if wanted("rss"):
            r = steady_rss(work)
            rows.append(("RSS of a steady master", f"{r['ours'][0]} KiB", f"{r['ucarp'][0]} KiB", ratio(r['ours'][0], r['ucarp'][0])))
            rows.append(("RSS of a steady backup", f"{r['ours'][1]} KiB", f"{r['ucarp'][1]} KiB", ratio(r['ours'][1], r['ucarp'][1])))
        if wanted("many"):
            vhids, seconds = 255, 20 if QUICK else 60
            r = many_vhids(work, vhids, seconds)
            o, u = r["ours"], r["ucarp"]
            for host, role in ((0, "master"), (1, "backup")):
                oc = o["cpu"][host] / seconds * 100
                uc = u["cpu"][host] / seconds * 100
                rows.append((f"{vhids} vhids at advbase 1, {role} host: CPU over {seconds} s (one core = 100 %)",
                             f"{oc:.2f} % (1 process)", f"{uc:.2f} % ({u['processes']} processes)", ratio(oc, uc)))
                rows.append((f"{vhids} vhids, {role} host: RSS",
                             f"{o['rss'][host]} KiB", f"{u['rss'][host]} KiB (sum)", ratio(o['rss'][host], u['rss'][host])))
            rows.append((f"{vhids} vhids, master host without scripts: RSS",
                         f"{o['rss_without_scripts']} KiB", "n/a", "n/a"))
            fmt = lambda v: f"{v * 1000:.1f} ms" if v is not None else "n/a"
            rows.append((f"change one of {vhids} vhids: request → changed vhid running (ours: SIGHUP reload; UCARP: restart its process)",
                         fmt(o["applied"]), fmt(u["applied"]),
                         ratio(o["applied"], u["applied"]) if o["applied"] and u["applied"] else "n/a"))
        stripped = os.path.join(work, "ucarp.stripped")
        sh("strip", "-o", stripped, OURS)
        ours_size, ucarp_size = os.path.getsize(stripped), os.path.getsize(UCARP)
        rows.append(("binary size (stripped)", f"{ours_size // 1024} KiB", f"{ucarp_size // 1024} KiB", ratio(ours_size, ucarp_size)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Measured {time.strftime('%Y-%m-%d')} with `sudo python3 {' '.join(['scripts/bench.py'] + sys.argv[1:])}`.\n")
    print("| measurement | ours | UCARP 1.5.2 | ours/UCARP |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
