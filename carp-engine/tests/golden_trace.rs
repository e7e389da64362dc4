//! A checked-in trace of one scenario, so a reader can follow an exchange
//! event by event: two nodes elect a master, the master is killed, the
//! backup takes over at exactly its master-down time, the old master comes
//! back and, without preemption, stays backup; then the new master leaves
//! cleanly and the old one takes over at once.
//!
//! Regenerate after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p carp-engine --test golden_trace`.

use carp_engine::sim;

use sim::{addr, at, Sim};
use std::path::Path;

#[test]
fn kill_restart_leave_trace() {
    let mut sim = Sim::new(42);
    sim.trace_adverts = true;
    sim.add_node("alpha", addr(1), |c| c.with_interval(1, 0));
    sim.add_node("bravo", addr(2), |c| c.with_interval(1, 100));
    sim.run_until(at(4.5));
    sim.kill(0);
    sim.run_until(at(9.0));
    sim.restart(0);
    sim.run_until(at(12.0));
    sim.shutdown(1);
    sim.run_until(at(14.0));

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/kill_restart_leave.trace");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &sim.trace).unwrap();
    }
    let golden = std::fs::read_to_string(&path).expect("golden trace (UPDATE_GOLDEN=1 to create)");
    assert_eq!(
        sim.trace, golden,
        "trace changed; inspect and regenerate if intended"
    );
}
