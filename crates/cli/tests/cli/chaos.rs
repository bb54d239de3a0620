//! Faults caused on purpose against the real binary, counting what was acknowledged: a
//! SQLite disk that fills up under an MLLP feed and empties again.

use std::{path::PathBuf, process::Command, time::Duration};

use refloop_testkit::{MllpClient, ack_code};

use crate::process::{Serve, token};

fn ref_i12(control: &str) -> String {
    let pad = "X".repeat(3000); // a bulky note, so the log grows quickly
    format!(
        "MSH|^~\\&|EPIC|NORTH|REFLOOP|CLINIC|20260302100000||REF^I12|{control}|P|2.5.1\r\
         RF1|P|R|CAR||O|R-{control}^EPIC|20260302|||{pad}\rPRD|RP|ADAMS^ANN|||||NPI123\rPID|1||MRN-{control}^^^NORTH^MR\r"
    )
}

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

async fn ready(s: &Serve) -> u16 {
    reqwest::get(format!("{}/readyz", s.base)).await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Waits (bounded) until /readyz answers `want`.
async fn until_ready_is(s: &Serve, want: u16) -> bool {
    for _ in 0..100 {
        if ready(s).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
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
        assert_eq!(ack_code(&c.send(&ref_i12(&control)).await), "AA");
        acknowledged.push(control);
    }

    disk.fill();
    let mut refused = Vec::new();
    for i in 0..400 {
        let control = format!("FULL{i}");
        let ack = c.send(&ref_i12(&control)).await;
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
    assert!(until_ready_is(&s, 503).await, "/readyz says the store cannot take writes");

    disk.free();
    assert!(until_ready_is(&s, 200).await, "ready again once space is back, without a restart");
    for control in &refused {
        assert_eq!(ack_code(&c.send(&ref_i12(control)).await), "AA", "the resend is taken");
        acknowledged.push(control.clone());
    }
    let (status, list) = s.call(&admin, "GET", "/api/v1/referrals?limit=200", None).await;
    assert_eq!(status, 200, "{list}");
    let mut kept: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source_ids"][0].as_str().unwrap().trim_start_matches("R-").to_owned())
        .collect();
    kept.sort();
    acknowledged.sort();
    assert_eq!(kept, acknowledged, "every acknowledged message is kept, nothing twice");
    let log = s.stop();
    assert!(log.contains("ERROR") && log.contains("the disk is full"), "the cause is logged at error level:\n{log}");
}
