//! Scratch directories with executable scripts, removed on drop.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A scratch directory, removed on drop.
pub struct Dir(PathBuf);

impl Dir {
    pub fn new(test: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("ucarp-test-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// An executable `#!/bin/sh` script.
    pub fn script(&self, name: &str, body: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        let status = Command::new("chmod").arg("755").arg(&path).status();
        assert!(status.unwrap().success());
        path.display().to_string()
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn wait_for(&self, name: &str, what: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.read(name);
            if text.contains(what) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no {what:?} in {name} within {timeout:?}: {text:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
