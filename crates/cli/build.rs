//! The git revision for `refloop --version` ("unknown" when built outside a git checkout,
//! e.g. from a source tarball).

fn main() {
    let rev = std::process::Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=GIT_REVISION={rev}");
    // A new commit moves HEAD or the branch it names.
    let git = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.git");
    for path in ["HEAD", "refs/heads", "packed-refs"] {
        println!("cargo:rerun-if-changed={}", git.join(path).display());
    }
}
