//! A CARP node on one interface, with Rust callbacks instead of scripts
//! (or scripts, with `up=`/`down=`). The namespace tests drive it; it is
//! also the smallest complete example of embedding carp-io.
//!
//! ```text
//! carp_node iface=eth0 src=10.0.0.1 vip=10.0.0.100 vhid=1 pass=secret \
//!           [advbase=1] [advskew=0] [deadratio=3] [preempt] [neutral] \
//!           [group=224.0.0.18] [broadcast] [ignore-link] \
//!           [up=/path down=/path xparam=x script-timeout=secs]
//! ```
//!
//! Prints `EVENT <monotonic µs> <from> <to> <up|down|none> <reason>` for
//! each transition. Reads commands on stdin: `stepdown`, `status` (prints
//! `COUNTERS key=value …`), `shutdown`, `shutdown-hook`. Exits after a
//! shutdown; stdin closing shuts down too.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use carp_engine::{Config, Hook, Transition};
use carp_io::{HookDone, Hooks, Node, ScriptConfig, ScriptHooks, VirtualHostConfig};
use carp_proto::{Password, VirtualHostAuth};
use nix::time::{clock_gettime, ClockId};

fn monotonic_micros() -> i64 {
    let now = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("monotonic clock");
    now.tv_sec() * 1_000_000 + now.tv_nsec() / 1_000
}

fn print_event(t: &Transition) {
    let hook = match t.hook {
        Some(Hook::Up) => "up",
        Some(Hook::Down) => "down",
        None => "none",
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "EVENT {} {} {} {hook} {}",
        monotonic_micros(),
        t.from,
        t.to,
        t.reason
    );
    let _ = out.flush();
}

/// Prints every transition, and runs scripts too when configured.
struct PrintingHooks(Option<ScriptHooks>);

impl Hooks for PrintingHooks {
    fn transition(&mut self, transition: &Transition, done: HookDone) {
        print_event(transition);
        if let Some(scripts) = &mut self.0 {
            // The scripts finish the action: the node waits for them.
            scripts.transition(transition, done);
        }
    }
    fn interrupt(&mut self) {
        if let Some(scripts) = &mut self.0 {
            scripts.interrupt();
        }
    }
    fn abandon(&mut self) {
        if let Some(scripts) = &mut self.0 {
            scripts.abandon();
        }
    }
    fn finish(&mut self) {
        if let Some(scripts) = &mut self.0 {
            scripts.finish();
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: HashMap<String, String> = std::env::args()
        .skip(1)
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (a, String::new()),
        })
        .collect();
    let get = |key: &str| args.get(key).ok_or_else(|| format!("missing {key}="));
    let iface = get("iface")?.clone();
    let src: Ipv4Addr = get("src")?.parse()?;
    let vip: Ipv4Addr = get("vip")?.parse()?;
    let vhid: u8 = get("vhid")?.parse()?;
    let password = Password::new(get("pass")?.as_bytes())?;
    let auth = VirtualHostAuth::new(&password, vhid, &[IpAddr::V4(vip)])?;
    let parse_or = |key: &str, default: u32| -> Result<u32, Box<dyn std::error::Error>> {
        Ok(args
            .get(key)
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let mut engine = Config::new(auth, src, carp_io::initial_counter()?)
        .with_interval(parse_or("advbase", 1)? as u8, parse_or("advskew", 0)? as u8)
        .with_deadratio(parse_or("deadratio", 3)?)
        .with_preempt(args.contains_key("preempt"));
    engine.neutral = args.contains_key("neutral");
    engine.ignore_link_state = args.contains_key("ignore-link");
    let mut config = VirtualHostConfig::new(&iface, engine);
    if let Some(group) = args.get("group") {
        config.group = group.parse()?;
    }
    config.broadcast = args.contains_key("broadcast");

    let scripts = (args.contains_key("up") || args.contains_key("down"))
        .then(|| {
            let scripts = ScriptConfig {
                up: args.get("up").map(Into::into),
                down: args.get("down").map(Into::into),
                interface: iface.clone(),
                addresses: vec![vip.to_string()],
                xparam: args.get("xparam").cloned(),
                timeout: Duration::from_secs(parse_or("script-timeout", 60).unwrap_or(60).into()),
                vhid,
                managed: Vec::new(),
                vmac: None,
            };
            config.hook_wait = scripts.longest_wait();
            ScriptHooks::new(scripts)
        })
        .transpose()?;
    let node = Node::new(config, Box::new(PrintingHooks(scripts)))?;
    let handle = node.handle();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line.as_deref().map(str::trim) {
                Ok("stepdown") => handle.step_down(),
                Ok("status") => {
                    let c = handle.counters();
                    let rejected: Vec<String> =
                        c.rejected.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!(
                        "COUNTERS state={} accepted={} sent={} send_errors={} arps={} transitions={} {}",
                        c.state, c.accepted, c.sent, c.send_errors, c.arps_sent, c.transitions,
                        rejected.join(" ")
                    );
                    handle.log_status();
                }
                Ok("shutdown") => handle.shutdown(false),
                Ok("shutdown-hook") => handle.shutdown(true),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        handle.shutdown(false);
    });
    node.run()?;
    println!("EXIT");
    Ok(())
}
