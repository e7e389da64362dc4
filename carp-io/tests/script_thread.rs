//! The script supervisor thread, alone in its process (the other script
//! tests would keep it busy): none before a script is due, one for any
//! number of virtual hosts whose scripts run side by side, none again
//! after `SCRIPT_IDLE` without work.

use std::path::Path;
use std::time::{Duration, Instant};

use carp_engine::{Hook, Reason, State, Time, Transition};
use carp_io::{HookDone, Hooks, ScriptConfig, ScriptHooks, SCRIPT_IDLE};

fn script_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "ucarp-scripts")
        .count()
}

fn hooks(vhid: u8, up: &Path) -> ScriptHooks {
    ScriptHooks::new(ScriptConfig {
        up: Some(up.to_path_buf()),
        down: None,
        interface: "eth9".into(),
        addresses: vec![format!("10.0.{vhid}.1")],
        xparam: None,
        timeout: Duration::from_secs(10),
        vhid,
        managed: Vec::new(),
        vmac: None,
    })
    .unwrap()
}

fn up(hooks: &mut ScriptHooks) -> impl Fn() -> bool {
    let (done, finished) = HookDone::pair();
    let transition = Transition {
        at: Time::ZERO,
        from: State::Backup,
        to: State::Master,
        reason: Reason::StepDown,
        hook: Some(Hook::Up),
    };
    hooks.transition(&transition, done);
    move || finished.load(std::sync::atomic::Ordering::Acquire)
}

#[test]
fn one_thread_for_every_virtual_host_and_none_when_idle() {
    let dir = std::env::temp_dir().join(format!("ucarp-script-thread-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("up");
    std::fs::write(
        &script,
        "#!/bin/sh\nsleep 0.5\necho \"$1 $2\" >> \"$(dirname \"$0\")/log\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let mut all: Vec<ScriptHooks> = (1..=50).map(|v| hooks(v, &script)).collect();
    assert_eq!(script_threads(), 0, "a thread before any script is due");
    let started = Instant::now();
    let done: Vec<_> = all.iter_mut().map(up).collect();
    let mut most = 0;
    while !done.iter().all(|d| d()) {
        most = most.max(script_threads());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "scripts did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // 50 scripts of 0.5 s each, side by side, by one thread.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(most, 1, "script threads");
    assert_eq!(
        std::fs::read_to_string(dir.join("log"))
            .unwrap()
            .lines()
            .count(),
        50
    );

    std::thread::sleep(SCRIPT_IDLE + Duration::from_millis(500));
    assert_eq!(script_threads(), 0, "the idle thread did not end");
    let again = up(&mut all[7]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !again() {
        assert!(
            Instant::now() < deadline,
            "a script after the idle end did not run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(all);
    let _ = std::fs::remove_dir_all(&dir);
}
