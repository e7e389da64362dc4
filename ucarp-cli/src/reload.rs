//! SIGHUP with a configuration file: read it again and apply only the
//! difference. Unchanged virtual hosts are not touched (no transition, no
//! script); changed ones leave (down script, leave advert if master) and
//! start again with the new settings; removed ones leave; added ones
//! start. A file that fails any check changes nothing.
//!
//! Runs on the signal thread: reading the file and starting script
//! threads never hold up the protocol thread, which only receives the
//! resulting add / replace / remove commands.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use carp_io::{RuntimeHandle, ScriptHooks, VirtualHostId, VirtualHostSpec};
use log::{error, info, warn};

use crate::config;
use crate::options::Facility;

/// What a reload compares against and acts through.
pub struct Reloader {
    /// The configuration file.
    pub path: PathBuf,
    /// What runs now, as last configured.
    pub running: BTreeMap<VirtualHostId, VirtualHostSpec>,
    /// The runtime.
    pub handle: RuntimeHandle,
    /// `[daemon] shutdown` as last read: the signal thread uses it.
    pub shutdown: bool,
    /// Logging settings of the file at start (they change only at
    /// restart).
    pub facility: Facility,
    pub debug: bool,
    /// `[daemon]` control socket, metrics and events at start (they
    /// change only at restart).
    pub services: crate::options::Services,
}

/// The difference between what runs and what the file says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<VirtualHostSpec>,
    /// New settings of virtual hosts that run, with what changed.
    pub changed: Vec<(VirtualHostSpec, Vec<&'static str>)>,
    pub removed: Vec<VirtualHostId>,
    pub unchanged: usize,
}

impl Changes {
    /// Compares by identity (interface and vhid), then by every setting.
    pub fn between(
        running: &BTreeMap<VirtualHostId, VirtualHostSpec>,
        wanted: &[VirtualHostSpec],
    ) -> Changes {
        let mut changes = Changes::default();
        for spec in wanted {
            match running.get(&spec.id()) {
                None => changes.added.push(spec.clone()),
                Some(old) if old == spec => changes.unchanged += 1,
                Some(old) => changes.changed.push((spec.clone(), differences(old, spec))),
            }
        }
        let wanted_ids: Vec<VirtualHostId> = wanted.iter().map(VirtualHostSpec::id).collect();
        changes.removed = running
            .keys()
            .filter(|id| !wanted_ids.contains(id))
            .cloned()
            .collect();
        changes
    }
}

/// The names of the settings that differ, for the log.
fn differences(old: &VirtualHostSpec, new: &VirtualHostSpec) -> Vec<&'static str> {
    let fields = [
        (old.password != new.password, "password"),
        (old.sources != new.sources, "srcip"),
        (old.addresses != new.addresses, "addresses"),
        (old.advbase != new.advbase, "advbase"),
        (old.advskew != new.advskew, "advskew"),
        (old.deadratio != new.deadratio, "deadratio"),
        (old.preempt != new.preempt, "preempt"),
        (old.neutral != new.neutral, "neutral"),
        (
            old.ignore_link_state != new.ignore_link_state,
            "ignoreifstate",
        ),
        ((old.group, old.group6) != (new.group, new.group6), "mcast"),
        (old.broadcast != new.broadcast, "nomcast"),
        (old.peers != new.peers, "peers"),
        (
            old.track_interfaces != new.track_interfaces,
            "track-interfaces",
        ),
        (old.track_scripts != new.track_scripts, "track-scripts"),
        (old.demote != new.demote, "demote"),
        (old.demote_group != new.demote_group, "demote-group"),
        (old.demote_skew != new.demote_skew, "demote-skew"),
        (old.replay != new.replay, "replay"),
        (old.garp_refresh != new.garp_refresh, "garp-refresh"),
        (old.vmac != new.vmac, "vmac"),
        (old.startup_demote != new.startup_demote, "startup-demote"),
        (old.scripts.up != new.scripts.up, "upscript"),
        (old.scripts.down != new.scripts.down, "downscript"),
        (old.scripts.xparam != new.scripts.xparam, "xparam"),
        (old.scripts.timeout != new.scripts.timeout, "script-timeout"),
    ];
    fields
        .into_iter()
        .filter_map(|(differs, name)| differs.then_some(name))
        .collect()
}

/// A virtual host ready to hand to the runtime.
struct Prepared {
    spec: VirtualHostSpec,
    config: carp_io::VirtualHostConfig,
    hooks: ScriptHooks,
}

