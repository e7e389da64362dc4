//! Many virtual hosts in one process, through the embedding API: one
//! [`Runtime`], one protocol thread, `count` vhids on one interface, each
//! with several addresses. Used by the namespace tests; also a template for
//! embedders.
//!
//! ```text
//! multi iface=eth0 src=10.99.0.1 first=1 count=20 addresses=3 pass=secret \
//!       skew=VHID:SKEW,... [group=VHID:GROUP,...] [advbase=1] [default-skew=100] \
//!       [hook-delay=MS]
//! ```
//!
//! vhid `v` gets the addresses 10.98.<v>.1 ..= 10.98.<v>.<addresses>, the
//! skew given for it (else `default-skew`) and the group given for it (else
//! 224.0.0.18). Commands on stdin, one per line: `status` prints
//! `VHOST <vhid> <state> <transitions> <master> <sent> <accepted>` per
//! virtual host then `END`; `remove <vhid>` removes one; `add <vhid> <skew>`
//! adds one; `replace <vhid> <skew>` changes one's skew; `shutdown` stops.
//! Every transition prints `EVENT <vhid> <from> <to> <reason>`; with
//! `hook-delay`, up and down actions take that long and print
//! `DONE <vhid> <Up|Down>` when finished.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use carp_engine::{Config, Transition};
use carp_io::{
    HookDone, Hooks, Runtime, RuntimeConfig, RuntimeHandle, VirtualHostConfig, VirtualHostId,
};
use carp_proto::{Password, VirtualHostAuth};

struct Setup {
    iface: String,
    src: Ipv4Addr,
    password: Password,
    addresses: u8,
    advbase: u8,
    groups: HashMap<u8, Ipv4Addr>,
    hook_delay: Duration,
}

impl Setup {
    fn virtual_host(
        &self,
        vhid: u8,
        skew: u8,
    ) -> Result<VirtualHostConfig, Box<dyn std::error::Error>> {
        let addresses: Vec<IpAddr> = (1..=self.addresses)
            .map(|i| IpAddr::V4(Ipv4Addr::new(10, 98, vhid, i)))
            .collect();
        let auth = VirtualHostAuth::new(&self.password, vhid, &addresses)?;
        let engine = Config::new(auth, self.src, carp_io::initial_counter()?)
            .with_interval(self.advbase, skew);
        let mut config = VirtualHostConfig::new(&self.iface, engine);
        if let Some(group) = self.groups.get(&vhid) {
            config.group = *group;
        }
        Ok(config)
    }

    fn hooks(&self, vhid: u8) -> Box<dyn Hooks> {
        Box::new(Printing {
            vhid,
            delay: self.hook_delay,
        })
    }
}

fn print_event(vhid: u8, t: &Transition) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "EVENT {vhid} {} {} {}", t.from, t.to, t.reason);
    let _ = out.flush();
}

/// Prints each transition; an up or down action "takes" `delay` (on a
/// thread of its own, as a script would) and prints
/// `DONE <vhid> <Up|Down>` when it has finished.
struct Printing {
    vhid: u8,
    delay: Duration,
}

impl Hooks for Printing {
    fn transition(&mut self, t: &Transition, done: HookDone) {
        print_event(self.vhid, t);
        let (Some(hook), false) = (t.hook, self.delay.is_zero()) else {
            return;
        };
        let (vhid, delay) = (self.vhid, self.delay);
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            println!("DONE {vhid} {hook:?}");
            drop(done);
        });
    }
}

fn print_status(handle: &RuntimeHandle) {
    let mut out = std::io::stdout().lock();
    for v in handle.status().virtual_hosts {
        let master = v.master.map_or("-".to_string(), |m| m.to_string());
        let _ = writeln!(
            out,
            "VHOST {} {} {} {master} {} {}",
            v.vhid,
            v.state(),
            v.counters.transitions,
            v.counters.sent,
            v.counters.accepted
        );
    }
    let _ = writeln!(out, "END");
    let _ = out.flush();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: HashMap<String, String> = std::env::args()
        .skip(1)
        .filter_map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let get = |key: &str| args.get(key).ok_or_else(|| format!("missing {key}="));
    let number = |key: &str, default: u8| -> Result<u8, Box<dyn std::error::Error>> {
        Ok(args
            .get(key)
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let pairs = |key: &str| -> Vec<(String, String)> {
        args.get(key)
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
            .filter_map(|pair| pair.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut groups = HashMap::new();
    for (vhid, group) in pairs("group") {
        groups.insert(vhid.parse()?, group.parse()?);
    }
    let setup = Setup {
        iface: get("iface")?.clone(),
        src: get("src")?.parse()?,
        password: Password::new(get("pass")?.as_bytes())?,
        addresses: number("addresses", 1)?,
        advbase: number("advbase", 1)?,
        groups,
        hook_delay: Duration::from_millis(
            args.get("hook-delay")
                .map(|v| v.parse())
                .transpose()?
                .unwrap_or(0),
        ),
    };
    let first = number("first", 1)?;
    let count = number("count", 1)?;
    let default_skew = number("default-skew", 100)?;
    let mut skews: HashMap<u8, u8> = HashMap::new();
    for (vhid, skew) in pairs("skew") {
        skews.insert(vhid.parse()?, skew.parse()?);
    }
    let mut runtime = Runtime::new(RuntimeConfig::default())?;
    for vhid in first..first.saturating_add(count) {
        let skew = skews.get(&vhid).copied().unwrap_or(default_skew);
        runtime.add(setup.virtual_host(vhid, skew)?, setup.hooks(vhid))?;
    }
    let handle = runtime.handle();
    let control = handle.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let words: Vec<&str> = line.split_whitespace().collect();
            let result: Result<(), Box<dyn std::error::Error>> = match words.as_slice() {
                ["status"] => {
                    print_status(&control);
                    Ok(())
                }
                ["remove", vhid] => vhid.parse().map_err(Into::into).and_then(|vhid| {
                    let id = VirtualHostId {
                        interface: setup.iface.clone(),
                        vhid,
                    };
                    control.remove(&id).map_err(Into::into)
                }),
                ["add", vhid, skew] => (|| {
                    let vhid: u8 = vhid.parse()?;
                    let config = setup.virtual_host(vhid, skew.parse()?)?;
                    control.add(config, setup.hooks(vhid))?;
                    Ok(())
                })(),
                ["replace", vhid, skew] => (|| {
                    let vhid: u8 = vhid.parse()?;
                    let config = setup.virtual_host(vhid, skew.parse()?)?;
                    control.replace(config, setup.hooks(vhid))?;
                    Ok(())
                })(),
                ["shutdown"] => {
                    control.shutdown(false);
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = result {
                println!("ERROR {e}");
            }
        }
        control.shutdown(false);
    });
    runtime.run()?;
    println!("EXIT");
    Ok(())
}
