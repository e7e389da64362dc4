//! Many virtual hosts in one process, through the embedding API: one
//! [`Runtime`], one protocol thread, `count` vhids on one interface, each
//! with several addresses. Used by the namespace tests; also a template for
//! embedders.
//!
//! ```text
//! multi iface=eth0 src=10.99.0.1 first=1 count=20 addresses=3 pass=secret \
//!       skew=VHID:SKEW,... [advbase=1] [default-skew=100]
//! ```
//!
//! vhid `v` gets the addresses 10.98.<v>.1 ..= 10.98.<v>.<addresses> and
//! the skew given for it (else `default-skew`). Commands on stdin, one per
//! line: `status` prints `VHOST <vhid> <state> <transitions> <master>` per
//! virtual host then `END`; `remove <vhid>` removes one; `add <vhid> <skew>`
//! adds one; `shutdown` stops. Every transition prints
//! `EVENT <vhid> <from> <to> <reason>`.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};

use carp_engine::{Config, Transition};
use carp_io::{Runtime, RuntimeConfig, RuntimeHandle, VirtualHostConfig, VirtualHostId};
use carp_proto::{Password, VirtualHostAuth};

struct Setup {
    iface: String,
    src: Ipv4Addr,
    password: Password,
    addresses: u8,
    advbase: u8,
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
        let engine =
            Config::new(auth, self.src, carp_io::random_u64()?).with_interval(self.advbase, skew);
        Ok(VirtualHostConfig::new(&self.iface, engine))
    }
}

fn print_event(vhid: u8, t: &Transition) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "EVENT {vhid} {} {} {}", t.from, t.to, t.reason);
    let _ = out.flush();
}

fn hooks(vhid: u8) -> Box<dyn carp_io::Hooks> {
    Box::new(move |t: &Transition| print_event(vhid, t))
}

fn print_status(handle: &RuntimeHandle) {
    let mut out = std::io::stdout().lock();
    for v in handle.status().virtual_hosts {
        let master = v.master.map_or("-".to_string(), |m| m.to_string());
        let _ = writeln!(
            out,
            "VHOST {} {} {} {master}",
            v.vhid,
            v.state(),
            v.counters.transitions
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
    let setup = Setup {
        iface: get("iface")?.clone(),
        src: get("src")?.parse()?,
        password: Password::new(get("pass")?.as_bytes())?,
        addresses: number("addresses", 1)?,
        advbase: number("advbase", 1)?,
    };
    let first = number("first", 1)?;
    let count = number("count", 1)?;
    let default_skew = number("default-skew", 100)?;
    let mut skews: HashMap<u8, u8> = HashMap::new();
    for pair in args
        .get("skew")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
    {
        if let Some((vhid, skew)) = pair.split_once(':') {
            skews.insert(vhid.parse()?, skew.parse()?);
        }
    }
    let mut runtime = Runtime::new(RuntimeConfig::default())?;
    for vhid in first..first.saturating_add(count) {
        let skew = skews.get(&vhid).copied().unwrap_or(default_skew);
        runtime.add(setup.virtual_host(vhid, skew)?, hooks(vhid))?;
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
                    control.add(config, hooks(vhid))?;
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
