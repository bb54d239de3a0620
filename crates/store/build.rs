//! Embeds each dialect's migrations folder: one `(version, description, SQL)` line per file,
//! so the folder is the only list. Both dialects must hold the same versions and names.

use std::{fmt::Write, fs, path::Path};

fn files(dialect: &str) -> Vec<(i64, String, String)> {
    let dir = Path::new("migrations").join(dialect);
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let name = entry.expect("a directory entry").file_name().into_string().expect("a UTF-8 file name");
        let Some(stem) = name.strip_suffix(".sql") else { continue };
        let (version, rest) = stem.split_once('_').unwrap_or_else(|| panic!("{name}: NNNN_name.sql"));
        let version: i64 = version.parse().unwrap_or_else(|_| panic!("{name}: the version is a number"));
        out.push((version, rest.replace('_', " "), name));
    }
    out.sort();
    out
}

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let (sqlite, postgres) = (files("sqlite"), files("postgres"));
    let names = |v: &[(i64, String, String)]| v.iter().map(|(n, d, _)| (*n, d.clone())).collect::<Vec<_>>();
    assert_eq!(names(&sqlite), names(&postgres), "migrations/sqlite and migrations/postgres hold the same versions");
    let mut code = String::new();
    for (dialect, list) in [("SQLITE", &sqlite), ("POSTGRES", &postgres)] {
        writeln!(code, "const {dialect}: &[(i64, &str, &str)] = &[").unwrap();
        for (version, description, file) in list {
            let lower = dialect.to_lowercase();
            writeln!(
                code,
                "    ({version}, {description:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/migrations/{lower}/{file}\"))),"
            )
            .unwrap();
        }
        writeln!(code, "];").unwrap();
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("migrations.rs");
    fs::write(out, code).expect("writing migrations.rs");
}
