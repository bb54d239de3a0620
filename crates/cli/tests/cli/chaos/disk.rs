//! A SQLite disk that fills up under an MLLP feed and empties again.

use std::{path::PathBuf, process::Command};

use refloop_testkit::{MllpClient, ack_code, sqlite_integrity};

use super::{lost_and_twice, ref_i12, report};
use crate::process::{Serve, token};

/// A bulky note, so the database grows quickly.
const PAD: usize = 3000;

/// A small tmpfs of its own (the tests run as root, as CI does), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().to_str().expect("a UTF-8 path").to_owned();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &path]).status();
        assert!(ok.is_ok_and(|s| s.success()), "mounting a tmpfs needs root (CI runs as root)");
        SmallDisk { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path("filler")).expect("create the filler");
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.flush();
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).expect("remove the filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", self.dir.path().to_str().unwrap_or_default()]).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sqlite_disk_refuses_messages_until_space_is_back_then_recovers_without_a_restart() {
    let disk = SmallDisk::mount("6m");
    let url = format!("sqlite://{}", disk.path("refloop.db").display());
    let admin = token(&url, "admin");
    let s = Serve::start(&url, &[], &[]);
    let mut c = MllpClient::connect(s.mllp).await;
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let control = format!("OK{i}");
        assert_eq!(ack_code(&c.send(&ref_i12(&control, PAD)).await), "AA");
        acknowledged.push(control);
    }

    disk.fill();
    let mut refused = Vec::new();
    for i in 0..400 {
        let control = format!("FULL{i}");
        let ack = c.send(&ref_i12(&control, PAD)).await;
        match ack_code(&ack).as_str() {
            "AA" => acknowledged.push(control),
            code => {
                assert!(code == "AR" || code == "AE", "{ack}");
                assert!(ack.contains("resend later"), "the sender is told to resend: {ack}");
                refused.push(control);
                if refused.len() == 3 {
                    break;
                }
            }
        }
    }
    assert_eq!(refused.len(), 3, "a full disk refuses messages");
    assert!(s.until_ready_is(503).await, "/readyz says the store cannot take writes");

    disk.free();
    assert!(s.until_ready_is(200).await, "ready again once space is back, without a restart");
    for control in &refused {
        assert_eq!(ack_code(&c.send(&ref_i12(control, PAD)).await), "AA", "the resend is taken");
        acknowledged.push(control.clone());
    }
    let kept = s.source_ids(&admin).await;
    let (lost, twice) = lost_and_twice(&kept, &acknowledged);
    report("sqlite disk full, then space back", "sqlite", 1, acknowledged.len(), lost.len(), twice.len());
    assert!(lost.is_empty() && twice.is_empty(), "lost {lost:?}, kept twice {twice:?}");
    assert_eq!(kept.len(), acknowledged.len(), "nothing kept that was not acknowledged");
    let log = s.stop();
    assert!(log.contains("ERROR") && log.contains("the disk is full"), "the cause is logged at error level:\n{log}");
    assert_eq!(sqlite_integrity(&url).await, "ok", "the database is sound");
}
