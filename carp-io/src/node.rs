//! One virtual host on its own runtime: the shape of UCARP (one process,
//! one vhid), and the simplest way to embed a CARP node. For several
//! virtual hosts, use [`crate::Runtime`] directly.

use std::collections::BTreeMap;

use carp_engine::State;

use crate::iface::InterfaceInfo;
use crate::runtime::{Runtime, RuntimeConfig, RuntimeHandle};
use crate::status::{CounterSnapshot, VirtualHostStatus};
use crate::vhost::{VirtualHostConfig, VirtualHostId};
use crate::{Hooks, IoError, NoHooks};

/// A runtime running one virtual host.
pub struct Node {
    runtime: Runtime,
    id: VirtualHostId,
    interface: InterfaceInfo,
}

/// Controls a running node from any thread.
#[derive(Clone)]
pub struct NodeHandle {
    runtime: RuntimeHandle,
    id: VirtualHostId,
}

impl Node {
    /// Opens the sockets on the interface and runs `hooks` on transitions.
    /// Needs CAP_NET_RAW.
    pub fn new(config: VirtualHostConfig, hooks: Box<dyn Hooks>) -> Result<Node, IoError> {
        let mut node = Node::open(config)?;
        node.set_hooks(hooks);
        Ok(node)
    }

    /// Opens the sockets, with no hooks yet and no thread started. For a
    /// daemon that must fail before it detaches: open everything that can
    /// fail, daemonize, then start the hooks' threads and
    /// [`Node::set_hooks`]. The start-up transition waits for
    /// [`Node::run`], so the hooks set by then see it.
    pub fn open(config: VirtualHostConfig) -> Result<Node, IoError> {
        Node::with_runtime(config, RuntimeConfig::default())
    }

    /// [`Node::open`] with runtime settings (link re-check, log periods).
    pub fn with_runtime(
        config: VirtualHostConfig,
        settings: RuntimeConfig,
    ) -> Result<Node, IoError> {
        let interface = InterfaceInfo::lookup(&config.interface)?;
        let id = config.id();
        let mut runtime = Runtime::new(settings)?;
        runtime.add(config, Box::new(NoHooks))?;
        Ok(Node {
            runtime,
            id,
            interface,
        })
    }

    /// Replaces the transition hooks (before [`Node::run`]).
    pub fn set_hooks(&mut self, hooks: Box<dyn Hooks>) {
        self.runtime.set_hooks(&self.id, hooks);
    }

    /// A handle to control the node once it runs.
    pub fn handle(&self) -> NodeHandle {
        NodeHandle {
            runtime: self.runtime.handle(),
            id: self.id.clone(),
        }
    }

    /// The interface as found at start.
    pub fn interface(&self) -> &InterfaceInfo {
        &self.interface
    }

    /// Runs the protocol until shut down (`Ok`) or the interface vanishes
    /// (`Err`, after the down hook).
    pub fn run(self) -> Result<(), IoError> {
        self.runtime.run()
    }
}

impl NodeHandle {
    /// UCARP's SIGUSR2: a master steps down and keeps quiet for 3 s.
    pub fn step_down(&self) {
        self.runtime.step_down(Some(&self.id));
    }

    /// Stops the node: a running hook is interrupted, the down hook runs if
    /// `run_down_hook` (UCARP `--shutdown`) and, once it has finished, a
    /// master sends the leave advertisement. [`Node::run`] then returns.
    /// Asked a second time while stopping, the node stops at once: hooks
    /// are abandoned (scripts killed) and a leave advert still waiting for
    /// the down hook is dropped ([`Node::run`] returns
    /// [`IoError::Unclean`]: the address may still be here).
    pub fn shutdown(&self, run_down_hook: bool) {
        self.runtime.shutdown(run_down_hook);
    }

    /// UCARP's SIGUSR1: logs one status line.
    pub fn log_status(&self) {
        self.runtime.log_status();
    }

    /// The virtual host's status now (`None` once it has stopped).
    pub fn status(&self) -> Option<VirtualHostStatus> {
        let status = self.runtime.status();
        status
            .virtual_host(&self.id.interface, self.id.vhid)
            .cloned()
    }

    /// The node's counters and state now, with the rejections counted on
    /// its interface (packets no virtual host could claim) included.
    pub fn counters(&self) -> CounterSnapshot {
        let status = self.runtime.status();
        let mut counters = status
            .virtual_host(&self.id.interface, self.id.vhid)
            .map(|v| v.counters.clone())
            .unwrap_or_else(|| CounterSnapshot {
                state: State::Init,
                ..CounterSnapshot::default()
            });
        let extra: BTreeMap<&'static str, u64> = status
            .interface(&self.id.interface)
            .map(|i| i.rejected.clone())
            .unwrap_or_default();
        for (label, count) in extra {
            *counters.rejected.entry(label).or_default() += count;
        }
        counters
    }
}