impl Reloader {
    /// Reads the file again and applies the difference. `Ok`: what was
    /// done (some virtual hosts may still have failed: the summary and the
    /// log say which); `Err`: the file was refused and nothing changed.
    pub fn reload(&mut self) -> Result<String, String> {
        let started = Instant::now();
        let path = self.path.display().to_string();
        let file = match config::load(&self.path) {
            Ok(file) => file,
            Err(e) => {
                let message = format!("reload refused, nothing changed: {e}");
                error!("{message}");
                return Err(message);
            }
        };
        for warning in &file.warnings {
            warn!("{warning}");
        }
        // A virtual host the runtime has dropped on its own (its interface
        // vanished) is started again if the file still has it. (One still
        // leaving, or replaced and waiting for that, counts as running.)
        let live: Vec<(String, u8)> = self
            .handle
            .status()
            .virtual_hosts
            .into_iter()
            .map(|v| (v.interface, v.vhid))
            .collect();
        self.running
            .retain(|id, _| live.contains(&(id.interface.clone(), id.vhid)));
        let mut changes = Changes::between(&self.running, &file.vhosts);
        // A change of the operator's demotion alone is applied live: no
        // restart, no script.
        let (demoted, changed): (Vec<_>, Vec<_>) = std::mem::take(&mut changes.changed)
            .into_iter()
            .partition(|(_, what)| what.as_slice() == ["demote"]);
        changes.changed = changed;
        // Everything that can fail is done before anything changes. Then
        // additions and changes first, removals last: the runtime is never
        // left with no virtual host in between (with an interface lost
        // earlier, that would end it).
        let starting = changes
            .added
            .iter()
            .chain(changes.changed.iter().map(|(spec, _)| spec));
        let mut prepared = Vec::new();
        for spec in starting {
            match prepare(spec) {
                Ok(p) => prepared.push(p),
                Err(e) => {
                    let message = format!(
                        "reload refused, nothing changed: {path}: {}: {e}",
                        spec.id()
                    );
                    error!("{message}");
                    return Err(message);
                }
            }
        }
        // Nothing can fail any more: the live demotions first.
        let mut failed = 0usize;
        for (spec, _) in &demoted {
            let id = spec.id();
            match self.handle.set_demote(&id, spec.demote) {
                Ok(()) => {
                    info!("reload: {id} demote set to {} (live)", spec.demote);
                    self.running.insert(id, spec.clone());
                }
                Err(e) => {
                    failed += 1;
                    error!("reload: {id}: cannot set its demotion: {e}");
                }
            }
        }
        for p in prepared {
            let id = p.spec.id();
            let changed = changes.changed.iter().find(|(spec, _)| spec.id() == id);
            let result = match changed {
                Some((_, what)) => self
                    .handle
                    .replace(p.config, Box::new(p.hooks))
                    .map(|()| format!("changed ({}); restarting it", what.join(", "))),
                None => self
                    .handle
                    .add(p.config, Box::new(p.hooks))
                    .map(|()| "added".to_string()),
            };
            match result {
                Ok(what) => {
                    info!("reload: {id} {what}");
                    self.running.insert(id, p.spec);
                }
                Err(e) => {
                    failed += 1;
                    error!("reload: {id}: not applied: {e}");
                }
            }
        }
        for id in &changes.removed {
            match self.handle.remove(id) {
                Ok(()) => {
                    info!("reload: {id} removed");
                    self.running.remove(id);
                }
                Err(e) => {
                    failed += 1;
                    error!("reload: {id}: cannot remove it: {e}");
                }
            }
        }
        if file.facility != self.facility || file.debug != self.debug {
            warn!("reload: [daemon] facility and debug take effect at the next start");
        }
        if file.services != self.services {
            warn!(
                "reload: [daemon] control-socket, control-group, metrics and events take effect at the next start"
            );
        }
        self.shutdown = file.shutdown;
        let summary = format!(
            "{} added, {} changed, {} removed, {} unchanged{}",
            changes.added.len(),
            changes.changed.len(),
            changes.removed.len(),
            changes.unchanged,
            if failed == 0 {
                String::new()
            } else {
                format!(", {failed} failed (see the log)")
            }
        );
        info!(
            "reload of {path}: {summary}, in {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
        Ok(summary)
    }
}

/// Builds a virtual host and starts its script thread; its interface must
/// exist.
fn prepare(spec: &VirtualHostSpec) -> Result<Prepared, String> {
    let info = crate::check_interface(spec).map_err(|e| format!("interface: {e}"))?;
    let random = carp_io::initial_counter().map_err(|e| e.to_string())?;
    let (config, scripts) = spec.build_on(random, &info).map_err(|e| e.to_string())?;
    let hooks = ScriptHooks::new(scripts).map_err(|e| e.to_string())?;
    Ok(Prepared {
        spec: spec.clone(),
        config,
        hooks,
    })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use carp_io::VirtualAddress;
    use carp_proto::Password;

    use super::*;

    fn spec(vhid: u8, skew: u8) -> VirtualHostSpec {
        let mut spec = VirtualHostSpec::new(
            "eth0",
            vhid,
            Password::new(b"pw").unwrap(),
            vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))],
            vec![VirtualAddress::new(IpAddr::V4(Ipv4Addr::new(
                10, 0, 1, vhid,
            )))],
        );
        spec.advskew = skew;
        spec
    }

    #[test]
    fn only_the_difference_is_applied() {
        let running: BTreeMap<_, _> = [spec(1, 0), spec(2, 0), spec(3, 0)]
            .into_iter()
            .map(|s| (s.id(), s))
            .collect();
        let changes = Changes::between(&running, &[spec(1, 0), spec(2, 100), spec(4, 0)]);
        assert_eq!(changes.unchanged, 1);
        assert_eq!(changes.added, vec![spec(4, 0)]);
        assert_eq!(changes.changed, vec![(spec(2, 100), vec!["advskew"])]);
        assert_eq!(changes.removed, vec![spec(3, 0).id()]);
        let same = Changes::between(&running, &[spec(1, 0), spec(2, 0), spec(3, 0)]);
        assert_eq!(
            (
                same.unchanged,
                same.added.len(),
                same.changed.len(),
                same.removed.len()
            ),
            (3, 0, 0, 0)
        );
    }
}
